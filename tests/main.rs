//! Integration tests: one binary, one shared local stack (see `tests/testkit`).

mod capture;
mod coordination;
mod errors;
mod evolve;
mod full;
mod jobs;
mod lambda;
mod load_errors;
mod progress;
mod refused;
mod replica;
mod schedules;
mod secrets;
mod settings;
mod setup;
mod stack;
mod stage;
mod status;
mod support;
mod sync;
mod template;
mod tls;
mod users;
mod verify;
