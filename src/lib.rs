//! redshift-loader keeps an analytics replica of PostgreSQL tables in Amazon Redshift.
//!
//! The library holds everything; `main.rs` only picks the front door (Lambda or CLI).

pub mod cli;
pub mod error;
pub mod lambda;
pub mod logging;

pub use error::{Error, Result};
