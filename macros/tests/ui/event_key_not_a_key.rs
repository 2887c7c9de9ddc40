#![allow(unused)]
use mercato::Event;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CartId(u64);

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "test.custom_key", version = 1)]
struct Custom {
    #[event(key)]
    cart_id: CartId,
}

fn main() {}
