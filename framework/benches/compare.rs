//! mercato against actix 0.13 and raw tokio channels, workload by workload.
//!
//! ```text
//! cargo bench -p mercato --bench compare            # full sizes
//! cargo bench -p mercato --bench compare -- --quick # a tenth of the sizes
//! ```
//!
//! Contenders:
//! - **mercato**: macro-declared actors with the default configuration
//!   (envelopes, gauges and per-message spans on) and a `tracing_subscriber`
//!   fmt subscriber installed at INFO, as a service would run them; on a
//!   2-worker multi-thread runtime and on a current-thread runtime;
//! - **raw tokio**: a task behind `mpsc::channel(1024)` (a oneshot for
//!   replies), on the same two runtime flavours;
//! - **actix 0.13**: its own one-thread `System`, mailboxes set to 1024,
//!   `do_send` for tell and fan-out, `send` for ask.
//!
//! Each throughput or latency workload runs once to warm up, then three
//! times; the table shows the median run. Spawning and memory are measured
//! in fresh child processes of this binary (three each, median), and so are
//! allocations, with a counting allocator switched on only there. The last
//! lines give mercato on the multi-thread runtime against actix, oriented so
//! that higher is better (for latency, spawn time and memory: actix / mercato).

#![allow(missing_docs, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System as SystemAlloc};
use std::collections::HashMap;
use std::future::Future;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mercato::{Event, Key, System, actor};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

// ------------------------------------------------------------------ allocation counting

/// Counts allocations and live heap bytes while `ON` is set (in a child
/// process only, so the timed runs pay one relaxed load per allocation).
struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: the caller's layout is passed on as it came.
        unsafe { SystemAlloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ON.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from this allocator with this layout.
        unsafe { SystemAlloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { SystemAlloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

// ------------------------------------------------------------------ events

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "bench.add", version = 1)]
struct Add(u64);

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "bench.total", version = 1)]
struct Total;

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "bench.cart_checked_out", version = 1)]
struct CheckedOut(u64);

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "bench.order_placed", version = 1)]
struct Placed(u64);

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "bench.parcel", version = 1)]
struct Parcel(u64);

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "bench.item_added", version = 1)]
struct ItemAdded {
    #[event(key)]
    cart: u64,
    qty: u64,
}

// ------------------------------------------------------------------ mercato actors

#[derive(Default)]
struct Summer {
    sum: u64,
}

#[actor]
impl Summer {
    #[on]
    fn add(&mut self, e: &Add) {
        self.sum += e.0;
    }

    #[reply]
    fn total(&self, _q: &Total) -> u64 {
        self.sum
    }
}

/// Counts what reaches the end of the pipeline or a fan-out.
struct Sink {
    seen: Arc<AtomicU64>,
}

#[actor]
impl Sink {
    #[on]
    fn parcel(&mut self, _e: &Parcel) {
        self.seen.fetch_add(1, Ordering::Relaxed);
    }
}

struct Cart {
    order: mercato::Addr<Order>,
}

#[actor]
impl Cart {
    #[on]
    async fn checked_out(&mut self, e: &CheckedOut) {
        let _ = self.order.tell(Placed(e.0)).await;
    }
}

struct Order {
    shipping: mercato::Addr<Sink>,
}

#[actor]
impl Order {
    #[on]
    async fn placed(&mut self, e: &Placed) {
        let _ = self.shipping.tell(Parcel(e.0)).await;
    }
}

/// One per cart id.
struct KeyedCart {
    seen: Arc<AtomicU64>,
    items: u64,
}

#[actor(entity)]
impl KeyedCart {
    #[on]
    fn added(&mut self, e: &ItemAdded) {
        self.items += e.qty;
        self.seen.fetch_add(1, Ordering::Relaxed);
    }
}

static STARTED: AtomicU64 = AtomicU64::new(0);

/// An actor that starts and then waits for a message that never comes.
struct Idle;

#[actor]
impl Idle {
    #[started]
    fn up(&mut self) {
        STARTED.fetch_add(1, Ordering::Relaxed);
    }

    #[on]
    fn add(&mut self, _e: &Add) {}
}

async fn until(seen: &AtomicU64, n: u64) {
    while seen.load(Ordering::Relaxed) < n {
        tokio::task::yield_now().await;
    }
}

