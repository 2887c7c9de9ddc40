#![allow(unused)]
use mercato::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "test.generic", version = 1)]
struct Wrapped<T> {
    inner: T,
}

fn main() {}
