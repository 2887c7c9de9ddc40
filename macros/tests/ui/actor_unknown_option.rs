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

#[actor(mailbox = 8, colour = "red", entity = CartId)]
impl Cart {
    #[on(topic = "x")]
    fn added(&mut self, e: &Added) {}

    #[reply(key = cart_id)]
    fn removed(&mut self, e: &Removed) -> u32 { 0 }
}

fn main() {}
