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
    fn two_events(&mut self, a: &Added, b: &Removed) {}

    #[on]
    fn no_event(&mut self, cx: &mut Context<Self>) {}

    #[on]
    fn mutable_event(&mut self, a: &mut Removed) {}

    #[on]
    fn fine(&mut self, a: &Added) {}
}

fn main() {}
