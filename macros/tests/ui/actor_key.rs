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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sku(String);

#[derive(Event, Debug, Clone, Serialize, Deserialize)]
#[event(name = "test.restocked", version = 1)]
struct Restocked {
    sku: Sku,
}

struct Single;

#[actor]
impl Single {
    #[on(key = cart_id)]
    fn added(&mut self, e: &Added) {}
}

struct Cart;

#[actor(entity)]
impl Cart {
    #[on(key = basket)]
    fn added(&mut self, e: &Added) {}

    #[on(key = sku)]
    fn restocked(&mut self, e: &Restocked) {}
}

fn main() {}
