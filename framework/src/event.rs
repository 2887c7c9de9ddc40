//! Events, their identities and the envelopes that carry them.
//!
//! An [`Event`] is a fact with a stable wire name and version: `shop.order_placed`
//! v1 stays `shop.order_placed` v1 whatever the Rust type is called, because
//! other services (and stored journals) know it by that name. Every event
//! travels in an [`Envelope`] that adds what the runtime and operators need:
//!
//! - an [`EventId`], time-ordered (UUIDv7 layout), unique per envelope;
//! - a *correlation id*, shared by every event caused by one outside request,
//!   and a *causation id*, the id of the event whose handler sent this one;
//! - a timestamp, the delivery attempt, free-form [`Headers`], and an
//!   optional [`AckHandle`] that a journal or broker fills and the runtime
//!   calls once the handler succeeded.
//!
//! Sending from inside a handler keeps the correlation id of the message
//! being handled and sets the causation id to its id, without any extra code.
//!
//! ```
//! use mercato::{Envelope, Event};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! struct ItemAdded { cart_id: u64, sku: String, qty: u32 }
//!
//! impl Event for ItemAdded {
//!     const NAME: &'static str = "shop.item_added";
//!     const VERSION: u32 = 1;
//!     fn key(&self) -> Option<mercato::Key> { Some(self.cart_id.into()) }
//! }
//!
//! let envelope = Envelope::new(ItemAdded { cart_id: 7, sku: "tea".into(), qty: 2 });
//! assert_eq!(envelope.meta().event(), "shop.item_added");
//! assert_eq!(envelope.meta().correlation_id(), envelope.meta().id());
//! assert_eq!(envelope.payload().qty, 2);
//! ```

use std::fmt;
use std::hash::BuildHasher;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A fact that actors handle: a type with a stable wire name and version.
///
/// The name is a contract with other services and with stored events: renaming
/// the Rust type must not change it. Events are `Send + Sync + 'static`
/// (they are shared between actors on fan-out) and serialisable, so the same
/// handlers can later run over a broker.
///
/// ```
/// use mercato::Event;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize)]
/// struct OrderPlaced { order_id: u64, total_cents: u64 }
///
/// impl Event for OrderPlaced {
///     const NAME: &'static str = "shop.order_placed";
///     const VERSION: u32 = 1;
///     fn key(&self) -> Option<mercato::Key> { Some(self.order_id.into()) }
/// }
///
/// assert_eq!(OrderPlaced::NAME, "shop.order_placed");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a mercato event",
    label = "this type does not implement `mercato::Event`",
    note = "implement `mercato::Event` for it with a stable wire name and version, e.g. `const NAME: &'static str = \"shop.item_added\"; const VERSION: u32 = 1;`"
)]
pub trait Event: fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The wire name, e.g. `"shop.order_placed"`. Stable across renames.
    const NAME: &'static str;
    /// The schema version of this event's payload, starting at 1.
    const VERSION: u32;

    /// The default routing key (e.g. the cart id), if the event has one.
    fn key(&self) -> Option<Key> {
        None
    }
}

/// A routing key: which entity an event is about (a cart id, a SKU).
///
/// Integers and UUID-sized values are stored inline; strings are shared.
///
/// ```
/// use mercato::Key;
/// assert_eq!(Key::from(42_u64), Key::Int(42));
/// assert_eq!(Key::from("sku-1").to_string(), "sku-1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// An integer key.
    Int(u128),
    /// A textual key.
    Str(Arc<str>),
}

/// Hashes as little as tells keys apart: an integer that fits in 64 bits is
/// one word (entity tables hash a key on every event they route), a string
/// its bytes.
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Key::Int(v) => match u64::try_from(*v) {
                Ok(small) => state.write_u64(small),
                Err(_) => state.write_u128(*v),
            },
            Key::Str(s) => s.hash(state),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Int(n) => write!(f, "{n}"),
            Key::Str(s) => f.write_str(s),
        }
    }
}

