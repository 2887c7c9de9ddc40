#![allow(unused)]
use mercato::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "test.coloured", version = 1, colour = "red")]
struct Coloured {
    #[event(primary)]
    id: u64,
}

fn main() {}
