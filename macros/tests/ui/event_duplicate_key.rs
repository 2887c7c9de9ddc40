#![allow(unused)]
use mercato::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "test.one", version = 1, name = "test.two")]
struct Twice;

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "test.split", version = 1)]
#[event(version = 2)]
struct Split;

fn main() {}
