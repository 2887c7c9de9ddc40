//! The growable ring buffer behind a mailbox's queue and its receiver's
//! batch.
//!
//! It does what the mailbox needs of a double-ended queue, plus one thing
//! `VecDeque` cannot: [`Ring::push_back_with`] makes the value straight in
//! its slot, after any growth, so a message (an envelope of a hundred-odd
//! bytes) is written once instead of being built on the stack and copied
//! in. It is the only code of the crate with `unsafe`; each block says why
//! it is sound, and the tests check it against `VecDeque` (a property test
//! runs random operations on both) and count drops. They also pass under
//! Miri, which checks the `unsafe` code for undefined behaviour
//! (`PROPTEST_CASES=16 cargo +nightly miri test -p mercato --lib
//! mailbox::ring`; a nightly toolchain with its `miri` component).
//!
//! A ring's first buffer, made at its first push, holds one value (see
//! [`Ring::reserve`]).

use std::fmt;
use std::mem::MaybeUninit;

/// The capacity below which a full ring grows fourfold instead of
/// doubling (see [`Ring::reserve`]).
const QUADRUPLE_BELOW: usize = 16;

/// The most values a ring holds, and the most slots it has: its head and
/// length are 32 bits wide (a mailbox's capacity is at most `u32::MAX`),
/// so that a ring takes three words, not four.
const MAX_LEN: usize = u32::MAX as usize;

/// A double-ended queue over one buffer, grown on demand.
///
/// Slots `head`, `head + 1`, … `head + len - 1` (wrapping at the
/// capacity) hold initialized values; the others are uninitialized. The
/// capacity is at most [`MAX_LEN`], so both fit in 32 bits.
pub(crate) struct Ring<T> {
    buf: Box<[MaybeUninit<T>]>,
    head: u32,
    len: u32,
}

impl<T> Ring<T> {
    /// An empty ring; it allocates nothing until its first value.
    pub(crate) fn new() -> Self {
        Ring {
            buf: Box::new_uninit_slice(0),
            head: 0,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// The slot `offset` places after the head, for `offset <= capacity`
    /// (the head is below the capacity, so one wrap is enough).
    #[inline]
    fn slot(&self, offset: usize) -> usize {
        let i = self.head as usize + offset;
        if i >= self.buf.len() {
            i - self.buf.len()
        } else {
            i
        }
    }

    /// Makes room for at least `additional` more values: the capacity
    /// grows fourfold below [`QUADRUPLE_BELOW`] slots and doubles from
    /// there, or grows to what is asked if that is more. A ring's first
    /// buffer, made by its first push, holds a single value: most mailboxes
    /// never hold more than one message at a time (an entity that gets an
    /// event now and then, an actor that keeps up with its senders), and
    /// four slots where one is used would cost each of them three messages'
    /// worth of memory. A queue that fills up goes 1, 4, 16 slots: two
    /// allocations and five messages copied on the way to sixteen, where
    /// doubling would take four and fifteen.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let needed = self
            .len()
            .checked_add(additional)
            .filter(|&needed| needed <= MAX_LEN)
            .expect("capacity overflow: a ring holds at most u32::MAX values");
        if needed > self.capacity() {
            let factor = if self.capacity() < QUADRUPLE_BELOW {
                4
            } else {
                2
            };
            self.grow_to(
                needed
                    .max(self.capacity().saturating_mul(factor))
                    .min(MAX_LEN),
            );
        }
    }

    /// Moves the values, in order, into a new buffer of `capacity` slots.
    #[cold]
    #[inline(never)]
    fn grow_to(&mut self, capacity: usize) {
        debug_assert!(capacity >= self.len() && capacity <= MAX_LEN);
        let (head, len) = (self.head as usize, self.len());
        let mut buf = Box::new_uninit_slice(capacity);
        let first = len.min(self.capacity() - head);
        // SAFETY: the `len` initialized values sit in two runs, `first` of
        // them from `head` to the end of the old buffer and the rest from
        // its start; both runs are in bounds of the old buffer and copied to
        // the front of the new one, which has room for `len >= first` values
        // and does not overlap the old one. The old buffer's slots are
        // `MaybeUninit`, so dropping it afterwards drops no value twice.
        unsafe {
            let old = self.buf.as_ptr();
            let new = buf.as_mut_ptr();
            std::ptr::copy_nonoverlapping(old.add(head), new, first);
            std::ptr::copy_nonoverlapping(old, new.add(first), len - first);
        }
        self.buf = buf;
        self.head = 0;
    }

    /// Queues the value `make` returns at the back, making it in its slot.
    /// If `make` panics the ring holds the values it held.
    #[inline]
    pub(crate) fn push_back_with(&mut self, make: impl FnOnce() -> T) {
        if self.len() == self.capacity() {
            self.reserve(1);
        }
        let at = self.slot(self.len());
        self.buf[at].write(make());
        self.len += 1;
    }

    #[cfg(test)]
    pub(crate) fn push_back(&mut self, value: T) {
        self.push_back_with(|| value);
    }

    pub(crate) fn push_front(&mut self, value: T) {
        if self.len() == self.capacity() {
            self.reserve(1);
        }
        let at = self.slot(self.capacity() - 1);
        self.buf[at].write(value);
        // Below the capacity, which is at most `MAX_LEN`.
        self.head = at as u32;
        self.len += 1;
    }

    /// Takes the front value out of a ring that is not empty. Inlined into
    /// its callers, so that the value goes straight where they put it.
    #[inline(always)]
    fn take_front(&mut self) -> T {
        assert!(self.len > 0, "`take_front` on an empty ring");
        let at = self.head as usize;
        // Below the capacity, which is at most `MAX_LEN`.
        self.head = self.slot(1) as u32;
        self.len -= 1;
        // SAFETY: slot `at` was the head of a non-empty ring, so it holds an
        // initialized value; it is now outside the live run, so the value is
        // read out once and never dropped in place.
        unsafe { self.buf[at].assume_init_read() }
    }

    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        Some(self.take_front())
    }

