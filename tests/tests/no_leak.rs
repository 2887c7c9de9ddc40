//! What actors hold is freed once they are gone: after a shutdown, or when
//! the runtime is dropped without one, the heap holds no more than before,
//! however many actors there were and however they were asked (by their own
//! task, or in the asker's), and however many entities were activated (some
//! still waiting for their kind's starter task when the runtime is dropped,
//! which holds them while they hold their kind). A cycle between an
//! actor's launcher, its loop and its task would leave each actor's loop
//! and mailbox behind, and show here as bytes that grow with the number of
//! actors. Counted with a global allocator; one test in this binary, so
//! nothing else allocates meanwhile.

// In tests, an unwrap that fails is a test failure with its message.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use mercato::{Event, Key, System, actor};
use serde::{Deserialize, Serialize};

mod live_bytes;

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "test.stock_level", version = 1)]
struct StockLevel;

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "test.stock_reserved", version = 1)]
struct StockReserved {
    #[event(key)]
    sku: u64,
}

struct Ledger;

/// One per SKU.
struct Shelf;

#[actor(entity)]
impl Shelf {
    #[on]
    fn reserved(&mut self, _e: &StockReserved) {}
}

#[actor]
impl Ledger {
    #[reply]
    fn stock_level(&self, _q: &StockLevel) -> u32 {
        12
    }
}

/// Starts `actors` ledgers and asks each twice (the first ask gives it a
/// task, the second is handled in the asker's task), shuts the system down
/// or not, and drops everything.
async fn a_life(actors: usize, shut_down: bool) {
    let system = System::builder().build().unwrap();
    let ledgers: Vec<_> = (0..actors)
        .map(|_| system.start("ledger", || Ledger).unwrap())
        .collect();
    for _ in 0..2 {
        for ledger in &ledgers {
            let level = ledger.ask(StockLevel, Duration::from_secs(1)).await;
            assert_eq!(level.unwrap(), 12);
        }
    }
    // As many entities, activated last: without a shutdown, some are still
    // waiting for their kind's starter task when the runtime is dropped.
    system.start_entities("shelf", |_: &Key| Shelf).unwrap();
    for sku in 0..actors as u64 {
        system.publish(StockReserved { sku }).await.unwrap();
    }
    if shut_down {
        system.shutdown(Duration::from_secs(5)).await;
    }
}

/// Heap bytes left over by `a_life` on a fresh runtime, dropped after it.
fn left_over(actors: usize, shut_down: bool) -> i64 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // What a first system allocates once per process is not counted.
    runtime.block_on(a_life(10, true));
    let before = live_bytes::live();
    live_bytes::counting(true);
    runtime.block_on(a_life(actors, shut_down));
    drop(runtime);
    live_bytes::counting(false);
    live_bytes::live() - before
}

#[test]
fn actors_leave_nothing_behind_after_a_shutdown_or_a_dropped_runtime() {
    for shut_down in [true, false] {
        let few = left_over(1_000, shut_down);
        let many = left_over(4_000, shut_down);
        let per_actor = (many - few) as f64 / 3_000.0;
        println!("shut down: {shut_down}; left over: {few} and {many} bytes");
        // And nothing left over at all, beyond what the allocator and the
        // runtime keep (a few KiB either way): seventy leaked entities
        // would show, however many were made.
        assert!(
            few < 64 * 1024 && many < 64 * 1024,
            "{few} and {many} bytes left over (shut down: {shut_down})"
        );
        assert!(
            per_actor.abs() < 8.0,
            "{per_actor:.1} bytes per actor left over (shut down: {shut_down}): \
             {few} bytes after 1,000 actors, {many} after 4,000"
        );
    }
}
