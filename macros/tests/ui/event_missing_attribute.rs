#![allow(unused)]
use mercato::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Debug, Serialize, Deserialize)]
struct ItemAdded {
    cart_id: u64,
}

fn main() {}
