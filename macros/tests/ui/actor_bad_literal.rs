#![allow(unused)]
use mercato::{actor, Context, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "test.added", version = 1)]
struct Added {
    #[event(key)]
    cart_id: u64,
}

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "test.removed", version = 1)]
struct Removed {
    cart_id: u64,
}

struct Cart;

#[actor(mailbox = 0, retries = "3", overflow = Sometimes, restart = Always, group = 0)]
impl Cart {
    #[on]
    fn added(&mut self, e: &Added) {}
}

struct Other;

#[actor(mailbox = "x", passivate_after_secs = 10)]
impl Other {
    #[on]
    fn added(&mut self, e: &Added) {}
}

struct Slow;

#[actor(backoff_ms = 100, backoff_max_ms = 10)]
impl Slow {
    #[on]
    fn added(&mut self, e: &Added) {}
}

struct Huge;

#[actor(mailbox = 5000000000)]
impl Huge {
    #[on]
    fn added(&mut self, e: &Added) {}
}

struct Asked;

#[actor(ask_in_place = "no")]
impl Asked {
    #[on]
    fn added(&mut self, e: &Added) {}
}

struct Keyed;

#[actor(entity, ask_in_place = false)]
impl Keyed {
    #[on]
    fn added(&mut self, e: &Added) {}
}

fn main() {}
