//! Integration tests: one binary, one shared local stack (see `tests/testkit`).

mod stack;
