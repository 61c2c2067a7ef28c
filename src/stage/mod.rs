//! The S3 side: where chunks are staged.

pub mod key;
