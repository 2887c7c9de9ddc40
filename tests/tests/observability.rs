//! The gauges an operator reads.

// In tests, an unwrap that fails is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Num;
use mercato::{Actor, Context, HandlerError, System};

#[tokio::test(start_paused = true)]
async fn gauges_show_depth_high_water_and_the_running_handler_age() {
    /// Sleeps `seq` ms per message.
    struct Sleeper;
    message_enum!(SleeperMsg for Sleeper {
        tell Num(Num),
    });
    impl Actor for Sleeper {
        type Msg = SleeperMsg;
        async fn handle(
            &mut self,
            msg: &mut SleeperMsg,
            _cx: &mut Context<Self>,
        ) -> Result<(), HandlerError> {
            let SleeperMsg::Num(n) = msg;
            tokio::time::sleep(Duration::from_millis(u64::from(n.seq))).await;
            Ok(())
        }
    }
    let system = System::builder().build().unwrap();
    let addr = system
        .spawn_with("sleeper", |c| c.capacity(16), || Sleeper)
        .unwrap();
    for _ in 0..5 {
        addr.tell(Num {
            sender: 0,
            seq: 1_000,
        })
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let g = system
        .mailboxes()
        .into_iter()
        .find(|m| m.actor == "sleeper")
        .unwrap();
    assert_eq!(g.capacity, 16);
    assert_eq!(g.depth, 3, "one done, one running, three queued");
    assert_eq!(g.high_water, 5);
    assert_eq!(g.enqueued, 5);
    assert_eq!(g.processed, 1);
    assert_eq!(g.running_for, Some(Duration::from_millis(500)));
    assert_eq!(
        g.to_string(),
        "sleeper: 3/16 queued (high water 5), 1 processed, 0 rejected, 0 dropped, running 500ms"
    );
    system.settled().await;
    let g = addr.gauges();
    assert_eq!((g.depth, g.processed, g.running_for), (0, 5, None));
}

#[tokio::test(start_paused = true)]
async fn the_context_tells_the_handler_which_message_and_attempt_it_handles() {
    /// Fails its first attempt; records what the context says.
    struct Curious {
        seen: common::parking_lot_free::Log<(
            Option<mercato::EventId>,
            Option<mercato::EventId>,
            Option<u32>,
        )>,
    }
    message_enum!(CuriousMsg for Curious {
        tell Num(Num),
    });
    impl Actor for Curious {
        type Msg = CuriousMsg;
        async fn handle(
            &mut self,
            msg: &mut CuriousMsg,
            cx: &mut Context<Self>,
        ) -> Result<(), HandlerError> {
            let CuriousMsg::Num(n) = msg;
            assert_eq!(cx.message_id(), Some(n.meta().id()));
            self.seen
                .push((cx.message_id(), cx.correlation_id(), cx.attempt()));
            if n.meta().attempt() == 1 {
                return Err("first attempt fails".into());
            }
            Ok(())
        }
        async fn started(&mut self, cx: &mut Context<Self>) -> Result<(), HandlerError> {
            assert_eq!(cx.message_id(), None, "no message in a lifecycle hook");
            Ok(())
        }
    }
    let system = System::builder().build().unwrap();
    let seen = common::log();
    let s = seen.clone();
    let addr = system
        .spawn("curious", move || Curious { seen: s.clone() })
        .unwrap();
    addr.tell(Num { sender: 0, seq: 1 }).await.unwrap();
    system.settled().await;
    let seen = seen.take();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].0, seen[1].0, "the same message, retried");
    assert_eq!(
        seen[0].0, seen[0].1,
        "sent from outside: its own correlation"
    );
    assert_eq!((seen[0].2, seen[1].2), (Some(1), Some(2)));
}

