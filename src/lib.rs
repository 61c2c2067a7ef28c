//! redshift-loader keeps an analytics replica of PostgreSQL tables in Amazon Redshift.
//!
//! The library holds everything; `main.rs` only picks the front door (Lambda or CLI).

pub mod app;
pub mod aws;
pub mod aws_error;
pub mod cli;
pub mod config;
pub mod connect;
pub mod diagnose;
pub mod encode;
pub mod error;
pub mod fire;
pub mod lambda;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod quote;
pub mod schedule;
pub mod scheduler;
pub mod secrets;
pub mod setup;
pub mod source;
pub mod stage;
pub mod state;
pub mod status;
pub mod sync;
pub mod tls;
pub mod verify;
pub mod warehouse;

pub use error::{Error, Result};
