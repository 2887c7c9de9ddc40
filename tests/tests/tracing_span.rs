//! Tracing: one root span per handled message, with actor, event, event id and
//! correlation id; correlation and causation ids link what handlers send.
//! A handled message's span is a root, also when an ask handles it in the
//! asker's task. Every test of this binary installs a subscriber: tracing
//! caches per-callsite interest globally, so a test running at the same time
//! without one would interfere.

// In tests, an unwrap that fails is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::{Num, Query, log};
use mercato::{Actor, Addr, Context, EventId, HandlerError, System};
use tracing::Instrument;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Forwards to `next`, if any; records the ids of what it handles.
struct Hop {
    next: Option<Addr<Hop>>,
    ids: common::parking_lot_free::Log<(EventId, EventId, Option<EventId>)>,
}

message_enum!(HopMsg for Hop {
    tell Num(Num),
});

impl Actor for Hop {
    type Msg = HopMsg;
    async fn handle(
        &mut self,
        msg: &mut HopMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        let HopMsg::Num(n) = msg;
        let meta = n.meta();
        self.ids
            .push((meta.id(), meta.correlation_id(), meta.causation_id()));
        if let Some(next) = &self.next {
            next.tell(Num {
                sender: 1,
                seq: n.seq,
            })
            .await?;
        }
        Ok(())
    }
}

type SpanFields = Vec<(String, String)>;

#[derive(Default, Clone)]
struct Spans(Arc<Mutex<Vec<SpanFields>>>);

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _cx: LayerContext<'_, S>,
    ) {
        if attrs.metadata().name() == "handle" {
            let mut fields = vec![("root".to_owned(), attrs.is_root().to_string())];
            attrs.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().push(fields);
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_span_per_handled_message_carries_actor_event_and_ids_and_ids_link_causes() {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let system = System::builder().build().unwrap();
    let ids = log();
    let i = ids.clone();
    let second = system
        .spawn("second", move || Hop {
            next: None,
            ids: i.clone(),
        })
        .unwrap();
    let i = ids.clone();
    let first = system
        .spawn("first", move || Hop {
            next: Some(second.clone()),
            ids: i.clone(),
        })
        .unwrap();
    first.tell(Num { sender: 0, seq: 1 }).await.unwrap();
    system.settled().await;

    let ids = ids.take();
    assert_eq!(ids.len(), 2);
    let (first_id, first_corr, first_cause) = ids[0];
    let (second_id, second_corr, second_cause) = ids[1];
    assert_eq!(
        first_corr, first_id,
        "an outside tell starts its own correlation"
    );
    assert_eq!(first_cause, None);
    assert_eq!(
        second_corr, first_corr,
        "sent from a handler: same correlation"
    );
    assert_eq!(
        second_cause,
        Some(first_id),
        "sent from a handler: caused by the handled message"
    );
    assert!(second_id > first_id, "ids are time-ordered");

    let spans = spans.0.lock().unwrap().clone();
    assert_eq!(spans.len(), 2, "one span per handled message");
    let get = |span: &Vec<(String, String)>, name: &str| {
        span.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    };
    assert_eq!(get(&spans[0], "actor").as_deref(), Some("first"));
    assert_eq!(get(&spans[1], "actor").as_deref(), Some("second"));
    assert_eq!(get(&spans[0], "event").as_deref(), Some("test.num"));
    assert_eq!(get(&spans[0], "event_id"), Some(first_id.to_string()));
    assert_eq!(get(&spans[1], "correlation_id"), Some(first_id.to_string()));
    assert_eq!(get(&spans[0], "attempt").as_deref(), Some("1"));
    assert_eq!(get(&spans[0], "root").as_deref(), Some("true"));
}

/// Answers with the id of the task that handles the request.
struct Answer;

message_enum!(AnswerMsg for Answer {
    ask Which(Query => Option<tokio::task::Id>),
});

impl Actor for Answer {
    type Msg = AnswerMsg;
    async fn handle(
        &mut self,
        msg: &mut AnswerMsg,
        _cx: &mut Context<Self>,
    ) -> Result<(), HandlerError> {
        let AnswerMsg::Which(request) = msg;
        request.reply(tokio::task::try_id());
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_handled_in_the_askers_task_gets_a_root_span_not_a_child_of_the_askers() {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let system = System::builder().build().unwrap();
    let answer = system.spawn("answer", || Answer).unwrap();
    let timeout = std::time::Duration::from_secs(1);
    // A first request gives the actor a task of its own.
    answer.ask(Query(0), timeout).await.unwrap();
    let asker = tokio::spawn(
        async move {
            let handled_in = answer.ask(Query(1), timeout).await.unwrap();
            (tokio::task::id(), handled_in)
        }
        .instrument(tracing::info_span!("request")),
    );
    let (asker, handled_in) = asker.await.unwrap();
    assert_eq!(handled_in, Some(asker), "handled in the asker's task");
    let spans = spans.0.lock().unwrap().clone();
    assert_eq!(spans.len(), 2);
    for span in &spans {
        assert!(
            span.contains(&("root".to_owned(), "true".to_owned())),
            "the handle span has no parent, wherever it runs: {span:?}"
        );
    }
    system.shutdown(timeout).await;
}
