//! Configuration: defaults, overrides by name and at the spawn site, and
//! every invalid value refused with an error naming its field.

// In tests, an unwrap that fails is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Num;
use mercato::{Actor, Backoff, Context, HandlerError, Intensity, Overflow, System, SystemError};

struct Idle;

message_enum!(IdleMsg for Idle {
    tell Num(Num),
});

impl Actor for Idle {
    type Msg = IdleMsg;
    async fn handle(
        &mut self,
        _msg: &mut IdleMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        Ok(())
    }
}

type Configure = Box<dyn Fn(mercato::ActorConfig) -> mercato::ActorConfig>;

fn field(err: SystemError) -> &'static str {
    match err {
        SystemError::Config(e) => e.field(),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn building_outside_a_runtime_says_how_to_fix_it() {
    let err = System::builder().build().unwrap_err();
    assert_eq!(err, SystemError::NoRuntime);
    assert!(err.to_string().contains("#[tokio::main]"));
}

#[tokio::test]
async fn invalid_defaults_are_refused_at_build_naming_the_field() {
    let cases: Vec<(Configure, &str)> = vec![
        (Box::new(|c| c.capacity(0)), "mailbox.capacity"),
        (
            Box::new(|c| c.intensity(Intensity::new(3, Duration::ZERO))),
            "supervision.intensity.within",
        ),
        (
            Box::new(|c| {
                c.backoff(Backoff::exponential(
                    Duration::from_secs(2),
                    Duration::from_secs(1),
                ))
            }),
            "supervision.backoff.max",
        ),
        (
            Box::new(|c| c.backoff(Backoff::default().multiplier(0.5))),
            "supervision.backoff.multiplier",
        ),
        (
            Box::new(|c| c.backoff(Backoff::default().jitter(-0.1))),
            "supervision.backoff.jitter",
        ),
        (
            Box::new(|c| c.backoff(Backoff::default().multiplier(f64::NAN))),
            "supervision.backoff.multiplier",
        ),
    ];
    for (configure, expected) in cases {
        let err = System::builder().defaults(configure).build().unwrap_err();
        let text = err.to_string();
        assert_eq!(field(err), expected);
        assert!(text.contains(expected) && text.contains("must"), "{text}");
    }
}

#[tokio::test]
async fn an_invalid_override_by_name_is_refused_at_build() {
    let err = System::builder()
        .configure("payment", |c| c.capacity(0))
        .build()
        .unwrap_err();
    assert_eq!(field(err), "mailbox.capacity");
}

#[tokio::test]
async fn an_invalid_spawn_site_value_is_refused_at_spawn() {
    let system = System::builder().build().unwrap();
    let err = system
        .spawn_with("idle", |c| c.capacity(0), || Idle)
        .unwrap_err();
    assert_eq!(field(err), "mailbox.capacity");
    assert!(system.mailboxes().is_empty(), "nothing was spawned");
}

#[tokio::test]
async fn overrides_by_name_win_over_the_spawn_site_which_wins_over_defaults() {
    let system = System::builder()
        .defaults(|c| c.capacity(100))
        .configure("special", |c| c.capacity(7).overflow(Overflow::Reject))
        .build()
        .unwrap();
    let plain = system.spawn("plain", || Idle).unwrap();
    let site = system
        .spawn_with("site", |c| c.capacity(20), || Idle)
        .unwrap();
    let special = system
        .spawn_with("special", |c| c.capacity(20), || Idle)
        .unwrap();
    assert_eq!(plain.gauges().capacity, 100);
    assert_eq!(site.gauges().capacity, 20);
    assert_eq!(special.gauges().capacity, 7);
    // The override's policy applies too: the 8th message is refused.
    system.settled().await;
    let mut refused = 0;
    for seq in 0..8 {
        if special.try_tell(Num { sender: 0, seq }).is_err() {
            refused += 1;
        }
    }
    assert!(refused >= 1);
}

#[test]
fn map_backoff_changes_only_what_it_sets() {
    let base = mercato::ActorConfig::default()
        .backoff(Backoff::exponential(Duration::from_secs(1), Duration::from_secs(60)).jitter(0.5));
    let changed = base.map_backoff(|b| b.initial(Duration::from_secs(2)));
    let expected = mercato::Supervision::default()
        .backoff(Backoff::exponential(Duration::from_secs(2), Duration::from_secs(60)).jitter(0.5));
    assert_eq!(changed.supervision_config(), expected);
}

#[tokio::test]
async fn an_override_by_an_entity_name_applies_to_that_entity_alone() {
    let system = System::builder()
        .defaults(|c| c.capacity(100))
        .configure("carts/7", |c| c.capacity(3))
        .build()
        .unwrap();
    let carts = system.entities("carts", |_| Idle).unwrap();
    for key in [7_u32, 8] {
        carts
            .tell(
                u64::from(key),
                Num {
                    sender: 0,
                    seq: key,
                },
            )
            .await
            .unwrap();
    }
    let capacities: Vec<(String, usize)> = system
        .mailboxes()
        .into_iter()
        .map(|g| (g.actor, g.capacity))
        .collect();
    assert_eq!(
        capacities,
        [("carts/7".to_owned(), 3), ("carts/8".to_owned(), 100)]
    );
}