impl Key {
    /// `prefix`, a slash and the key, as [`Display`](fmt::Display) would
    /// write them, without the formatting machinery for an integer that
    /// fits in 64 bits, and in one allocation when the name is short (it
    /// is put together on the stack first): an entity's name, made at
    /// every activation.
    pub(crate) fn name_under(&self, prefix: &str) -> Arc<str> {
        let mut digits = [0u8; 20];
        let tail = match self {
            Key::Str(s) => &**s,
            Key::Int(n) => match u64::try_from(*n) {
                Ok(mut n) => {
                    let mut at = digits.len();
                    loop {
                        at -= 1;
                        digits[at] = b'0' + (n % 10) as u8;
                        n /= 10;
                        if n == 0 {
                            break;
                        }
                    }
                    std::str::from_utf8(&digits[at..]).unwrap_or_default()
                }
                Err(_) => return Arc::from(format!("{prefix}/{n}")),
            },
        };
        let len = prefix.len() + 1 + tail.len();
        let mut short = [0u8; 64];
        if len > short.len() {
            return Arc::from(format!("{prefix}/{tail}"));
        }
        short[..prefix.len()].copy_from_slice(prefix.as_bytes());
        short[prefix.len()] = b'/';
        short[prefix.len() + 1..len].copy_from_slice(tail.as_bytes());
        // Two strings and a slash: valid UTF-8.
        Arc::from(std::str::from_utf8(&short[..len]).unwrap_or_default())
    }
}

macro_rules! key_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Key {
            fn from(value: $t) -> Self { Key::Int(u128::from(value)) }
        }
    )*};
}
key_from_int!(u8, u16, u32, u64, u128);

impl From<usize> for Key {
    fn from(value: usize) -> Self {
        Key::Int(value as u128)
    }
}

impl From<&str> for Key {
    fn from(value: &str) -> Self {
        Key::Str(Arc::from(value))
    }
}

impl From<String> for Key {
    fn from(value: String) -> Self {
        Key::Str(Arc::from(value))
    }
}

/// A time-ordered, unique event id in the UUIDv7 layout.
///
/// The first 48 bits are the Unix time in milliseconds, so ids sort by
/// creation time; within a process a counter keeps them unique, and ids made
/// one after another increase even if the wall clock steps back; a random
/// per-process value keeps processes apart. Making one allocates
/// nothing and needs no system call beyond reading the clock.
///
/// ```
/// use mercato::EventId;
/// let a = EventId::new();
/// let b = EventId::new();
/// assert!(a < b);
/// assert_eq!(a.to_string().len(), 36);
/// assert_eq!(a.to_string().as_bytes()[14], b'7'); // version nibble
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
// Two words rather than a `u128`, whose 16-byte alignment would pad every
// envelope that carries ids; ordered high word first, as the number is.
pub struct EventId {
    high: u64,
    low: u64,
}

/// Sequence numbers, handed to threads in blocks of [`BLOCK`].
static SEQUENCE: AtomicU64 = AtomicU64::new(0);
const BLOCK: u64 = 1024;

/// What a thread needs to make ids without touching shared memory: its
/// block of sequence numbers, the time of its last id, the process nonce.
#[derive(Clone, Copy)]
struct Minter {
    next: u64,
    end: u64,
    last_millis: u64,
    nonce: u64,
}

thread_local! {
    static MINTER: std::cell::Cell<Minter> = const {
        std::cell::Cell::new(Minter { next: 0, end: 0, last_millis: 0, nonce: 0 })
    };
}

fn process_nonce() -> u64 {
    static NONCE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *NONCE
        .get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(std::process::id()))
}

impl EventId {
    /// A new id, later than the ids made before it in the same thread.
    pub fn new() -> Self {
        Self::at(now_unix_nanos())
    }

    /// The id that means "none": never made by [`EventId::new`], whose ids
    /// carry a version and a variant.
    pub(crate) const NIL: EventId = EventId { high: 0, low: 0 };

    /// A new id made at `nanos` after the Unix epoch (one clock reading for
    /// an id and a timestamp).
    pub(crate) fn at(nanos: u64) -> Self {
        let now = (nanos / 1_000_000) & 0xFFFF_FFFF_FFFF;
        let mut m = MINTER.with(std::cell::Cell::get);
        if m.next == m.end {
            // A fresh block: the one write to shared memory per BLOCK ids.
            m.next = SEQUENCE.fetch_add(BLOCK, Ordering::Relaxed);
            m.end = m.next + BLOCK;
            m.nonce = process_nonce() & 0xFFFF_FFFF;
        }
        // Never behind this thread's earlier id, even if the clock stepped back.
        m.last_millis = m.last_millis.max(now);
        let millis = m.last_millis;
        // 42 bits of sequence keep a thread's ids ordered within one
        // millisecond and across clock steps; 32 bits tell processes apart.
        let seq = m.next & ((1 << 42) - 1);
        let nonce = m.nonce;
        m.next += 1;
        MINTER.with(|cell| cell.set(m));
        let rand_a = (seq >> 30) & 0xFFF; // 12 bits
        let rand_b = ((seq & ((1 << 30) - 1)) << 32) | nonce; // 62 bits
        EventId {
            high: (millis << 16) | (0x7 << 12) | rand_a,
            low: (0b10 << 62) | rand_b,
        }
    }

