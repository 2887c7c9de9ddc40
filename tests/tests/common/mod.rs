//! Shared test actors and helpers.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use mercato::Event;
use parking_lot_free::Log;
use serde::{Deserialize, Serialize};

/// Declares an actor's message enum with its `Message`, `Handles` and
/// `Answers` impls: `message_enum!(Msg for Actor { tell Variant(Event), ask Variant(Query => Reply) })`.
#[macro_export]
macro_rules! message_enum {
    ($msg:ident for $actor:ty { $(tell $tv:ident($te:ty),)* $(ask $av:ident($aq:ty => $ar:ty),)* }) => {
        #[allow(missing_docs, unreachable_pub)]
        pub enum $msg {
            $($tv(mercato::Envelope<$te>),)*
            $($av(mercato::Request<$aq, $ar>),)*
        }
        impl mercato::Message for $msg {
            fn meta(&self) -> &mercato::Meta {
                match self { $($msg::$tv(m) => m.meta(),)* $($msg::$av(m) => m.meta(),)* }
            }
            fn meta_mut(&mut self) -> &mut mercato::Meta {
                match self { $($msg::$tv(m) => m.meta_mut(),)* $($msg::$av(m) => m.meta_mut(),)* }
            }
            fn into_dead_letter(self, reason: mercato::DeadLetterReason, error: Option<&str>)
                -> std::sync::Arc<dyn mercato::AnyPayload> {
                match self {
                    $($msg::$tv(m) => mercato::Message::into_dead_letter(m, reason, error),)*
                    $($msg::$av(m) => m.into_dead_letter(reason, error),)*
                }
            }
        }
        $(impl mercato::Handles<$te> for $actor {
            fn wrap(e: mercato::Envelope<$te>) -> $msg { $msg::$tv(e) }
        })*
        $(impl mercato::Answers<$aq> for $actor {
            type Reply = $ar;
            fn wrap(r: mercato::Request<$aq, $ar>) -> $msg { $msg::$av(r) }
        })*
    };
}

/// A numbered message from one sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Num {
    pub sender: u32,
    pub seq: u32,
}

impl Event for Num {
    const NAME: &'static str = "test.num";
    const VERSION: u32 = 1;
}

/// A query answered with a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query(pub u32);

impl Event for Query {
    const NAME: &'static str = "test.query";
    const VERSION: u32 = 1;
}

/// Shared, thread-safe record of what happened, in order.
pub mod parking_lot_free {
    use std::sync::{Arc, Mutex};

    pub struct Log<T>(Arc<Mutex<Vec<T>>>);

    impl<T> Clone for Log<T> {
        fn clone(&self) -> Self {
            Log(self.0.clone())
        }
    }

    impl<T> Default for Log<T> {
        fn default() -> Self {
            Log(Arc::default())
        }
    }

    impl<T: Clone> Log<T> {
        pub fn push(&self, value: T) {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(value);
        }
        pub fn take(&self) -> Vec<T> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }
        pub fn len(&self) -> usize {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
        }
    }
}

/// Counts calls, shared between a factory and a test.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicU32>);

impl Counter {
    pub fn bump(&self) -> u32 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Detects two handlers of one actor running at once.
#[derive(Clone, Default)]
pub struct Exclusive(Arc<AtomicBool>);

impl Exclusive {
    pub fn enter(&self) {
        assert!(
            !self.0.swap(true, Ordering::SeqCst),
            "two handlers of one actor ran at once"
        );
    }
    pub fn leave(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

pub type Events = Log<(u32, u32)>;

pub fn log<T: Clone>() -> Log<T> {
    Log::default()
}

/// Silences the panic messages of the deliberate panics in test actors
/// (their text contains "broke", "flaky panics" or "unlucky"); every other
/// panic, such as a failed assertion, is still printed.
pub fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !["broke", "flaky panics", "unlucky"]
                .iter()
                .any(|m| text.contains(m))
            {
                default(info);
            }
        }));
    });
}