// ------------------------------------------------------------------ actix actors

mod ax {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use actix::{Actor, Addr, Context, Handler, Message};

    pub(crate) struct Add(pub(crate) u64);
    impl Message for Add {
        type Result = ();
    }
    pub(crate) struct Total;
    impl Message for Total {
        type Result = u64;
    }
    // The payload travels as in the other contenders, unread at the end.
    #[allow(dead_code)]
    pub(crate) struct Step(pub(crate) u64);
    impl Message for Step {
        type Result = ();
    }
    #[allow(dead_code)]
    pub(crate) struct Parcel(pub(crate) Arc<u64>);
    impl Message for Parcel {
        type Result = ();
    }

    /// Starts `actor` with a mailbox of 1024, as the other contenders have.
    pub(crate) fn start<A: Actor<Context = Context<A>>>(actor: A) -> Addr<A> {
        A::create(|ctx| {
            ctx.set_mailbox_capacity(1024);
            actor
        })
    }

    #[derive(Default)]
    pub(crate) struct Summer {
        sum: u64,
    }
    impl Actor for Summer {
        type Context = Context<Self>;
    }
    impl Handler<Add> for Summer {
        type Result = ();
        fn handle(&mut self, m: Add, _: &mut Context<Self>) {
            self.sum += m.0;
        }
    }
    impl Handler<Total> for Summer {
        type Result = u64;
        fn handle(&mut self, _: Total, _: &mut Context<Self>) -> u64 {
            self.sum
        }
    }

