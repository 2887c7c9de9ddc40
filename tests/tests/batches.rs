//! Under `Backpressure` an actor takes what is queued as one batch. The
//! batch counts against the capacity, and a sender waiting for room is woken
//! at least every 32 messages, not only once the whole batch is handled.

// In tests, an unwrap that fails is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Num;
use mercato::{Actor, Context, DeadLetterReason, HandlerError, System};
use tokio::time::Instant;

/// Takes 1 ms (of paused, virtual time) per message.
struct Slow;

/// Takes `Num::seq` ms per message, and counts what it handled.
struct Timed {
    handled: Arc<AtomicU32>,
}

message_enum!(TimedMsg for Timed {
    tell Num(Num),
});

impl Actor for Timed {
    type Msg = TimedMsg;
    async fn handle(
        &mut self,
        msg: &mut TimedMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        let TimedMsg::Num(n) = msg;
        tokio::time::sleep(Duration::from_millis(u64::from(n.payload().seq))).await;
        self.handled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Spawns a `Timed` actor and queues `n` messages of `ms` each before it
/// runs, so that it takes them as one batch.
async fn timed_batch(system: &System, n: u32, ms: u32) -> (mercato::Addr<Timed>, Arc<AtomicU32>) {
    let handled = Arc::new(AtomicU32::new(0));
    let h = handled.clone();
    let addr = system
        .spawn("timed", move || Timed { handled: h.clone() })
        .unwrap();
    for _ in 0..n {
        addr.tell(Num { sender: 0, seq: ms }).await.unwrap();
    }
    (addr, handled)
}

#[tokio::test(start_paused = true)]
async fn a_stop_takes_effect_before_the_rest_of_a_batch() {
    let system = System::builder().build().unwrap();
    let (addr, handled) = timed_batch(&system, 10, 10).await;
    // The actor has taken the 10 as a batch and is 1 ms into the first.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(addr.gauges().depth, 9, "nine wait in the batch");
    addr.stop();
    system.settled().await;
    assert_eq!(
        handled.load(Ordering::SeqCst),
        1,
        "the stop came before the rest of the batch"
    );
    assert_eq!(
        system.dead_letters().count(DeadLetterReason::ActorStopped),
        9,
        "what the batch still held is dead-lettered, not lost"
    );
    assert!(addr.is_stopped());
}

#[tokio::test(start_paused = true)]
async fn running_for_times_each_message_of_a_batch_from_its_own_start() {
    let system = System::builder().build().unwrap();
    let (addr, handled) = timed_batch(&system, 3, 100).await;
    // The third message of the batch started at 200 ms.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let g = addr.gauges();
    assert_eq!(handled.load(Ordering::SeqCst), 2);
    assert_eq!(g.running_for, Some(Duration::from_millis(50)));
    system.settled().await;
    assert_eq!(addr.gauges().running_for, None);
}

message_enum!(SlowMsg for Slow {
    tell Num(Num),
});

impl Actor for Slow {
    type Msg = SlowMsg;
    async fn handle(
        &mut self,
        _msg: &mut SlowMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_waiting_sender_is_woken_within_32_messages_of_a_batch() {
    let system = System::builder().build().unwrap();
    let slow = system
        .spawn_with("slow", |c| c.capacity(64), || Slow)
        .unwrap();
    let start = Instant::now();
    let sent_at = Arc::new(Mutex::new(Vec::new()));
    let log = sent_at.clone();
    let sender = tokio::spawn(async move {
        for seq in 0..200 {
            slow.tell(Num { sender: 0, seq }).await.unwrap();
            log.lock().unwrap().push(start.elapsed());
            // The mailbox (queue and batch together) never holds more than
            // its capacity.
            let g = slow.gauges();
            assert!(g.depth <= 64, "{} held in a mailbox of 64", g.depth);
        }
    });
    sender.await.unwrap();
    system.settled().await;
    let sent_at = sent_at.lock().unwrap();
    // The first 64 fit at once, and a 65th as soon as the actor starts the
    // first (the message being handled is no longer held). The actor took
    // the 64 as one batch, 1 ms each; the sender waiting for room with the
    // 66th is woken after 32 of them, not after all 64.
    assert_eq!(sent_at[64], Duration::ZERO);
    assert!(
        (Duration::from_millis(1)..=Duration::from_millis(34)).contains(&sent_at[65]),
        "the 66th send waited {:?}: the sender was not woken until the batch was done",
        sent_at[65]
    );
    let g = system
        .mailboxes()
        .into_iter()
        .find(|m| m.actor == "slow")
        .unwrap();
    assert_eq!((g.enqueued, g.processed, g.depth), (200, 200, 0));
    assert!(g.high_water <= 64);
}