    /// The id as a 128-bit number.
    pub fn as_u128(self) -> u128 {
        (u128::from(self.high) << 64) | u128::from(self.low)
    }

    /// Rebuilds an id from its 128-bit value (e.g. read from a header).
    pub fn from_u128(value: u128) -> Self {
        EventId {
            high: (value >> 64) as u64,
            low: value as u64,
        }
    }

    /// The Unix time in milliseconds at which the id was made.
    pub fn unix_millis(self) -> u64 {
        self.high >> 16
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.as_u128();
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (v >> 96) as u32,
            (v >> 80) as u16,
            (v >> 64) as u16,
            (v >> 48) as u16,
            v & 0xFFFF_FFFF_FFFF
        )
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Free-form string headers of an envelope. Empty headers allocate nothing.
///
/// ```
/// use mercato::Headers;
/// let mut headers = Headers::default();
/// headers.insert("tenant", "eu-1");
/// assert_eq!(headers.get("tenant"), Some("eu-1"));
/// assert_eq!(headers.len(), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

/// Headers of an envelope that has none.
static NO_HEADERS: Headers = Headers(Vec::new());

impl Headers {
    /// Sets a header, replacing an earlier value of the same name.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let (name, value) = (name.into(), value.into());
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    fn list(&self) -> &[(String, String)] {
        &self.0
    }

    /// The value of a header.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.list()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// How many headers there are.
    pub fn len(&self) -> usize {
        self.list().len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.list().is_empty()
    }

    /// The headers in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.list().iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// Acknowledges a delivered event once its handler succeeded.
///
/// A journal or a broker transport attaches one to each envelope it delivers;
/// the runtime calls [`Acknowledge::ack`] after the handler returned `Ok`, and
/// [`Acknowledge::nack`] when the message was dead-lettered instead.
///
/// ```
/// use mercato::{AckHandle, Acknowledge, EventId};
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// #[derive(Default)]
/// struct Flag(AtomicBool);
/// impl Acknowledge for Flag {
///     fn ack(&self, _id: EventId) { self.0.store(true, Ordering::SeqCst) }
///     fn nack(&self, _id: EventId, _reason: &str) {}
/// }
/// let flag = Arc::new(Flag::default());
/// let handle = AckHandle::new(flag.clone());
/// handle.ack(EventId::new());
/// assert!(flag.0.load(Ordering::SeqCst));
/// ```
pub trait Acknowledge: Send + Sync + 'static {
    /// The handler succeeded: the source may forget the event.
    fn ack(&self, id: EventId);
    /// The event was dead-lettered, with the reason.
    fn nack(&self, id: EventId, reason: &str);
}

/// A shared handle to an [`Acknowledge`] implementation.
#[derive(Clone)]
pub struct AckHandle(Arc<dyn Acknowledge>);

impl AckHandle {
    /// Wraps an acknowledger.
    pub fn new(ack: Arc<dyn Acknowledge>) -> Self {
        AckHandle(ack)
    }

    /// Acknowledges `id`.
    pub fn ack(&self, id: EventId) {
        self.0.ack(id);
    }

    /// Reports that `id` was dead-lettered.
    pub fn nack(&self, id: EventId, reason: &str) {
        self.0.nack(id, reason);
    }
}

impl fmt::Debug for AckHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AckHandle")
    }
}

/// Everything an envelope carries besides the payload.
///
/// ```
/// use mercato::{Envelope, Event};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Serialize, Deserialize)] struct Ping;
/// # impl Event for Ping { const NAME: &'static str = "test.ping"; const VERSION: u32 = 1; }
/// let env = Envelope::new(Ping);
/// let meta = env.meta();
/// assert_eq!(meta.event(), "test.ping");
/// assert_eq!(meta.version(), 1);
/// assert_eq!(meta.attempt(), 1);
/// assert!(meta.causation_id().is_none());
/// ```
//
// Every message carries one and moves it a few times between the sender and
// the handler, so it is kept small (80 bytes): ids as pairs of words, "no
// causation" as the nil id, the time as nanoseconds, the wire name and
// version behind one static reference, and the rarely used parts (headers,
// acknowledgement) boxed together, made when first set.
#[derive(Debug, Clone)]
pub struct Meta {
    pub(crate) id: EventId,
    pub(crate) correlation_id: EventId,
    /// [`EventId::NIL`] when there is none.
    pub(crate) causation_id: EventId,
    /// Nanoseconds since the Unix epoch.
    pub(crate) timestamp: u64,
    pub(crate) kind: &'static Kind,
    pub(crate) extra: Option<Box<Extra>>,
    /// Stored in a full word: an envelope is made on the stack and copied
    /// word by word, and a copy that reads a word written in halves waits
    /// for the writes to reach the cache instead of taking them from the
    /// store buffer.
    pub(crate) attempt: u64,
}

