//! The Redshift side: type mapping, SQL text, and (later) the connection.

pub mod sql;
pub mod types;