    /// Moves the front value into `slot`, straight from the buffer; `false`
    /// (and `slot` untouched) when the ring is empty.
    #[inline]
    pub(crate) fn pop_front_into(&mut self, slot: &mut Option<T>) -> bool {
        if self.len == 0 {
            return false;
        }
        *slot = Some(self.take_front());
        true
    }

    pub(crate) fn pop_back(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        let at = self.slot(self.len());
        // SAFETY: slot `at` was the last of the live run, so it holds an
        // initialized value; it is now outside the run, so the value is read
        // out once and never dropped in place.
        Some(unsafe { self.buf[at].assume_init_read() })
    }
}

impl<T> Default for Ring<T> {
    fn default() -> Self {
        Ring::new()
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        while self.pop_front().is_some() {}
    }
}

/// Takes the values out from the front (what `close` hands back).
impl<T> Iterator for Ring<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.pop_front()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), Some(self.len()))
    }
}

impl<T> ExactSizeIterator for Ring<T> {}

impl<T> fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::cell::Cell;
    use std::collections::VecDeque;
    use std::rc::Rc;

    use proptest::prelude::{Just, Strategy, any, prop_assert_eq, prop_oneof, proptest};

    use super::{MAX_LEN, Ring};

    #[derive(Debug, Clone)]
    enum Op {
        PushBack(u32),
        PushFront(u32),
        PopFront,
        PopBack,
        Reserve(usize),
        Swap,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<u32>().prop_map(Op::PushBack),
            1 => any::<u32>().prop_map(Op::PushFront),
            3 => Just(Op::PopFront),
            1 => Just(Op::PopBack),
            1 => (0usize..40).prop_map(Op::Reserve),
            1 => Just(Op::Swap),
        ]
    }

    proptest! {
        /// Any sequence of operations leaves a ring (and a second one it
        /// swaps with) holding what two `VecDeque`s would hold, in order.
        #[test]
        fn behaves_like_a_vec_deque(ops in proptest::collection::vec(op(), 0..300)) {
            let (mut ring, mut other) = (Ring::new(), Ring::new());
            let (mut model, mut other_model) = (VecDeque::new(), VecDeque::new());
            for op in ops {
                match op {
                    Op::PushBack(v) => {
                        ring.push_back(v);
                        model.push_back(v);
                    }
                    Op::PushFront(v) => {
                        ring.push_front(v);
                        model.push_front(v);
                    }
                    Op::PopFront => prop_assert_eq!(ring.pop_front(), model.pop_front()),
                    Op::PopBack => prop_assert_eq!(ring.pop_back(), model.pop_back()),
                    Op::Reserve(n) => {
                        ring.reserve(n);
                        prop_assert_eq!(ring.capacity() >= ring.len() + n, true);
                    }
                    Op::Swap => {
                        std::mem::swap(&mut ring, &mut other);
                        std::mem::swap(&mut model, &mut other_model);
                    }
                }
                prop_assert_eq!(ring.len(), model.len());
                prop_assert_eq!(ring.is_empty(), model.is_empty());
            }
            prop_assert_eq!(ring.collect::<Vec<_>>(), model.into_iter().collect::<Vec<_>>());
            prop_assert_eq!(other.collect::<Vec<_>>(), other_model.into_iter().collect::<Vec<_>>());
        }
    }

    /// Counts the values dropped.
    struct Counted(Rc<Cell<usize>>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn every_value_is_dropped_once_across_growth_wrapping_and_drop() {
        let drops = Rc::new(Cell::new(0));
        let mut ring = Ring::new();
        for _ in 0..3 {
            ring.push_back(Counted(drops.clone()));
        }
        // The head moves on, so later pushes wrap around the buffer.
        drop(ring.pop_front());
        drop(ring.pop_front());
        assert_eq!(drops.get(), 2);
        for _ in 0..10 {
            ring.push_back(Counted(drops.clone()));
            ring.push_front(Counted(drops.clone()));
        }
        assert_eq!(ring.len(), 21);
        drop(ring.pop_back());
        assert_eq!(drops.get(), 3);
        drop(ring);
        assert_eq!(
            drops.get(),
            3 + 20,
            "the 20 left were dropped with the ring"
        );
    }

    #[test]
    fn a_value_is_made_in_its_slot_after_growth_and_a_panic_leaves_the_ring_as_it_was() {
        let mut ring = Ring::new();
        ring.push_back_with(|| 1);
        let cap = ring.capacity();
        for v in 2..=cap {
            ring.push_back_with(|| v);
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ring.push_back_with(|| panic!("no value"));
        }));
        assert!(result.is_err());
        assert_eq!(ring.len(), cap);
        ring.push_back(cap + 1);
        assert_eq!(ring.collect::<Vec<_>>(), (1..=cap + 1).collect::<Vec<_>>());
    }

    #[test]
    fn a_first_push_makes_room_for_one_then_a_full_ring_quadruples_to_sixteen_and_doubles() {
        let mut ring = Ring::new();
        ring.push_back(1u64);
        assert_eq!(ring.capacity(), 1);
        for v in 2..=33 {
            ring.push_back(v);
            let cap = match v {
                2..=4 => 4,
                5..=16 => 16,
                17..=32 => 32,
                _ => 64,
            };
            assert_eq!(ring.capacity(), cap, "after pushing {v}");
        }
        assert_eq!(ring.collect::<Vec<_>>(), (1..=33).collect::<Vec<_>>());
    }

    #[test]
    fn a_ring_takes_three_words() {
        assert_eq!(
            std::mem::size_of::<Ring<[u8; 100]>>(),
            3 * std::mem::size_of::<usize>()
        );
    }

    #[test]
    #[should_panic(expected = "a ring holds at most u32::MAX values")]
    fn room_for_more_than_u32_max_values_is_refused_before_anything_is_allocated() {
        let mut ring: Ring<u8> = Ring::new();
        ring.push_back(1);
        ring.reserve(MAX_LEN);
    }

    #[test]
    fn a_new_ring_allocates_nothing_and_reserve_grows_exactly_once_to_what_is_asked() {
        let mut ring: Ring<[u8; 100]> = Ring::new();
        assert_eq!(ring.capacity(), 0);
        ring.reserve(37);
        assert_eq!(ring.capacity(), 37);
        ring.reserve(37);
        assert_eq!(ring.capacity(), 37, "room enough: no growth");
    }
}
