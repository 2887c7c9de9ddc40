#![allow(unused)]
use mercato::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "test.zero", version = 0)]
struct Zero;

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "test.text", version = "1")]
struct Text;

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "test.negative", version = -1)]
struct Negative;

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "", version = 1)]
struct EmptyName;

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = shop_item, version = 1)]
struct NotAString;

fn main() {}
