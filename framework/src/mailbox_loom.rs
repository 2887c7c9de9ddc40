//! loom model tests of the mailbox.
