//! Under `Backpressure` an actor takes what is queued as one batch. The
//! batch counts against the capacity, and a sender waiting for room is woken
//! at least every 32 messages, not only once the whole batch is handled.

// In tests, an unwrap that fails is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Num;
use mercato::{Actor, Context, HandlerError, System};
use tokio::time::Instant;

/// Takes 1 ms (of paused, virtual time) per message.
struct Slow;

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
