//! The local stack for redshift-loader's tests, demo and benchmarks.
//!
//! Every server here is real and speaks its real protocol on 127.0.0.1:
//! - [`pg::PgCluster`]: a throw-away PostgreSQL cluster (source, and the engine behind
//!   the Redshift emulator);
//! - [`moto::Moto`]: `moto_server` for the S3, DynamoDB, Lambda, Scheduler, Secrets
//!   Manager and SSM APIs;
//! - [`invoke::InvokeRecorder`]: answers Lambda `Invoke` with 202 and keeps the payloads;
//! - [`redshift::RedshiftEmulator`]: a PostgreSQL wire-protocol proxy that behaves like
//!   Redshift for what the loader sends.
//!
//! Child processes are started with a parent-death signal from a thread that lives as
//! long as the process, so a test binary that exits (or is killed) leaves no server
//! behind.

pub mod invoke;
pub mod measure;
pub mod moto;
pub mod pg;
pub mod process;
pub mod redshift;
pub mod runtime;
pub mod stack;
pub mod tls;
