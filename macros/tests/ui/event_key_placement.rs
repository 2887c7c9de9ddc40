#![allow(unused)]
use mercato::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "test.tuple", version = 1)]
struct Tuple(#[event(key)] u64);

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "test.enum", version = 1)]
enum Choice {
    A {
        #[event(key)]
        id: u64,
    },
    B,
}

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "test.on_type", version = 1, key)]
struct KeyOnType {
    id: u64,
}

fn main() {}
