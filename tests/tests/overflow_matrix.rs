//! The overflow matrix: each policy × {tell, ask}. For each cell: what the
//! sender sees, what the receiver gets, what the gauges and the dead letters
//! say, and that the counts add up:
//! sent = handled + returned to the sender + dead-lettered.

// In tests, an unwrap that fails is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Num, Query, log};
use mercato::{
    Actor, Addr, AskError, Context, DeadLetterReason, HandlerError, Overflow, System, TellError,
};
use tokio::sync::watch;

/// Handles jobs in order; the first job waits until the gate opens, so the
/// mailbox behind it fills deterministically.
struct Gated {
    gate: watch::Receiver<bool>,
    handled: common::parking_lot_free::Log<u32>,
}

message_enum!(GatedMsg for Gated {
    tell Job(Num),
    ask Q(Query => u32),
});

impl Actor for Gated {
    type Msg = GatedMsg;
    async fn handle(
        &mut self,
        msg: &mut GatedMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        let seq = match msg {
            GatedMsg::Job(n) => n.seq,
            GatedMsg::Q(q) => q.query().0,
        };
        self.gate.wait_for(|open| *open).await?;
        self.handled.push(seq);
        if let GatedMsg::Q(q) = msg {
            q.reply(seq);
        }
        Ok(())
    }
}

const CAPACITY: usize = 2;
const SENT: u32 = 5;

struct Cell {
    system: System,
    addr: Addr<Gated>,
    gate: watch::Sender<bool>,
    handled: common::parking_lot_free::Log<u32>,
}

fn cell(policy: Overflow) -> Cell {
    let system = System::builder().build().unwrap();
    let (gate, rx) = watch::channel(false);
    let handled = log();
    let h = handled.clone();
    let addr = system
        .spawn_with(
            "gated",
            |c| c.capacity(CAPACITY).overflow(policy),
            move || Gated {
                gate: rx.clone(),
                handled: h.clone(),
            },
        )
        .unwrap();
    Cell {
        system,
        addr,
        gate,
        handled,
    }
}

