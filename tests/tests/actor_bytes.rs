//! What an idle actor costs in memory: the heap bytes that spawning one adds
//! (its loop, its mailbox and identity, its place in the system's lists),
//! counted with a global allocator while 10,000 idle actors start on a
//! current-thread runtime. One test in this binary, so nothing else
//! allocates concurrently.
//!
//! The bound is a count, not a timing: it fails when a change makes every
//! actor carry more, such as a field that every actor's task stores but few
//! use.

// In tests, an unwrap that fails is a test failure with its message.
#![allow(clippy::unwrap_used)]

use mercato::System;

mod live_bytes;

/// An actor that handles nothing: the least an actor costs.
struct Idle;

#[mercato::actor]
impl Idle {}

#[derive(mercato::Event, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[event(name = "test.item_added", version = 1)]
struct ItemAdded {
    qty: u64,
}

/// What one cart costs while nothing happens to it: a little state and one
/// handler.
#[derive(Default)]
struct Cart {
    items: u64,
}

#[mercato::actor]
impl Cart {
    #[on]
    fn added(&mut self, e: &ItemAdded) {
        self.items += e.qty;
    }
}

const ACTORS: usize = 10_000;

/// Heap bytes per idle actor today: 617 for `Idle`, 721 for `Cart`. An
/// actor that has not been woken since it started has no task: its loop is
/// a boxed future (288 bytes for `Idle`; 392 for `Cart`, which also holds
/// its state and the slot of the message in hand), parked in a slot of its
/// system's parked set (16 bytes, here in a vector of 16,384, 26 bytes per
/// actor), with a 64-byte launcher that gives it a task when first woken
/// (and through which an ask later runs its loop in place). Then a 200-byte
/// cell: the mailbox with the actor's identity inside it (its control lane,
/// waiting senders and handler clock are boxed on first use) and the
/// launcher's address, and a 24-byte
/// entry in its parent's list of children (here in a vector of 16,384
/// entries, 39 bytes per actor); actors spawned one after another under one
/// name share it (the system keeps no list with an entry per actor). The
/// bounds leave room for the lists' growth steps, not for a loop that grows
/// (as it did by 128 bytes when the restart backoff, the stopping of
/// children and the reason an instance ended were stored in every one),
/// nor for a mailbox that carries its rarely used parts inline again (64
/// bytes), nor for a name per actor (24 bytes), nor for children kept in a
/// `BTreeMap` (about 60 bytes an entry with its half-full nodes), nor for
/// a second entry per actor in a list of the system's (about 50 bytes, as
/// there was), nor for a tokio task per idle actor (512 bytes each, in
/// cells rounded to 128 bytes, where the loop now takes 288 or 392).
const MAX_BYTES_PER_IDLE_ACTOR: i64 = 624;
const MAX_BYTES_PER_IDLE_CART: i64 = 728;

/// Heap bytes that spawning `ACTORS` actors from `factory` adds, per actor,
/// once every one has started and waits.
async fn bytes_per_actor<A: mercato::Actor>(factory: fn() -> A) -> i64 {
    let system = System::builder().build().unwrap();
    let mut addrs = Vec::with_capacity(ACTORS);
    let before = live_bytes::live();
    live_bytes::counting(true);
    for _ in 0..ACTORS {
        addrs.push(system.spawn("idle", factory).unwrap());
    }
    // Every actor has started inside `spawn` and waits.
    system.settled().await;
    live_bytes::counting(false);
    let per_actor = (live_bytes::live() - before) / ACTORS as i64;
    assert!(
        per_actor > 480,
        "{per_actor} bytes per actor is less than its loop and mailbox alone: the allocator did not count"
    );
    system.shutdown(std::time::Duration::from_secs(5)).await;
    per_actor
}

#[test]
fn an_idle_actor_costs_at_most_its_budget_of_heap_bytes() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let idle = bytes_per_actor(|| Idle).await;
        let cart = bytes_per_actor(Cart::default).await;
        println!("heap bytes per idle actor: {idle} (no handler), {cart} (a cart)");
        assert!(
            idle <= MAX_BYTES_PER_IDLE_ACTOR,
            "an idle actor costs {idle} heap bytes, over the budget of {MAX_BYTES_PER_IDLE_ACTOR}"
        );
        assert!(
            cart <= MAX_BYTES_PER_IDLE_CART,
            "an idle cart costs {cart} heap bytes, over the budget of {MAX_BYTES_PER_IDLE_CART}"
        );
    });
}
