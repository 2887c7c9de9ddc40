//! Integration tests of mercato live in `tests/`; this library is empty.