#[tokio::test]
async fn each_actor_keeps_its_own_message_ids_across_awaits_and_nothing_leaks_outside() {
    /// Records the causation and correlation ids of what it gets.
    struct Sink {
        seen: common::parking_lot_free::Log<(Option<mercato::EventId>, mercato::EventId, u32)>,
    }
    message_enum!(SinkMsg for Sink {
        tell Num(Num),
    });
    impl Actor for Sink {
        type Msg = SinkMsg;
        async fn handle(
            &mut self,
            msg: &mut SinkMsg,
            _cx: &mut Context<Self>,
        ) -> Result<(), HandlerError> {
            let SinkMsg::Num(n) = msg;
            self.seen
                .push((n.meta().causation_id(), n.meta().correlation_id(), n.seq));
            Ok(())
        }
    }
    /// Yields while it handles a message, so that the other relay's handler
    /// runs on the same thread in between, then forwards it to the sink.
    struct Relay {
        sink: mercato::Addr<Sink>,
        seen: common::parking_lot_free::Log<(u32, mercato::EventId, Option<mercato::EventId>)>,
    }
    message_enum!(RelayMsg for Relay {
        tell Num(Num),
    });
    impl Actor for Relay {
        type Msg = RelayMsg;
        async fn handle(
            &mut self,
            msg: &mut RelayMsg,
            cx: &mut Context<Self>,
        ) -> Result<(), HandlerError> {
            let RelayMsg::Num(n) = msg;
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            self.seen.push((n.seq, n.meta().id(), cx.message_id()));
            self.sink.tell(**n).await.map_err(|e| e.to_string())?;
            Ok(())
        }
    }
    let system = System::builder().build().unwrap();
    let sink_seen = common::log();
    let s = sink_seen.clone();
    let sink = system
        .spawn("sink", move || Sink { seen: s.clone() })
        .unwrap();
    let relay_seen = common::log();
    let relays: Vec<_> = (0..2)
        .map(|i| {
            let (sink, seen) = (sink.clone(), relay_seen.clone());
            system
                .spawn(&format!("relay-{i}"), move || Relay {
                    sink: sink.clone(),
                    seen: seen.clone(),
                })
                .unwrap()
        })
        .collect();
    for seq in 0..20 {
        relays[seq as usize % 2]
            .tell(Num { sender: 0, seq })
            .await
            .unwrap();
    }
    system.settled().await;

    /// Waits, in the middle of a handler, until the test lets it go.
    struct Waiter {
        gate: std::sync::Arc<tokio::sync::Notify>,
    }
    message_enum!(WaiterMsg for Waiter {
        tell Num(Num),
    });
    impl Actor for Waiter {
        type Msg = WaiterMsg;
        async fn handle(
            &mut self,
            _msg: &mut WaiterMsg,
            _cx: &mut Context<Self>,
        ) -> Result<(), HandlerError> {
            self.gate.notified().await;
            Ok(())
        }
    }
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let waiter = system
        .spawn("waiter", move || Waiter { gate: g.clone() })
        .unwrap();
    waiter.tell(Num { sender: 1, seq: 0 }).await.unwrap();
    // The waiter's handler starts and waits, on this same thread.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(waiter.gauges().depth, 0, "the waiter's handler is running");
    // Sent from the test's own task while another actor's handler waits: no
    // handled message is its cause.
    sink.tell(Num { sender: 1, seq: 99 }).await.unwrap();
    gate.notify_one();
    system.settled().await;

    let relayed = relay_seen.take();
    assert_eq!(relayed.len(), 20);
    for (seq, id, seen_after_awaits) in &relayed {
        assert_eq!(
            *seen_after_awaits,
            Some(*id),
            "message {seq}: the relay's own message id after its awaits"
        );
    }
    let mut forwarded = sink_seen.take();
    assert_eq!(forwarded.len(), 21);
    let outside = forwarded.pop().unwrap();
    assert_eq!(outside.2, 99);
    assert_eq!(
        outside.0, None,
        "a send from outside any actor has no cause"
    );
    for (causation, _, seq) in &forwarded {
        let (_, id, _) = relayed.iter().find(|(s, _, _)| s == seq).unwrap();
        assert_eq!(
            *causation,
            Some(*id),
            "message {seq}: caused by the relayed message"
        );
    }
    system.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_tell_that_waits_for_room_is_stamped_when_it_is_queued_not_when_first_tried() {
    /// Holds its first message until `gate` opens; records the time and id
    /// of every envelope it handles.
    struct Gated {
        gate: Arc<tokio::sync::Notify>,
        stamps: Arc<Mutex<Vec<(u32, SystemTime, u64)>>>,
    }
    message_enum!(GatedMsg for Gated {
        tell Num(Num),
    });
    impl Actor for Gated {
        type Msg = GatedMsg;
        async fn handle(
            &mut self,
            msg: &mut GatedMsg,
            _cx: &mut Context<Self>,
        ) -> Result<(), HandlerError> {
            let GatedMsg::Num(n) = msg;
            if n.seq == 1 {
                self.gate.notified().await;
            }
            let meta = n.meta();
            self.stamps
                .lock()
                .unwrap()
                .push((n.seq, meta.timestamp(), meta.id().unix_millis()));
            Ok(())
        }
    }
    let gate = Arc::new(tokio::sync::Notify::new());
    let stamps = Arc::new(Mutex::new(Vec::new()));
    let system = System::builder().build().unwrap();
    let (g, s) = (gate.clone(), stamps.clone());
    let addr = system
        .spawn_with(
            "gated",
            |c| c.capacity(1),
            move || Gated {
                gate: g.clone(),
                stamps: s.clone(),
            },
        )
        .unwrap();
    // 1 is held in the handler, 2 fills the mailbox, 3 waits for room.
    addr.tell(Num { sender: 0, seq: 1 }).await.unwrap();
    tokio::task::yield_now().await;
    addr.tell(Num { sender: 0, seq: 2 }).await.unwrap();
    let first_tried = SystemTime::now();
    let third = tokio::spawn({
        let addr = addr.clone();
        async move { addr.tell(Num { sender: 0, seq: 3 }).await.unwrap() }
    });
    // Wall-clock time passes while it waits (timestamps are wall-clock).
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!third.is_finished(), "the third tell waits for room");
    gate.notify_one();
    third.await.unwrap();
    system.settled().await;
    let stamps = stamps.lock().unwrap().clone();
    let (seq, stamp, id_millis) = stamps[2];
    assert_eq!(seq, 3);
    let waited = stamp.duration_since(first_tried).unwrap_or_default();
    assert!(
        waited >= Duration::from_millis(50),
        "the third envelope is stamped when room was made, {waited:?} after its tell was first tried"
    );
    let stamp_millis = stamp.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    assert_eq!(
        id_millis, stamp_millis,
        "its id is made at the same reading"
    );
}