/// What few envelopes carry: headers, and a journal's or broker's
/// acknowledgement handle.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extra {
    pub(crate) headers: Headers,
    pub(crate) ack: Option<AckHandle>,
}

/// An event type's wire name and version, one static per type.
#[derive(Debug)]
pub(crate) struct Kind {
    name: &'static str,
    version: u32,
}

/// Nanoseconds from the Unix epoch to now (0 before it): the one clock
/// reading of an envelope, for its id and its timestamp. See
/// [`clock`](crate::clock).
#[inline]
pub(crate) fn now_unix_nanos() -> u64 {
    crate::clock::now_unix_nanos()
}

impl Meta {
    pub(crate) fn for_event<E: Event>() -> Self {
        Self::for_event_at::<E>(now_unix_nanos())
    }

    /// The metadata of an envelope made at `timestamp` (nanoseconds since
    /// the Unix epoch, read with [`now_unix_nanos`]).
    #[inline]
    pub(crate) fn for_event_at<E: Event>(timestamp: u64) -> Self {
        let id = EventId::at(timestamp);
        Meta {
            id,
            correlation_id: id,
            causation_id: EventId::NIL,
            timestamp,
            kind: const {
                &Kind {
                    name: E::NAME,
                    version: E::VERSION,
                }
            },
            extra: None,
            attempt: 1,
        }
    }

    /// This envelope's id.
    pub fn id(&self) -> EventId {
        self.id
    }
    /// The id shared by every event caused by the same outside request.
    pub fn correlation_id(&self) -> EventId {
        self.correlation_id
    }
    /// The id of the event whose handler sent this one, if any.
    pub fn causation_id(&self) -> Option<EventId> {
        (self.causation_id != EventId::NIL).then_some(self.causation_id)
    }
    /// When the envelope was made (wall-clock time, to the nanosecond).
    pub fn timestamp(&self) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_nanos(self.timestamp)
    }
    /// The delivery attempt, starting at 1; retries count up.
    pub fn attempt(&self) -> u32 {
        u32::try_from(self.attempt).unwrap_or(u32::MAX)
    }
    /// The event's wire name.
    pub fn event(&self) -> &'static str {
        self.kind.name
    }
    /// The event's schema version.
    pub fn version(&self) -> u32 {
        self.kind.version
    }
    /// The headers.
    pub fn headers(&self) -> &Headers {
        self.extra
            .as_ref()
            .map_or(&NO_HEADERS, |extra| &extra.headers)
    }
    /// The headers, to change.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.extra.get_or_insert_default().headers
    }
    /// The acknowledgement handle, when a journal or broker delivered this.
    pub fn ack_handle(&self) -> Option<&AckHandle> {
        self.extra.as_ref().and_then(|extra| extra.ack.as_ref())
    }

    /// Takes the acknowledgement handle out.
    pub(crate) fn take_ack(&mut self) -> Option<AckHandle> {
        self.extra.as_mut().and_then(|extra| extra.ack.take())
    }

    /// Sets the acknowledgement handle.
    pub(crate) fn set_ack(&mut self, ack: AckHandle) {
        self.extra.get_or_insert_default().ack = Some(ack);
    }

    /// Links this envelope to the one being handled: same correlation id,
    /// causation id = the handled event's id.
    pub(crate) fn caused_by(&mut self, cause: &Cause) {
        self.correlation_id = cause.correlation_id;
        self.causation_id = cause.id;
    }
}

/// The ids of the message a handler is working on, used to link what it sends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cause {
    pub(crate) id: EventId,
    pub(crate) correlation_id: EventId,
    pub(crate) attempt: u32,
}

/// The payload: owned for a direct `tell`, shared when one event fans out.
#[derive(Debug)]
enum Payload<E> {
    Owned(E),
    Shared(Arc<E>),
}