    /// A pipeline stage: passes each step on, or counts it at the end.
    pub(crate) struct Stage {
        pub(crate) next: Option<Addr<Stage>>,
        pub(crate) seen: Arc<AtomicU64>,
    }
    impl Actor for Stage {
        type Context = Context<Self>;
    }
    impl Handler<Step> for Stage {
        type Result = ();
        fn handle(&mut self, m: Step, _: &mut Context<Self>) {
            match &self.next {
                Some(next) => next.do_send(m),
                None => {
                    self.seen.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    pub(crate) struct Sink {
        pub(crate) seen: Arc<AtomicU64>,
    }
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<Parcel> for Sink {
        type Result = ();
        fn handle(&mut self, _: Parcel, _: &mut Context<Self>) {
            self.seen.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) struct KeyedCart {
        pub(crate) seen: Arc<AtomicU64>,
        pub(crate) items: u64,
    }
    impl Actor for KeyedCart {
        type Context = Context<Self>;
    }
    impl Handler<Add> for KeyedCart {
        type Result = ();
        fn handle(&mut self, m: Add, _: &mut Context<Self>) {
            self.items += m.0;
            self.seen.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) struct Idle;
    impl Actor for Idle {
        type Context = Context<Self>;
        fn started(&mut self, _: &mut Context<Self>) {
            super::STARTED.fetch_add(1, Ordering::Relaxed);
        }
    }
    impl Handler<Add> for Idle {
        type Result = ();
        fn handle(&mut self, _: Add, _: &mut Context<Self>) {}
    }
}

// ------------------------------------------------------------------ workloads

/// What one run measured: the elapsed time, and for `ask` the latencies.
struct Run {
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn time(elapsed: Duration) -> Self {
        Run {
            elapsed,
            latencies: Vec::new(),
        }
    }

    /// Makes `n` round trips one after the other, timing each.
    async fn round_trips<F: Future<Output = ()>>(
        n: u64,
        mut round_trip: impl FnMut() -> F,
    ) -> Self {
        let mut latencies = Vec::with_capacity(n as usize);
        let start = Instant::now();
        for _ in 0..n {
            let t = Instant::now();
            round_trip().await;
            latencies.push(t.elapsed());
        }
        Run {
            elapsed: start.elapsed(),
            latencies,
        }
    }
}

const FAN_OUT: u64 = 8;

/// The workloads with a time to measure, each written once per contender.
#[derive(Clone, Copy)]
enum Work {
    Tell(u64),
    Pipeline(u64),
    Ask(u64),
    FanOut(u64),
    Keyed(u64, u64),
}

async fn mercato_run(work: Work) -> Run {
    let system = System::builder().build().unwrap();
    let run = match work {
        Work::Tell(n) => {
            let summer = system.start("summer", Summer::default).unwrap();
            let start = Instant::now();
            for i in 0..n {
                summer.tell(Add(i)).await.unwrap();
            }
            let total = summer.ask(Total, Duration::from_secs(60)).await.unwrap();
            let elapsed = start.elapsed();
            assert_eq!(total, n * (n - 1) / 2);
            Run::time(elapsed)
        }
        Work::Pipeline(n) => {
            let seen = Arc::new(AtomicU64::new(0));
            let s = seen.clone();
            let shipping = system
                .start("shipping", move || Sink { seen: s.clone() })
                .unwrap();
            let order = system
                .start("order", move || Order {
                    shipping: shipping.clone(),
                })
                .unwrap();
            let cart = system
                .start("cart", move || Cart {
                    order: order.clone(),
                })
                .unwrap();
            let start = Instant::now();
            for i in 0..n {
                cart.tell(CheckedOut(i)).await.unwrap();
            }
            until(&seen, n).await;
            Run::time(start.elapsed())
        }
        Work::Ask(n) => {
            let summer = &system.start("summer", Summer::default).unwrap();
            Run::round_trips(n, || async move {
                summer.ask(Total, Duration::from_secs(60)).await.unwrap();
            })
            .await
        }
        Work::FanOut(n) => {
            let seen = Arc::new(AtomicU64::new(0));
            for i in 0..FAN_OUT {
                let s = seen.clone();
                system
                    .start(&format!("sink{i}"), move || Sink { seen: s.clone() })
                    .unwrap();
            }
            let start = Instant::now();
            for i in 0..n {
                system.publish(Parcel(i)).await.unwrap();
            }
            until(&seen, n * FAN_OUT).await;
            Run::time(start.elapsed())
        }
        Work::Keyed(n, keys) => {
            let seen = Arc::new(AtomicU64::new(0));
            let s = seen.clone();
            system
                .start_entities("cart", move |_: &Key| KeyedCart {
                    seen: s.clone(),
                    items: 0,
                })
                .unwrap();
            let start = Instant::now();
            for i in 0..n {
                system
                    .publish(ItemAdded {
                        cart: i % keys,
                        qty: 1,
                    })
                    .await
                    .unwrap();
            }
            until(&seen, n).await;
            Run::time(start.elapsed())
        }
    };
    let report = system.shutdown(Duration::from_secs(30)).await;
    assert!(
        report.settled && report.undelivered.is_empty() && report.in_flight.is_empty(),
        "{report:?}"
    );
    run
}

async fn raw_run(work: Work) -> Run {
    match work {
        Work::Tell(n) => {
            let (tx, mut rx) = mpsc::channel::<Result<u64, oneshot::Sender<u64>>>(1024);
            tokio::spawn(async move {
                let mut sum = 0;
                while let Some(m) = rx.recv().await {
                    match m {
                        Ok(v) => sum += v,
                        Err(reply) => {
                            let _ = reply.send(sum);
                        }
                    }
                }
            });
            let start = Instant::now();
            for i in 0..n {
                tx.send(Ok(i)).await.unwrap();
            }
            let (rtx, rrx) = oneshot::channel();
            tx.send(Err(rtx)).await.unwrap();
            let total = rrx.await.unwrap();
            let elapsed = start.elapsed();
            assert_eq!(total, n * (n - 1) / 2);
            Run::time(elapsed)
        }
        Work::Pipeline(n) => {
            let seen = Arc::new(AtomicU64::new(0));
            let (ship_tx, mut ship_rx) = mpsc::channel::<u64>(1024);
            let (order_tx, mut order_rx) = mpsc::channel::<u64>(1024);
            let (cart_tx, mut cart_rx) = mpsc::channel::<u64>(1024);
            let s = seen.clone();
            tokio::spawn(async move {
                while ship_rx.recv().await.is_some() {
                    s.fetch_add(1, Ordering::Relaxed);
                }
            });
            tokio::spawn(async move {
                while let Some(v) = order_rx.recv().await {
                    ship_tx.send(v).await.unwrap();
                }
            });
            tokio::spawn(async move {
                while let Some(v) = cart_rx.recv().await {
                    order_tx.send(v).await.unwrap();
                }
            });
            let start = Instant::now();
            for i in 0..n {
                cart_tx.send(i).await.unwrap();
            }
            until(&seen, n).await;
            Run::time(start.elapsed())
        }
        Work::Ask(n) => {
            let (tx, mut rx) = mpsc::channel::<oneshot::Sender<u64>>(1024);
            tokio::spawn(async move {
                while let Some(reply) = rx.recv().await {
                    let _ = reply.send(0);
                }
            });
            let tx = &tx;
            Run::round_trips(n, || async move {
                let (rtx, rrx) = oneshot::channel();
                tx.send(rtx).await.unwrap();
                rrx.await.unwrap();
            })
            .await
        }
        Work::FanOut(n) => {
            let seen = Arc::new(AtomicU64::new(0));
            let mut senders = Vec::new();
            for _ in 0..FAN_OUT {
                let (tx, mut rx) = mpsc::channel::<Arc<u64>>(1024);
                let s = seen.clone();
                tokio::spawn(async move {
                    while rx.recv().await.is_some() {
                        s.fetch_add(1, Ordering::Relaxed);
                    }
                });
                senders.push(tx);
            }
            let start = Instant::now();
            for i in 0..n {
                let payload = Arc::new(i);
                for tx in &senders {
                    tx.send(payload.clone()).await.unwrap();
                }
            }
            until(&seen, n * FAN_OUT).await;
            Run::time(start.elapsed())
        }
        Work::Keyed(n, keys) => {
            let seen = Arc::new(AtomicU64::new(0));
            let mut carts: HashMap<u64, mpsc::Sender<u64>> = HashMap::new();
            let start = Instant::now();
            for i in 0..n {
                let key = i % keys;
                let tx = carts.entry(key).or_insert_with(|| {
                    let (tx, mut rx) = mpsc::channel::<u64>(1024);
                    let s = seen.clone();
                    tokio::spawn(async move {
                        let mut items = 0;
                        while let Some(q) = rx.recv().await {
                            items += q;
                            s.fetch_add(1, Ordering::Relaxed);
                        }
                        items
                    });
                    tx
                });
                tx.send(1).await.unwrap();
            }
            until(&seen, n).await;
            Run::time(start.elapsed())
        }
    }
}

async fn actix_run(work: Work) -> Run {
    match work {
        Work::Tell(n) => {
            let summer = ax::start(ax::Summer::default());
            let start = Instant::now();
            for i in 0..n {
                summer.do_send(ax::Add(i));
            }
            let total = summer.send(ax::Total).await.unwrap();
            let elapsed = start.elapsed();
            assert_eq!(total, n * (n - 1) / 2);
            Run::time(elapsed)
        }
        Work::Pipeline(n) => {
            let seen = Arc::new(AtomicU64::new(0));
            let shipping = ax::start(ax::Stage {
                next: None,
                seen: seen.clone(),
            });
            let order = ax::start(ax::Stage {
                next: Some(shipping),
                seen: seen.clone(),
            });
            let cart = ax::start(ax::Stage {
                next: Some(order),
                seen: seen.clone(),
            });
            let start = Instant::now();
            for i in 0..n {
                cart.do_send(ax::Step(i));
            }
            until(&seen, n).await;
            Run::time(start.elapsed())
        }
        Work::Ask(n) => {
            let summer = &ax::start(ax::Summer::default());
            Run::round_trips(n, || async move {
                summer.send(ax::Total).await.unwrap();
            })
            .await
        }
        Work::FanOut(n) => {
            let seen = Arc::new(AtomicU64::new(0));
            let sinks: Vec<_> = (0..FAN_OUT)
                .map(|_| ax::start(ax::Sink { seen: seen.clone() }))
                .collect();
            let start = Instant::now();
            for i in 0..n {
                let payload = Arc::new(i);
                for sink in &sinks {
                    sink.do_send(ax::Parcel(payload.clone()));
                }
            }
            until(&seen, n * FAN_OUT).await;
            Run::time(start.elapsed())
        }
        Work::Keyed(n, keys) => {
            let seen = Arc::new(AtomicU64::new(0));
            let mut carts: HashMap<u64, actix::Addr<ax::KeyedCart>> = HashMap::new();
            let start = Instant::now();
            for i in 0..n {
                let cart = carts.entry(i % keys).or_insert_with(|| {
                    ax::start(ax::KeyedCart {
                        seen: seen.clone(),
                        items: 0,
                    })
                });
                cart.do_send(ax::Add(1));
            }
            until(&seen, n).await;
            Run::time(start.elapsed())
        }
    }
}

// ------------------------------------------------------------------ contenders

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Contender {
    MercatoMulti,
    MercatoCurrent,
    RawMulti,
    RawCurrent,
    Actix,
}

const CONTENDERS: [Contender; 5] = [
    Contender::MercatoMulti,
    Contender::MercatoCurrent,
    Contender::RawMulti,
    Contender::RawCurrent,
    Contender::Actix,
];

impl Contender {
    fn arg(self) -> &'static str {
        match self {
            Contender::MercatoMulti => "mercato-mt",
            Contender::MercatoCurrent => "mercato-ct",
            Contender::RawMulti => "raw-mt",
            Contender::RawCurrent => "raw-ct",
            Contender::Actix => "actix",
        }
    }

    fn from_arg(arg: &str) -> Self {
        CONTENDERS
            .into_iter()
            .find(|c| c.arg() == arg)
            .unwrap_or_else(|| panic!("unknown contender `{arg}`"))
    }

    fn title(self) -> &'static str {
        match self {
            Contender::MercatoMulti => "mercato, multi-thread (2)",
            Contender::MercatoCurrent => "mercato, current-thread",
            Contender::RawMulti => "raw tokio, multi-thread (2)",
            Contender::RawCurrent => "raw tokio, current-thread",
            Contender::Actix => "actix 0.13",
        }
    }

    /// Runs `fut` to completion in this contender's runtime. On the
    /// multi-thread runtime it runs as a spawned task on a worker, as a
    /// request handler in a service would, not on the thread that blocks.
    fn block_on<F>(self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Contender::MercatoMulti | Contender::RawMulti => {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async { tokio::spawn(fut).await.unwrap() })
            }
            Contender::MercatoCurrent | Contender::RawCurrent => {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(fut)
            }
            Contender::Actix => actix::System::new().block_on(fut),
        }
    }

    fn run(self, work: Work) -> Run {
        match self {
            Contender::MercatoMulti | Contender::MercatoCurrent => self.block_on(mercato_run(work)),
            Contender::RawMulti | Contender::RawCurrent => self.block_on(raw_run(work)),
            Contender::Actix => self.block_on(actix_run(work)),
        }
    }

    /// Warm-up, then three runs, each on a fresh runtime; the median run.
    fn median(self, work: Work) -> Run {
        let _ = self.run(work);
        let mut runs: Vec<Run> = (0..3).map(|_| self.run(work)).collect();
        runs.sort_by_key(|r| r.elapsed);
        runs.swap_remove(1)
    }
}

// ------------------------------------------------------------------ child processes

/// Spawns `n` idle actors and reports, on one line: the time until all
/// had started, and the resident and heap bytes they added, per actor.
async fn spawn_idle(contender: Contender, n: u64) -> String {
    let rss_before = resident_bytes();
    let live_before = LIVE.load(Ordering::Relaxed);
    let start = Instant::now();
    // Each contender keeps what it spawned alive until measured.
    let mut keep: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
    match contender {
        Contender::MercatoMulti | Contender::MercatoCurrent => {
            let system = System::builder().build().unwrap();
            let mut addrs = Vec::with_capacity(n as usize);
            for _ in 0..n {
                addrs.push(system.spawn("idle", || Idle).unwrap());
            }
            keep.push(Box::new(addrs));
            keep.push(Box::new(system));
        }
        Contender::RawMulti | Contender::RawCurrent => {
            let mut senders = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let (tx, mut rx) = mpsc::channel::<u64>(1024);
                tokio::spawn(async move {
                    STARTED.fetch_add(1, Ordering::Relaxed);
                    while rx.recv().await.is_some() {}
                });
                senders.push(tx);
            }
            keep.push(Box::new(senders));
        }
        Contender::Actix => {
            let addrs: Vec<_> = (0..n).map(|_| ax::start(ax::Idle)).collect();
            keep.push(Box::new(addrs));
        }
    }
    until(&STARTED, n).await;
    let elapsed = start.elapsed();
    let heap = (LIVE.load(Ordering::Relaxed) - live_before) as f64 / n as f64;
    let rss = resident_bytes().saturating_sub(rss_before) as f64 / n as f64;
    drop(keep);
    format!("{} {heap} {rss}", elapsed.as_secs_f64())
}

/// Allocations per message in steady state: per tell, and per ask.
async fn count_allocations(contender: Contender, n: u64) -> String {
    let per = |before: u64| (ALLOCS.load(Ordering::Relaxed) - before) as f64 / n as f64;
    match contender {
        Contender::MercatoMulti | Contender::MercatoCurrent => {
            let system = System::builder().build().unwrap();
            let summer = system.start("summer", Summer::default).unwrap();
            for i in 0..n {
                summer.tell(Add(i)).await.unwrap();
            }
            system.settled().await;
            let before = ALLOCS.load(Ordering::Relaxed);
            for i in 0..n {
                summer.tell(Add(i)).await.unwrap();
            }
            system.settled().await;
            let tell = per(before);
            let before = ALLOCS.load(Ordering::Relaxed);
            for _ in 0..n {
                summer.ask(Total, Duration::from_secs(60)).await.unwrap();
            }
            let ask = per(before);
            system.shutdown(Duration::from_secs(5)).await;
            format!("{tell} {ask}")
        }
        Contender::RawMulti | Contender::RawCurrent => {
            let (tx, mut rx) = mpsc::channel::<Result<u64, oneshot::Sender<u64>>>(1024);
            tokio::spawn(async move {
                let mut sum = 0;
                while let Some(m) = rx.recv().await {
                    match m {
                        Ok(v) => sum += v,
                        Err(reply) => {
                            let _ = reply.send(sum);
                        }
                    }
                }
            });
            let flush = async || {
                let (rtx, rrx) = oneshot::channel();
                tx.send(Err(rtx)).await.unwrap();
                rrx.await.unwrap()
            };
            for i in 0..n {
                tx.send(Ok(i)).await.unwrap();
            }
            flush().await;
            let before = ALLOCS.load(Ordering::Relaxed);
            for i in 0..n {
                tx.send(Ok(i)).await.unwrap();
            }
            flush().await;
            let tell = per(before);
            let before = ALLOCS.load(Ordering::Relaxed);
            for _ in 0..n {
                flush().await;
            }
            let ask = per(before);
            format!("{tell} {ask}")
        }
        Contender::Actix => {
            let summer = ax::start(ax::Summer::default());
            for i in 0..n {
                summer.do_send(ax::Add(i));
            }
            summer.send(ax::Total).await.unwrap();
            let before = ALLOCS.load(Ordering::Relaxed);
            for i in 0..n {
                summer.do_send(ax::Add(i));
            }
            summer.send(ax::Total).await.unwrap();
            let tell = per(before);
            let before = ALLOCS.load(Ordering::Relaxed);
            for _ in 0..n {
                summer.send(ax::Total).await.unwrap();
            }
            let ask = per(before);
            format!("{tell} {ask}")
        }
    }
}

/// Runs `what` for `contender` in a fresh process of this binary, three
/// times; the median of each figure it reports.
fn in_child(what: &str, contender: Contender, n: u64) -> Vec<f64> {
    let exe = std::env::current_exe().unwrap();
    let mut runs: Vec<Vec<f64>> = (0..3)
        .map(|_| {
            let out = Command::new(&exe)
                .args(["--child", what, contender.arg(), &n.to_string()])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "child `{what} {}` failed: {}",
                contender.arg(),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(|f| f.parse().unwrap())
                .collect()
        })
        .collect();
    (0..runs[0].len())
        .map(|i| {
            runs.sort_by(|a, b| a[i].total_cmp(&b[i]));
            runs[1][i]
        })
        .collect()
}

fn child(args: &[String]) {
    let (what, contender, n, runs, keys) = match args {
        [what, contender, n] => (what, contender, n, None, None),
        [what, contender, n, runs] => (what, contender, n, Some(runs), None),
        [what, contender, n, runs, keys] if what == "keyed" => {
            (what, contender, n, Some(runs), Some(keys))
        }
        _ => panic!(
            "usage: --child <spawn|allocs|tell|pipeline|ask|fan-out|keyed> <contender> <n> [runs] \
             (keyed also takes [keys] after runs)"
        ),
    };
    let contender = Contender::from_arg(contender);
    let n: u64 = from_one("n", n);
    ON.store(
        matches!(what.as_str(), "spawn" | "allocs"),
        Ordering::Relaxed,
    );
    let line = match what.as_str() {
        "spawn" | "allocs" if runs.is_some() => {
            panic!("`{what}` runs once per process: it measures a fresh one")
        }
        "spawn" => contender.block_on(spawn_idle(contender, n)),
        "allocs" => contender.block_on(count_allocations(contender, n)),
        // A timed workload alone, for a profiler: once, or `runs` times in
        // this one process (each time printed), to see what a warm process
        // changes.
        timed => {
            let work = match timed {
                "tell" => Work::Tell(n),
                "pipeline" => Work::Pipeline(n),
                "ask" => Work::Ask(n),
                "fan-out" => Work::FanOut(n),
                // Ten events per key unless told how many keys.
                "keyed" => Work::Keyed(n, keys.map_or((n / 10).max(1), |k| from_one("keys", k))),
                other => panic!("unknown child workload `{other}`"),
            };
            let runs: u32 = runs.map_or(1, |r| from_one("runs", r));
            (0..runs)
                .map(|_| contender.run(work).elapsed.as_secs_f64().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    println!("{line}");
}

/// A child's count argument `name`: a whole number from 1, or a panic that
/// names it.
fn from_one<T: std::str::FromStr + From<u8> + PartialOrd>(name: &str, text: &str) -> T {
    match text.parse() {
        Ok(v) if v >= T::from(1) => v,
        _ => panic!("`{name}` must be a whole number from 1, not `{text}`"),
    }
}

// ------------------------------------------------------------------ table

/// One row: a figure per contender, printed with `show`; `better` says
/// whether higher figures are better (for the ratio columns).
struct Row {
    name: String,
    figures: Vec<f64>,
    show: fn(f64) -> String,
    higher_is_better: bool,
    /// Set for the rows that get a `ratio … vs actix` line.
    ratio_line: Option<&'static str>,
    /// Allocation counts are not turned into ratios.
    ratios: bool,
}

impl Row {
    fn figure(&self, c: Contender) -> f64 {
        self.figures[CONTENDERS.iter().position(|x| *x == c).unwrap()]
    }

    /// How much better `a` is than `b` on this row (above 1: `a` is better).
    fn ratio(&self, a: Contender, b: Contender) -> f64 {
        let (a, b) = (self.figure(a), self.figure(b));
        if self.higher_is_better { a / b } else { b / a }
    }
}

fn rate(n: u64, run: &Run) -> f64 {
    n as f64 / run.elapsed.as_secs_f64()
}

fn show_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else {
        format!("{:.0} k/s", r / 1e3)
    }
}

fn show_duration(secs: f64) -> String {
    if secs >= 1e-3 {
        format!("{:.1} ms", secs * 1e3)
    } else if secs >= 1e-6 {
        format!("{:.2} µs", secs * 1e6)
    } else {
        format!("{:.0} ns", secs * 1e9)
    }
}

fn show_bytes(b: f64) -> String {
    format!("{b:.0} B")
}

fn show_count(c: f64) -> String {
    format!("{c:.2}")
}

fn percentile(latencies: &mut [Duration], p: f64) -> Duration {
    latencies.sort_unstable();
    let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
    latencies[i]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .init();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        child(&args[at + 1..]);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    let tell_n = 2_000_000 / scale;
    let pipeline_n = 1_000_000 / scale;
    let ask_n = 200_000 / scale;
    let spawn_n = 100_000 / scale;
    let fan_n = 200_000 / scale;
    let (keyed_n, keys) = (1_000_000 / scale, 100_000 / scale);
    let alloc_n = 100_000 / scale;

    let mut rows: Vec<Row> = Vec::new();
    let timed = |name: String, n: u64, work: Work, ratio_line: &'static str| {
        let figures = CONTENDERS
            .iter()
            .map(|c| {
                eprintln!("  {name}: {}", c.title());
                rate(n, &c.median(work))
            })
            .collect();
        Row {
            name,
            figures,
            show: show_rate,
            higher_is_better: true,
            ratio_line: Some(ratio_line),
            ratios: true,
        }
    };
    rows.push(timed(
        format!("1. tell ({tell_n} msgs)"),
        tell_n,
        Work::Tell(tell_n),
        "tell",
    ));
    rows.push(timed(
        format!("2. pipeline, 3 actors ({pipeline_n} msgs)"),
        pipeline_n,
        Work::Pipeline(pipeline_n),
        "pipeline",
    ));

    let mut asks: Vec<Run> = CONTENDERS
        .iter()
        .map(|c| {
            eprintln!("  ask: {}", c.title());
            c.median(Work::Ask(ask_n))
        })
        .collect();
    let mean: Vec<f64> = asks
        .iter()
        .map(|r| r.elapsed.as_secs_f64() / ask_n as f64)
        .collect();
    let mut pct = |p: f64| -> Vec<f64> {
        asks.iter_mut()
            .map(|r| percentile(&mut r.latencies, p).as_secs_f64())
            .collect()
    };
    let (p50, p99) = (pct(0.5), pct(0.99));
    for (name, figures, line) in [
        (format!("3. ask ({ask_n}), mean"), mean, Some("ask")),
        ("3. ask, p50".to_owned(), p50, None),
        ("3. ask, p99".to_owned(), p99, None),
    ] {
        rows.push(Row {
            name,
            figures,
            show: show_duration,
            higher_is_better: false,
            ratio_line: line,
            ratios: true,
        });
    }

    let spawned: Vec<Vec<f64>> = CONTENDERS
        .iter()
        .map(|c| {
            eprintln!("  spawn: {}", c.title());
            in_child("spawn", *c, spawn_n)
        })
        .collect();
    for (i, name, show, line) in [
        (
            0,
            format!("4. spawn {spawn_n} idle actors, time"),
            show_duration as fn(f64) -> String,
            Some("spawn"),
        ),
        (
            1,
            "4. heap bytes per idle actor".to_owned(),
            show_bytes,
            Some("memory"),
        ),
        (
            2,
            "4. resident bytes per idle actor".to_owned(),
            show_bytes,
            None,
        ),
    ] {
        rows.push(Row {
            name,
            figures: spawned.iter().map(|f| f[i]).collect(),
            show,
            higher_is_better: false,
            ratio_line: line,
            ratios: true,
        });
    }

    rows.push(timed(
        format!("5. fan-out to {FAN_OUT} ({fan_n} publishes)"),
        fan_n,
        Work::FanOut(fan_n),
        "fan-out",
    ));
    rows.push(timed(
        format!("6. keyed, {keys} keys ({keyed_n} events)"),
        keyed_n,
        Work::Keyed(keyed_n, keys),
        "keyed",
    ));

    let allocs: Vec<Vec<f64>> = CONTENDERS
        .iter()
        .map(|c| {
            eprintln!("  allocations: {}", c.title());
            in_child("allocs", *c, alloc_n)
        })
        .collect();
    for (i, name) in [
        (0, "7. heap allocations per tell"),
        (1, "7. heap allocations per ask"),
    ] {
        rows.push(Row {
            name: name.to_owned(),
            figures: allocs.iter().map(|f| f[i]).collect(),
            show: show_count,
            higher_is_better: false,
            ratio_line: None,
            ratios: false,
        });
    }

    print!("| workload |");
    for c in CONTENDERS {
        print!(" {} |", c.title());
    }
    println!(
        " mercato mt / actix | mercato ct / actix | mercato mt / raw mt | mercato ct / raw ct |"
    );
    println!("|{}", " --- |".repeat(CONTENDERS.len() + 5));
    for row in &rows {
        print!("| {} |", row.name);
        for c in CONTENDERS {
            print!(" {} |", (row.show)(row.figure(c)));
        }
        for (a, b) in [
            (Contender::MercatoMulti, Contender::Actix),
            (Contender::MercatoCurrent, Contender::Actix),
            (Contender::MercatoMulti, Contender::RawMulti),
            (Contender::MercatoCurrent, Contender::RawCurrent),
        ] {
            if row.ratios {
                print!(" {:.2} |", row.ratio(a, b));
            } else {
                print!(" |");
            }
        }
        println!();
    }
    println!();
    println!("ratios above 1.00: mercato is better; multi-thread (2) mercato against actix:");
    for row in &rows {
        if let Some(line) = row.ratio_line {
            println!(
                "ratio {line} vs actix: {:.2}",
                row.ratio(Contender::MercatoMulti, Contender::Actix)
            );
        }
    }
}
