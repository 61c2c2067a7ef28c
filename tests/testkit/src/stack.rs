//! The whole local stack: a source PostgreSQL, a warehouse PostgreSQL behind the
//! Redshift emulator, moto, and the Invoke recorder.
//!
//! Tests share one stack per test binary ([`shared`]) and isolate themselves by making
//! their own databases, buckets and DynamoDB tables. `testkit up` runs one in the
//! foreground and prints the environment for the CLI and the demo ([`Stack::env`]).

use std::sync::OnceLock;

use anyhow::{Context, Result};

use crate::invoke::InvokeRecorder;
use crate::moto::Moto;
use crate::pg::PgCluster;
use crate::redshift::{EmulatorConfig, RedshiftEmulator, DEFAULT_SLICES};

#[derive(Debug)]
pub struct Stack {
    pub source: PgCluster,
    pub warehouse: PgCluster,
    pub moto: Moto,
    pub emulator: RedshiftEmulator,
    /// The same warehouse, through an emulator acting as Redshift Serverless.
    pub serverless: RedshiftEmulator,
    pub invoke: InvokeRecorder,
}

/// The stack shared by every test of this process, started on first use on a thread
/// and runtime of its own (a test's runtime ends with the test; the servers must not).
/// Panics with the start-up error, which says what is missing.
pub fn shared() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("testkit-stack".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("build the stack's runtime");
                let stack = runtime.block_on(Stack::start());
                let failed = stack.is_err();
                let _ = tx.send(stack);
                if !failed {
                    // Serve the emulator and the recorder until the process exits.
                    runtime.block_on(std::future::pending::<()>());
                }
            })
            .expect("start the testkit stack thread");
        match rx.recv().expect("the stack thread answers") {
            Ok(stack) => stack,
            Err(e) => panic!("the local test stack did not start: {e:#}"),
        }
    })
}

impl Stack {
    /// Starts every server on the current runtime.
    pub async fn start() -> Result<Stack> {
        let (source, warehouse, moto, invoke) = tokio::try_join!(
            async {
                PgCluster::start("source")
                    .await
                    .context("source PostgreSQL")
            },
            async {
                PgCluster::start("warehouse")
                    .await
                    .context("warehouse PostgreSQL")
            },
            async { Moto::start().await.context("moto") },
            async { InvokeRecorder::start().await.context("Invoke recorder") },
        )?;
        let emulator = RedshiftEmulator::start(EmulatorConfig {
            backend_host: warehouse.host().to_string(),
            backend_port: warehouse.port(),
            backend_user: warehouse.user().to_string(),
            s3: moto.s3_client().await,
            serverless: false,
            iam_role: None,
            slices: Some(DEFAULT_SLICES),
            tls: None,
            require_ssl: false,
        })
        .await
        .context("Redshift emulator")?;
        let serverless = RedshiftEmulator::start(EmulatorConfig {
            backend_host: warehouse.host().to_string(),
            backend_port: warehouse.port(),
            backend_user: warehouse.user().to_string(),
            s3: moto.s3_client().await,
            serverless: true,
            iam_role: None,
            slices: None,
            tls: None,
            require_ssl: false,
        })
        .await
        .context("Redshift emulator (serverless)")?;
        Ok(Stack {
            source,
            warehouse,
            moto,
            emulator,
            serverless,
            invoke,
        })
    }

    /// A new, empty source database; returns its name.
    pub async fn source_db(&self) -> Result<String> {
        self.source.create_database().await
    }

    /// A new, empty warehouse database; returns its name. Reach it through
    /// [`Stack::redshift_url`] as the loader would, or directly through
    /// `self.warehouse.connect(name)` to check what was really stored.
    pub async fn warehouse_db(&self) -> Result<String> {
        self.warehouse.create_database().await
    }

    /// The URL of a warehouse database through the Redshift emulator.
    pub fn redshift_url(&self, db: &str) -> String {
        self.emulator.url(db)
    }

    /// The URL of a warehouse database through the emulator acting as Redshift
    /// Serverless (a database is reached through one of the two only: its shims differ).
    pub fn serverless_url(&self, db: &str) -> String {
        self.serverless.url(db)
    }

    /// Creates the loader's DynamoDB state table (single-table design: string `pk` and
    /// `sk`, TTL on `expires_at`) under a unique name and returns the name.
    pub async fn state_table(&self) -> Result<String> {
        let name = crate::moto::unique_name("loader-state");
        create_state_table(&self.moto.dynamodb_client().await, &name).await?;
        Ok(name)
    }

    /// The `export` lines for a shell: AWS endpoint and credentials for moto, the
    /// loader's variables, and the database URLs.
    pub fn env(&self, names: &EnvNames) -> Vec<(String, String)> {
        let mut env = self.moto.env();
        env.extend(
            [
                ("AWS_ENDPOINT_URL_LAMBDA", self.invoke.endpoint()),
                ("LOADER_S3_FORCE_PATH_STYLE", "true".into()),
                ("LOADER_STATE_TABLE", names.state_table.clone()),
                ("LOADER_STAGING_BUCKET", names.bucket.clone()),
                ("LOADER_STAGING_PREFIX", "staging".into()),
                (
                    "LOADER_COPY_ROLE_ARN",
                    "arn:aws:iam::123456789012:role/redshift-copy".into(),
                ),
                ("LOADER_SCHEDULE_GROUP", "redshift-loader".into()),
                (
                    "LOADER_SCHEDULER_ROLE_ARN",
                    "arn:aws:iam::123456789012:role/redshift-loader-scheduler".into(),
                ),
                ("LOADER_FUNCTION_NAME", "redshift-loader".into()),
                (
                    "LOADER_FUNCTION_ARN",
                    "arn:aws:lambda:us-east-1:123456789012:function:redshift-loader".into(),
                ),
                ("SOURCE_DATABASE_URL", self.source.url(&names.source_db)),
                (
                    "REDSHIFT_DATABASE_URL",
                    self.redshift_url(&names.warehouse_db),
                ),
                (
                    "WAREHOUSE_DIRECT_URL",
                    self.warehouse.url(&names.warehouse_db),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
        );
        env
    }
}

/// The names `testkit up` creates and exports.
#[derive(Debug, Clone)]
pub struct EnvNames {
    pub state_table: String,
    pub bucket: String,
    pub source_db: String,
    pub warehouse_db: String,
}

/// Creates the state table the loader expects (the SAM template creates the same).
pub async fn create_state_table(client: &aws_sdk_dynamodb::Client, name: &str) -> Result<()> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        TimeToLiveSpecification,
    };
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("complete attribute definition")
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .expect("complete key element")
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .with_context(|| format!("creating DynamoDB table {name}"))?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires_at")
                .build()
                .expect("complete TTL specification"),
        )
        .send()
        .await
        .with_context(|| format!("enabling TTL on DynamoDB table {name}"))?;
    Ok(())
}

/// Quotes a value for a POSIX shell `export` line.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn shell_quote_survives_single_quotes() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
