//! The PostgreSQL side: connecting, introspection, extraction.

pub mod schema;
