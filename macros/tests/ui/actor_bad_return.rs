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

#[derive(Debug)]
struct NotAnError;

struct Cart;

#[actor]
impl Cart {
    #[on]
    fn added(&mut self, e: &Added) -> u32 { 0 }

    #[on]
    fn removed(&mut self, e: &Removed) -> Result<(), NotAnError> { Ok(()) }
}

fn main() {}
