//! Compiles every code block of the book as a doctest.
//!
//! Each chapter listed in `book/src/SUMMARY.md` is included below as the
//! documentation of an item that exists only under `cfg(doctest)`, so
//! `cargo test --workspace` compiles and runs its untagged and `rust` blocks
//! (`text` and `console` blocks are skipped, `rust,no_run` ones only compile).
//! A new chapter must be added to the list.

// Book snippets are held to the same standard as the crate's own examples.
#![doc(test(attr(deny(warnings))))]

/// Declares one doctest-only item per book chapter.
macro_rules! chapters {
    ($($name:ident => $file:literal),* $(,)?) => {
        $(
            #[cfg(doctest)]
            #[doc = include_str!(concat!("../../src/", $file))]
            pub struct $name;
        )*
    };
}

chapters! {
    Introduction => "introduction.md",
    Actors => "actors.md",
    Events => "events.md",
    TellAndAsk => "tell-and-ask.md",
    Bus => "bus.md",
    Entities => "entities.md",
    Groups => "groups.md",
    DeadLetters => "dead-letters.md",
    Mailboxes => "mailboxes.md",
    Supervision => "supervision.md",
    Timers => "timers.md",
    Shutdown => "shutdown.md",
    Configuration => "configuration.md",
    Macros => "macros.md",
    CompilerErrors => "compiler-errors.md",
    Testing => "testing.md",
    Observability => "observability.md",
    Performance => "performance.md",
}
