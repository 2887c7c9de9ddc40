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

#[actor(mailbox = 8, retries = 1, mailbox = 16)]
impl Cart {
    #[on(publishes = [Removed], publishes = [Added])]
    fn added(&mut self, e: &Added) {}
}

fn main() {}
