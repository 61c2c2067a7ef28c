//! The S3 side: where chunks are staged and how they get there.

pub mod compress;
pub mod key;
pub mod sink;
pub mod upload;
