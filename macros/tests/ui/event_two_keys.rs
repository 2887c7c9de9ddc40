#![allow(unused)]
use mercato::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "test.two_keys", version = 1)]
struct TwoKeys {
    #[event(key)]
    cart_id: u64,
    #[event(key)]
    sku: String,
}

fn main() {}
