#![allow(unused)]
use mercato::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(version = 1)]
struct NoName;

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "test.no_version")]
struct NoVersion;

fn main() {}