/// An event with its metadata: what travels through a mailbox.
///
/// A `tell` moves the payload in place (no allocation); a fan-out shares one
/// `Arc` between subscribers. Either way the handler reads it by reference.
///
/// ```
/// use mercato::{Envelope, Event, EventId};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Serialize, Deserialize)] struct Ping(u32);
/// # impl Event for Ping { const NAME: &'static str = "test.ping"; const VERSION: u32 = 1; }
/// let correlation = EventId::new();
/// let mut env = Envelope::new(Ping(3)).with_correlation_id(correlation);
/// env.meta_mut().headers_mut().insert("source", "checkout-api");
/// assert_eq!(env.payload().0, 3);
/// assert_eq!(env.meta().correlation_id(), correlation);
/// ```
#[derive(Debug)]
pub struct Envelope<E> {
    meta: Meta,
    payload: Payload<E>,
}

impl<E: Event> Envelope<E> {
    /// A new envelope with a fresh id that starts its own correlation.
    pub fn new(event: E) -> Self {
        Envelope {
            meta: Meta::for_event::<E>(),
            payload: Payload::Owned(event),
        }
    }

    /// A new envelope made at `timestamp` (nanoseconds since the Unix
    /// epoch, read with [`now_unix_nanos`]).
    #[inline]
    pub(crate) fn new_at(event: E, timestamp: u64) -> Self {
        Envelope {
            meta: Meta::for_event_at::<E>(timestamp),
            payload: Payload::Owned(event),
        }
    }

    /// A new envelope around a payload shared with other envelopes.
    pub fn shared(event: Arc<E>) -> Self {
        Envelope {
            meta: Meta::for_event::<E>(),
            payload: Payload::Shared(event),
        }
    }

    /// Sets the correlation id (e.g. taken from an incoming HTTP request).
    pub fn with_correlation_id(mut self, id: EventId) -> Self {
        self.meta.correlation_id = id;
        self
    }

    /// Sets the causation id (the nil id, `EventId::from_u128(0)`, means
    /// none).
    pub fn with_causation_id(mut self, id: EventId) -> Self {
        self.meta.causation_id = id;
        self
    }

    /// Attaches an acknowledgement handle.
    pub fn with_ack(mut self, ack: AckHandle) -> Self {
        self.meta.set_ack(ack);
        self
    }
}

impl<E> Envelope<E> {
    /// The event.
    pub fn payload(&self) -> &E {
        match &self.payload {
            Payload::Owned(e) => e,
            Payload::Shared(e) => e,
        }
    }

    /// The metadata.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The metadata, to change (headers, attempt).
    pub fn meta_mut(&mut self) -> &mut Meta {
        &mut self.meta
    }

    /// The event, shared (moves an owned payload into an `Arc`).
    pub fn into_shared(self) -> Arc<E> {
        match self.payload {
            Payload::Owned(e) => Arc::new(e),
            Payload::Shared(e) => e,
        }
    }

    /// The metadata and the shared payload, for copying to subscribers.
    pub(crate) fn into_parts(self) -> (Meta, Arc<E>) {
        let payload = match self.payload {
            Payload::Owned(e) => Arc::new(e),
            Payload::Shared(e) => e,
        };
        (self.meta, payload)
    }

    /// An envelope copy for one subscriber of a fan-out.
    pub(crate) fn from_parts(meta: Meta, payload: Arc<E>) -> Self {
        Envelope {
            meta,
            payload: Payload::Shared(payload),
        }
    }

    /// The event by value: moved out when owned, cloned out when shared.
    pub fn into_payload(self) -> E
    where
        E: Clone,
    {
        match self.payload {
            Payload::Owned(e) => e,
            Payload::Shared(e) => Arc::unwrap_or_clone(e),
        }
    }
}

impl<E> Deref for Envelope<E> {
    type Target = E;
    fn deref(&self) -> &E {
        self.payload()
    }
}

#[cfg(test)]
mod tests {
    use super::{AckHandle, Acknowledge, Envelope, Event, EventId, Key};
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    proptest::proptest! {
        #[test]
        fn a_name_under_a_prefix_reads_as_the_key_displayed(
            // Past 64 bytes, the name is not put together on the stack.
            prefix in ".{0,80}",
            n in proptest::prelude::any::<u128>(),
            small in proptest::prelude::any::<u64>(),
            text in ".{0,12}",
        ) {
            for key in [Key::Int(n), Key::from(small), Key::Int(0), Key::from(text.as_str())] {
                let (name, shown) = (key.name_under(&prefix), format!("{prefix}/{key}"));
                proptest::prop_assert_eq!(&*name, shown.as_str());
            }
        }
    }

