#![allow(unused)]
use mercato::{actor, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "test.unique", version = 1)]
struct Unique;

struct Cart;

#[actor]
impl Cart {
    #[on]
    fn unique(&mut self, e: Unique) {}
}

fn main() {}
