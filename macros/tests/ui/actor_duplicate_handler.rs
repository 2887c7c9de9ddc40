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

#[actor]
impl Cart {
    #[on]
    fn first(&mut self, e: &Added) {}

    #[on]
    async fn second(&mut self, e: Added) {}
}

fn main() {}