/// Yields until the first message is being handled and `depth` are queued.
async fn until(addr: &Addr<Gated>, depth: usize) {
    for _ in 0..1_000 {
        let g = addr.gauges();
        if g.running_for.is_some() && g.depth == depth {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("mailbox never reached depth {depth}: {:?}", addr.gauges());
}

/// Sends 0 (occupies the handler), then 1 and 2 (fill the mailbox), then 3
/// and 4 (overflow) by `tell`, and returns what the sender saw for 3 and 4.
async fn tell_overflow(c: &Cell) -> Vec<Result<(), TellError<Num>>> {
    c.addr.tell(Num { sender: 0, seq: 0 }).await.unwrap();
    until(&c.addr, 0).await;
    for seq in 1..3 {
        c.addr.tell(Num { sender: 0, seq }).await.unwrap();
    }
    until(&c.addr, CAPACITY).await;
    let mut outcomes = Vec::new();
    for seq in 3..SENT {
        outcomes.push(c.addr.tell(Num { sender: 0, seq }).await);
        assert!(c.addr.gauges().depth <= CAPACITY);
    }
    outcomes
}

type AskTask = tokio::task::JoinHandle<Result<u32, AskError<Query>>>;

fn ask(addr: &Addr<Gated>, seq: u32) -> AskTask {
    let addr = addr.clone();
    tokio::spawn(async move { addr.ask(Query(seq), Duration::from_secs(60)).await })
}

/// The same by `ask`: each request in its own task; returns all five tasks.
async fn ask_overflow(c: &Cell) -> Vec<AskTask> {
    let mut tasks = vec![ask(&c.addr, 0)];
    until(&c.addr, 0).await;
    for seq in 1..SENT {
        tasks.push(ask(&c.addr, seq));
        let expected = (seq as usize).min(CAPACITY);
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(c.addr.gauges().depth, expected);
    }
    tasks
}

fn dead(c: &Cell, reason: DeadLetterReason) -> Vec<u32> {
    c.system
        .dead_letters()
        .recent()
        .iter()
        .filter(|l| l.reason() == reason)
        .map(|l| match (l.payload::<Num>(), l.payload::<Query>()) {
            (Some(n), _) => n.seq,
            (_, Some(q)) => q.0,
            _ => panic!("unexpected payload {:?}", l.payload_debug()),
        })
        .collect()
}

/// Opens the gate, settles, and checks the gauges and that counts add up.
async fn finish(c: &Cell, sent: u32, returned: u32) -> Vec<u32> {
    c.gate.send_replace(true);
    c.system.settled().await;
    let handled = c.handled.take();
    let g = c.addr.gauges();
    let counts = c.system.dead_letters().counts();
    assert_eq!(
        u64::from(sent),
        handled.len() as u64 + u64::from(returned) + counts.total(),
        "sent = handled + returned + dead-lettered"
    );
    assert_eq!(g.processed, handled.len() as u64, "processed gauge");
    assert_eq!(
        g.rejected,
        u64::from(returned),
        "rejected gauge = returned to sender"
    );
    assert_eq!(
        g.dropped,
        counts.get(DeadLetterReason::DroppedOldest) + counts.get(DeadLetterReason::DroppedNewest),
        "dropped gauge = dead letters by drop policy"
    );
    assert!(g.high_water <= CAPACITY);
    handled
}

#[tokio::test(start_paused = true)]
async fn backpressure_tell_waits_for_room_and_delivers_everything() {
    let c = cell(Overflow::Backpressure);
    c.addr.tell(Num { sender: 0, seq: 0 }).await.unwrap();
    until(&c.addr, 0).await;
    for seq in 1..3 {
        c.addr.tell(Num { sender: 0, seq }).await.unwrap();
    }
    let addr = c.addr.clone();
    let waiting = tokio::spawn(async move {
        for seq in 3..SENT {
            addr.tell(Num { sender: 0, seq }).await.unwrap();
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !waiting.is_finished(),
        "the sender waits while the mailbox is full"
    );
    assert_eq!(c.addr.gauges().depth, CAPACITY);
    c.gate.send_replace(true);
    waiting.await.unwrap();
    assert_eq!(finish(&c, SENT, 0).await, vec![0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn reject_tell_returns_the_message_to_the_sender() {
    let c = cell(Overflow::Reject);
    let outcomes = tell_overflow(&c).await;
    let returned: Vec<u32> = outcomes
        .into_iter()
        .map(|r| match r {
            Err(TellError::Full(envelope)) => envelope.payload().seq,
            other => panic!("expected Full, got {other:?}"),
        })
        .collect();
    assert_eq!(returned, vec![3, 4]);
    assert_eq!(finish(&c, SENT, 2).await, vec![0, 1, 2]);
    assert_eq!(c.system.dead_letters().counts().total(), 0);
}

#[tokio::test(start_paused = true)]
async fn drop_oldest_tell_evicts_the_oldest_into_dead_letters() {
    let c = cell(Overflow::DropOldest);
    assert!(tell_overflow(&c).await.iter().all(Result::is_ok));
    assert_eq!(finish(&c, SENT, 0).await, vec![0, 3, 4]);
    assert_eq!(dead(&c, DeadLetterReason::DroppedOldest), vec![1, 2]);
}

#[tokio::test(start_paused = true)]
async fn drop_newest_tell_dead_letters_the_new_message() {
    let c = cell(Overflow::DropNewest);
    assert!(tell_overflow(&c).await.iter().all(Result::is_ok));
    assert_eq!(finish(&c, SENT, 0).await, vec![0, 1, 2]);
    assert_eq!(dead(&c, DeadLetterReason::DroppedNewest), vec![3, 4]);
}

async fn results(tasks: Vec<AskTask>) -> Vec<Result<u32, AskError<Query>>> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(start_paused = true)]
async fn backpressure_ask_waits_for_room_and_every_request_is_answered() {
    let c = cell(Overflow::Backpressure);
    let tasks = ask_overflow(&c).await;
    assert!(!tasks[3].is_finished() && !tasks[4].is_finished());
    c.gate.send_replace(true);
    let replies: Vec<u32> = results(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(replies, vec![0, 1, 2, 3, 4]);
    assert_eq!(finish(&c, SENT, 0).await, vec![0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn reject_ask_returns_the_request_to_the_asker() {
    let c = cell(Overflow::Reject);
    let tasks = ask_overflow(&c).await;
    c.gate.send_replace(true);
    let out = results(tasks).await;
    for (seq, r) in out.iter().enumerate() {
        match (seq, r) {
            (0..=2, Ok(v)) => assert_eq!(*v, seq as u32),
            (3..=4, Err(AskError::Rejected(envelope))) => {
                assert_eq!(envelope.payload().0, seq as u32)
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(finish(&c, SENT, 2).await, vec![0, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn drop_oldest_ask_tells_the_evicted_askers() {
    let c = cell(Overflow::DropOldest);
    let tasks = ask_overflow(&c).await;
    c.gate.send_replace(true);
    let out = results(tasks).await;
    assert!(matches!(out[1], Err(AskError::Evicted)) && matches!(out[2], Err(AskError::Evicted)));
    assert_eq!(
        (
            out[0].as_ref().ok(),
            out[3].as_ref().ok(),
            out[4].as_ref().ok()
        ),
        (Some(&0), Some(&3), Some(&4))
    );
    assert_eq!(finish(&c, SENT, 0).await, vec![0, 3, 4]);
    assert_eq!(dead(&c, DeadLetterReason::DroppedOldest), vec![1, 2]);
}

#[tokio::test(start_paused = true)]
async fn drop_newest_ask_tells_the_dropped_askers() {
    let c = cell(Overflow::DropNewest);
    let tasks = ask_overflow(&c).await;
    c.gate.send_replace(true);
    let out = results(tasks).await;
    assert!(matches!(out[3], Err(AskError::Dropped)) && matches!(out[4], Err(AskError::Dropped)));
    assert_eq!(
        (
            out[0].as_ref().ok(),
            out[1].as_ref().ok(),
            out[2].as_ref().ok()
        ),
        (Some(&0), Some(&1), Some(&2))
    );
    assert_eq!(finish(&c, SENT, 0).await, vec![0, 1, 2]);
    assert_eq!(dead(&c, DeadLetterReason::DroppedNewest), vec![3, 4]);
}

#[tokio::test(start_paused = true)]
async fn backpressure_ask_times_out_while_waiting_for_room_and_the_request_is_not_queued() {
    let c = cell(Overflow::Backpressure);
    c.addr.tell(Num { sender: 0, seq: 0 }).await.unwrap();
    until(&c.addr, 0).await;
    for seq in 1..3 {
        c.addr.tell(Num { sender: 0, seq }).await.unwrap();
    }
    let r = c.addr.ask(Query(3), Duration::from_millis(250)).await;
    assert!(matches!(r, Err(AskError::Timeout)), "{r:?}");
    // The timed-out request never entered the mailbox: the asker got it back
    // as a timeout. 4 sent = 3 handled + 1 returned + 0 dead-lettered.
    c.gate.send_replace(true);
    c.system.settled().await;
    assert_eq!(c.handled.take(), vec![0, 1, 2]);
    let g = c.addr.gauges();
    assert_eq!(
        (g.enqueued, g.processed, g.rejected, g.dropped),
        (3, 3, 0, 0)
    );
    assert_eq!(c.system.dead_letters().counts().total(), 0);
}

#[tokio::test(start_paused = true)]
async fn try_tell_refused_by_reject_counts_once_and_by_backpressure_counts_too() {
    for (policy, expected) in [(Overflow::Reject, 1), (Overflow::Backpressure, 1)] {
        let c = cell(policy);
        c.addr.tell(Num { sender: 0, seq: 0 }).await.unwrap();
        until(&c.addr, 0).await;
        for seq in 1..3 {
            c.addr.try_tell(Num { sender: 0, seq }).unwrap();
        }
        let refused = c.addr.try_tell(Num { sender: 0, seq: 3 });
        assert!(
            matches!(refused, Err(TellError::Full(_))),
            "{policy}: {refused:?}"
        );
        assert_eq!(
            c.addr.gauges().rejected,
            expected,
            "{policy}: one refusal, counted once"
        );
        c.gate.send_replace(true);
        c.system.settled().await;
    }
}
