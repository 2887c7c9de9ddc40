//! Timers: delayed and periodic self-messages, coalescing, cancellation,
//! and timers stopping with the actor and the system. All on paused time.

// In tests, an unwrap that fails is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Num, log};
use mercato::{Actor, Context, HandlerError, System, TimerId};
use tokio::time::Instant;

/// Starts timers in `started`; records when each tick or delayed message
/// arrives; a tick handler takes `busy` of (virtual) time.
struct Clocked {
    start: Instant,
    period: Duration,
    busy: Duration,
    delayed: Option<Duration>,
    arrivals: common::parking_lot_free::Log<(u32, Duration)>,
    timer: Option<TimerId>,
}

message_enum!(ClockedMsg for Clocked {
    tell Num(Num),
});

impl Actor for Clocked {
    type Msg = ClockedMsg;
    async fn started(&mut self, cx: &mut Context<Self>) -> Result<(), HandlerError> {
        if !self.period.is_zero() {
            self.timer = Some(cx.every(self.period, || Num { sender: 1, seq: 0 }));
        }
        if let Some(delay) = self.delayed {
            cx.send_later(delay, Num { sender: 2, seq: 0 });
        }
        Ok(())
    }
    async fn handle(
        &mut self,
        msg: &mut ClockedMsg,
        cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        let ClockedMsg::Num(n) = msg;
        self.arrivals.push((n.sender, self.start.elapsed()));
        match n.sender {
            1 => tokio::time::sleep(self.busy).await,
            3 => {
                if let Some(timer) = self.timer.take() {
                    assert!(cx.cancel_timer(timer));
                    assert!(!cx.cancel_timer(timer), "a cancelled timer is gone");
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn clocked(
    period: Duration,
    busy: Duration,
    delayed: Option<Duration>,
) -> (
    impl Fn() -> Clocked + Send + Sync + 'static,
    common::parking_lot_free::Log<(u32, Duration)>,
) {
    let arrivals = log();
    let a = arrivals.clone();
    let start = Instant::now();
    (
        move || Clocked {
            start,
            period,
            busy,
            delayed,
            arrivals: a.clone(),
            timer: None,
        },
        arrivals,
    )
}

#[tokio::test(start_paused = true)]
async fn send_later_arrives_after_its_delay() {
    let system = System::builder().build().unwrap();
    let (factory, arrivals) = clocked(
        Duration::ZERO,
        Duration::ZERO,
        Some(Duration::from_millis(1500)),
    );
    system.spawn("clocked", factory).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    system.settled().await;
    let got = arrivals.take();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0], (2, Duration::from_millis(1500)));
}

#[tokio::test(start_paused = true)]
async fn periodic_ticks_arrive_every_period() {
    let system = System::builder().build().unwrap();
    let (factory, arrivals) = clocked(Duration::from_millis(100), Duration::ZERO, None);
    system.spawn("clocked", factory).unwrap();
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let times: Vec<Duration> = arrivals.take().into_iter().map(|(_, t)| t).collect();
    let expected: Vec<Duration> = (1..=10).map(|n| Duration::from_millis(100 * n)).collect();
    assert_eq!(times, expected);
}

#[tokio::test(start_paused = true)]
async fn periodic_ticks_coalesce_while_the_handler_is_busy() {
    let system = System::builder().build().unwrap();
    // Ticks every 100 ms, each handled in 350 ms: they must not pile up.
    let (factory, arrivals) = clocked(Duration::from_millis(100), Duration::from_millis(350), None);
    let addr = system
        .spawn_with("clocked", |c| c.capacity(2), factory)
        .unwrap();
    let mut max_depth = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        max_depth = max_depth.max(addr.gauges().depth);
    }
    let handled = arrivals.len();
    // 2 s at 350 ms per tick: at most 6 handled, instead of 20 ticks queued.
    assert!((5..=6).contains(&handled), "handled {handled} ticks");
    assert_eq!(max_depth, 0, "ticks travel outside the mailbox capacity");
    assert_eq!(addr.gauges().enqueued, 0);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_timer_stops_ticking() {
    let system = System::builder().build().unwrap();
    let (factory, arrivals) = clocked(Duration::from_millis(100), Duration::ZERO, None);
    let addr = system.spawn("clocked", factory).unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    addr.tell(Num { sender: 3, seq: 0 }).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ticks = arrivals.take().iter().filter(|(s, _)| *s == 1).count();
    assert_eq!(ticks, 3);
}

#[tokio::test(start_paused = true)]
async fn timers_stop_when_the_system_shuts_down() {
    let system = System::builder().build().unwrap();
    let (factory, arrivals) = clocked(
        Duration::from_millis(100),
        Duration::ZERO,
        Some(Duration::from_secs(5)),
    );
    system.spawn("clocked", factory).unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let report = system.shutdown(Duration::from_secs(10)).await;
    assert!(report.settled);
    let before = arrivals.len();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        arrivals.len(),
        before,
        "no tick or delayed message after shutdown"
    );
    assert_eq!(before, 2);
}

#[tokio::test(start_paused = true)]
async fn timers_of_a_restarted_actor_are_replaced_not_doubled() {
    common::quiet_panics();
    /// Panics on its first tick; restarts and ticks on.
    struct Ticker {
        arrivals: common::parking_lot_free::Log<Duration>,
        start: Instant,
    }
    message_enum!(TickerMsg for Ticker {
        tell Num(Num),
    });
    impl Actor for Ticker {
        type Msg = TickerMsg;
        async fn started(&mut self, cx: &mut Context<Self>) -> Result<(), HandlerError> {
            cx.every(Duration::from_millis(100), || Num { sender: 1, seq: 0 });
            Ok(())
        }
        async fn handle(
            &mut self,
            _msg: &mut TickerMsg,
            _cx: &mut Context<Self>,
        ) -> Result<(), HandlerError> {
            self.arrivals.push(self.start.elapsed());
            if self.arrivals.len() == 1 {
                panic!("ticker broke");
            }
            Ok(())
        }
    }
    let system = System::builder().build().unwrap();
    let arrivals = log();
    let a = arrivals.clone();
    let start = Instant::now();
    system
        .spawn_with(
            "ticker",
            |c| c.retry_after_panic(false).backoff(mercato::Backoff::none()),
            move || Ticker {
                arrivals: a.clone(),
                start,
            },
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1050)).await;
    // One timer before the panic, one after: ten ticks, not more.
    assert_eq!(arrivals.len(), 10, "{:?}", arrivals.take());
}
