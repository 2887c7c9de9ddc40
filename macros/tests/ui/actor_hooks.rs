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
    #[started]
    async fn start(&mut self, extra: u32) {}

    #[started]
    async fn start_again(&mut self) {}

    #[stopping]
    async fn stop(&mut self) -> Result<(), String> { Ok(()) }

    #[on]
    #[reply]
    fn both(&mut self, e: &Added) -> u32 { 0 }
}

fn main() {}