    #[test]
    fn equal_keys_hash_alike_and_distinct_keys_stay_apart_in_a_set() {
        let state = std::hash::RandomState::new();
        let pairs = [
            (Key::Int(7), Key::from(7_u64)),
            (Key::Int(u128::MAX), Key::Int(u128::MAX)),
            (Key::Int(1 << 64), Key::Int(1 << 64)),
            (Key::from("sku-1"), Key::Str("sku-1".into())),
        ];
        for (a, b) in &pairs {
            assert_eq!(a, b);
            assert_eq!(state.hash_one(a), state.hash_one(b), "{a} and {b}");
        }
        let keys: HashSet<Key> = [
            Key::Int(0),
            Key::Int(7),
            Key::Int(1 << 64),
            Key::Int((1 << 64) | 7),
            Key::Int(u128::MAX),
            Key::from("7"),
            Key::from(""),
        ]
        .into_iter()
        .collect();
        assert_eq!(keys.len(), 7);
        assert!(keys.contains(&Key::from(7_u64)) && keys.contains(&Key::from("7")));
    }

    #[test]
    fn ids_are_unique_and_increasing_across_threads() {
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..10_000).map(|_| EventId::new()).collect::<Vec<_>>()))
            .collect();
        let mut all = HashSet::new();
        for t in threads {
            let ids = t.join().unwrap();
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "ids from one thread are increasing"
            );
            all.extend(ids);
        }
        assert_eq!(all.len(), 40_000, "no duplicates");
    }

    #[test]
    fn ids_have_the_uuid_v7_layout_and_the_current_time() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let id = EventId::new();
        assert!(id.unix_millis().abs_diff(now) < 5_000);
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "7", "version 7");
        assert!(
            matches!(&text[19..20], "8" | "9" | "a" | "b"),
            "RFC 4122 variant"
        );
        assert_eq!(EventId::from_u128(id.as_u128()), id);
    }

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Ping(u32);

    impl Event for Ping {
        const NAME: &'static str = "test.ping";
        const VERSION: u32 = 3;
    }

    #[test]
    fn an_envelope_is_stamped_with_the_time_it_was_made_and_its_id_agrees() {
        // The clock is the system's, counted on by the processor's counter
        // for at most a second: within a millisecond of it.
        let slack = std::time::Duration::from_millis(1);
        let before = std::time::SystemTime::now() - slack;
        let envelope = Envelope::new(Ping(1));
        let after = std::time::SystemTime::now() + slack;
        let meta = envelope.meta();
        assert!(
            before <= meta.timestamp() && meta.timestamp() <= after,
            "{:?} not within {before:?}..={after:?}",
            meta.timestamp()
        );
        let millis = meta
            .timestamp()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert_eq!(
            meta.id().unix_millis(),
            millis,
            "the id's time is the timestamp's"
        );
        assert_eq!((meta.event(), meta.version()), ("test.ping", 3));
    }

    #[test]
    fn headers_and_the_acknowledgement_are_kept_and_copied_with_the_metadata() {
        struct Nothing;
        impl Acknowledge for Nothing {
            fn ack(&self, _id: EventId) {}
            fn nack(&self, _id: EventId, _reason: &str) {}
        }
        let mut envelope = Envelope::new(Ping(2));
        assert!(envelope.meta().headers().is_empty());
        assert!(envelope.meta().ack_handle().is_none());
        envelope.meta_mut().headers_mut().insert("tenant", "eu-1");
        let mut envelope = envelope.with_ack(AckHandle::new(std::sync::Arc::new(Nothing)));
        envelope.meta_mut().headers_mut().insert("tenant", "eu-2");
        let copy = envelope.meta().clone();
        for meta in [envelope.meta(), &copy] {
            assert_eq!(meta.headers().get("tenant"), Some("eu-2"));
            assert_eq!(meta.headers().len(), 1);
            assert!(meta.ack_handle().is_some());
        }
    }

    #[test]
    fn the_nil_id_means_no_causation() {
        let cause = EventId::new();
        let caused = Envelope::new(Ping(3)).with_causation_id(cause);
        assert_eq!(caused.meta().causation_id(), Some(cause));
        let none = Envelope::new(Ping(4)).with_causation_id(EventId::from_u128(0));
        assert_eq!(none.meta().causation_id(), None);
        assert_eq!(Envelope::new(Ping(5)).meta().causation_id(), None);
    }
}
