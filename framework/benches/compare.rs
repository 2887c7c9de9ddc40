//! mercato against raw tokio channels, workload by workload.
//!
//! ```text
//! cargo bench -p mercato --bench compare            # full sizes
//! cargo bench -p mercato --bench compare -- --quick # a tenth of the sizes
//! ```
//!
//! Each workload runs once to warm up, then three times; the table shows
//! the median. mercato runs macro-declared actors with the default
//! configuration (envelopes, gauges and per-message spans on) and a
//! `tracing_subscriber` fmt subscriber installed at INFO, as a service
//! would. Raw tokio is a task behind `mpsc::channel(1024)` (a oneshot for
//! replies). Both run on a 2-worker multi-thread runtime and on a
//! current-thread runtime. Ratios are mercato / raw of the same flavour,
//! oriented so that higher is better for mercato.

#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mercato::{Event, Key, System, actor};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

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

    #[on]
    fn added(&mut self, _e: &ItemAdded) {
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

async fn until(seen: &AtomicU64, n: u64) {
    while seen.load(Ordering::Relaxed) < n {
        tokio::task::yield_now().await;
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
}

async fn mercato_tell(n: u64) -> Run {
    let system = System::builder().build().unwrap();
    let summer = system.start("summer", Summer::default).unwrap();
    let start = Instant::now();
    for i in 0..n {
        summer.tell(Add(i)).await.unwrap();
    }
    let total = summer.ask(Total, Duration::from_secs(60)).await.unwrap();
    let elapsed = start.elapsed();
    assert_eq!(total, n * (n - 1) / 2);
    system.shutdown(Duration::from_secs(5)).await;
    Run::time(elapsed)
}

async fn raw_tell(n: u64) -> Run {
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

async fn mercato_pipeline(n: u64) -> Run {
    let system = System::builder().build().unwrap();
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
    let elapsed = start.elapsed();
    system.shutdown(Duration::from_secs(5)).await;
    Run::time(elapsed)
}

async fn raw_pipeline(n: u64) -> Run {
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

async fn mercato_ask(n: u64) -> Run {
    let system = System::builder().build().unwrap();
    let summer = system.start("summer", Summer::default).unwrap();
    let mut latencies = Vec::with_capacity(n as usize);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        summer.ask(Total, Duration::from_secs(60)).await.unwrap();
        latencies.push(t.elapsed());
    }
    let elapsed = start.elapsed();
    system.shutdown(Duration::from_secs(5)).await;
    Run { elapsed, latencies }
}

async fn raw_ask(n: u64) -> Run {
    let (tx, mut rx) = mpsc::channel::<oneshot::Sender<u64>>(1024);
    tokio::spawn(async move {
        while let Some(reply) = rx.recv().await {
            let _ = reply.send(0);
        }
    });
    let mut latencies = Vec::with_capacity(n as usize);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let (rtx, rrx) = oneshot::channel();
        tx.send(rtx).await.unwrap();
        rrx.await.unwrap();
        latencies.push(t.elapsed());
    }
    Run {
        elapsed: start.elapsed(),
        latencies,
    }
}

const FAN_OUT: u64 = 8;

async fn mercato_fan_out(n: u64) -> Run {
    let system = System::builder().build().unwrap();
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
    let elapsed = start.elapsed();
    system.shutdown(Duration::from_secs(5)).await;
    Run::time(elapsed)
}

async fn raw_fan_out(n: u64) -> Run {
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

async fn mercato_keyed(n: u64, keys: u64) -> Run {
    let system = System::builder().build().unwrap();
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
    let elapsed = start.elapsed();
    system.shutdown(Duration::from_secs(30)).await;
    Run::time(elapsed)
}

async fn raw_keyed(n: u64, keys: u64) -> Run {
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

// ------------------------------------------------------------------ driver

#[derive(Clone, Copy, PartialEq)]
enum Flavour {
    MultiThread,
    CurrentThread,
}

impl Flavour {
    fn runtime(self) -> tokio::runtime::Runtime {
        match self {
            Flavour::MultiThread => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
            Flavour::CurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Flavour::MultiThread => "multi-thread (2)",
            Flavour::CurrentThread => "current-thread",
        }
    }
}

/// Warm-up, then three runs, each on a fresh runtime; the median run.
fn median<F, Fut>(flavour: Flavour, work: F) -> Run
where
    F: Fn() -> Fut,
    Fut: Future<Output = Run>,
{
    let _ = flavour.runtime().block_on(work());
    let mut runs: Vec<Run> = (0..3).map(|_| flavour.runtime().block_on(work())).collect();
    runs.sort_by_key(|r| r.elapsed);
    runs.swap_remove(1)
}

fn percentile(latencies: &mut [Duration], p: f64) -> Duration {
    latencies.sort_unstable();
    let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
    latencies[i]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .init();

    let tell_n = 2_000_000 / scale;
    let pipeline_n = 1_000_000 / scale;
    let ask_n = 200_000 / scale;
    let fan_n = 200_000 / scale;
    let (keyed_n, keys) = (1_000_000 / scale, 100_000 / scale);

    println!("| workload | runtime | mercato | raw tokio | mercato / raw |");
    println!("| --- | --- | --- | --- | --- |");
    for flavour in [Flavour::MultiThread, Flavour::CurrentThread] {
        let rate = |n: u64, r: &Run| n as f64 / r.elapsed.as_secs_f64();
        let row = |name: &str, n: u64, m: &Run, r: &Run| {
            println!(
                "| {name} | {} | {:.0} msg/s | {:.0} msg/s | {:.2} |",
                flavour.name(),
                rate(n, m),
                rate(n, r),
                rate(n, m) / rate(n, r)
            );
        };
        let m = median(flavour, || mercato_tell(tell_n));
        let r = median(flavour, || raw_tell(tell_n));
        row(&format!("tell ({tell_n})"), tell_n, &m, &r);
        let m = median(flavour, || mercato_pipeline(pipeline_n));
        let r = median(flavour, || raw_pipeline(pipeline_n));
        row(
            &format!("pipeline, 3 actors ({pipeline_n})"),
            pipeline_n,
            &m,
            &r,
        );
        let mut m = median(flavour, || mercato_ask(ask_n));
        let mut r = median(flavour, || raw_ask(ask_n));
        let mean = |run: &Run| run.elapsed / ask_n as u32;
        println!(
            "| ask ({ask_n}), mean / p50 / p99 | {} | {:?} / {:?} / {:?} | {:?} / {:?} / {:?} | {:.2} |",
            flavour.name(),
            mean(&m),
            percentile(&mut m.latencies, 0.5),
            percentile(&mut m.latencies, 0.99),
            mean(&r),
            percentile(&mut r.latencies, 0.5),
            percentile(&mut r.latencies, 0.99),
            mean(&r).as_secs_f64() / mean(&m).as_secs_f64()
        );
        let m = median(flavour, || mercato_fan_out(fan_n));
        let r = median(flavour, || raw_fan_out(fan_n));
        row(&format!("fan-out to {FAN_OUT} ({fan_n})"), fan_n, &m, &r);
        let m = median(flavour, || mercato_keyed(keyed_n, keys));
        let r = median(flavour, || raw_keyed(keyed_n, keys));
        row(&format!("keyed, {keys} keys ({keyed_n})"), keyed_n, &m, &r);
    }
}
