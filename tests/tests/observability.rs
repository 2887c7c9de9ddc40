//! The gauges an operator reads.

// In tests, an unwrap that fails is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

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
