//! The expansions use only absolute paths: shadowing the prelude in the
//! caller's scope changes nothing.
#![deny(warnings)]
#![allow(dead_code, non_camel_case_types, non_snake_case)]

use ::mercato::{Context, Event, actor};
use serde::{Deserialize, Serialize};

struct Result;
struct Option;
struct Box;
struct Vec;
struct String;
struct Clone;
struct From;
struct Into;
struct Send;
struct Sync;
struct Future;
struct Arc;
struct Duration;
fn Ok() {}
fn Err() {}
fn Some() {}
struct None;
mod core {}
mod std {}
mod mercato {}

/// Routing keys of a user type.
#[derive(Debug, ::core::clone::Clone, Serialize, Deserialize)]
struct CartId(u64);
impl ::core::convert::From<CartId> for ::mercato::Key {
    fn from(id: CartId) -> Self {
        ::mercato::Key::from(id.0)
    }
}

#[derive(Event, Debug, ::core::clone::Clone, Serialize, Deserialize)]
#[event(name = "test.added", version = 1)]
struct Added {
    #[event(key)]
    cart: CartId,
    other: u64,
}

#[derive(Event, Debug, ::core::clone::Clone, Serialize, Deserialize)]
#[event(name = "test.moved", version = 1)]
struct Moved {
    other: u64,
}

#[derive(Event, Debug, Serialize, Deserialize)]
#[event(name = "test.ask", version = 1)]
struct Ask;

struct Cart;

#[actor(entity, mailbox = 8, overflow = DropOldest, restart = Temporary, retries = 1, passivate_after_secs = 5)]
impl Cart {
    #[on]
    async fn added(&mut self, _e: &Added, _cx: &mut Context<Self>) -> ::core::result::Result<(), ::std::string::String> {
        ::core::result::Result::Ok(())
    }

    #[on(key = other)]
    fn moved(&mut self, _e: Moved) {}

    #[reply]
    async fn ask(&self, _q: &Ask) -> u8 {
        1
    }

    #[started]
    fn started(&mut self) {}

    #[stopping]
    fn stopping(&mut self, _cx: &mut Context<Self>) {}
}

struct Pool;

#[actor(group = 2)]
impl Pool {
    #[on]
    fn added(&mut self, _e: &Added) {}
}

fn main() {}
