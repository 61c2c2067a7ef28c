//! A per-test world on the shared stack: its own source and warehouse databases, state
//! table and bucket, and the loader's `App` wired to them exactly as the environment
//! printed by `testkit up` would wire it.

use std::collections::HashMap;

use redshift_loader::app::App;
use redshift_loader::aws::{Clients, Settings};
use redshift_loader::config::{Format, Job};
use testkit::stack::{shared, EnvNames, Stack};

pub struct World {
    pub stack: &'static Stack,
    pub names: EnvNames,
    /// This world's function name: continuations it sends are recorded under it.
    pub function: String,
    pub env: Vec<(String, String)>,
    pub app: App,
    /// A source cluster of this world's own, when it asked for one: where a test must
    /// count transaction ids no other test's transactions may touch (ids are per
    /// cluster, not per database).
    own_source: Option<testkit::pg::PgCluster>,
    /// A hot standby of `own_source` that the loader reads, when the world asked for
    /// one; tests write on the primary.
    replica: Option<testkit::pg::PgCluster>,
}

impl World {
    pub async fn new() -> World {
        let stack = shared();
        let names = EnvNames {
            state_table: stack.state_table().await.unwrap(),
            bucket: stack.moto.create_bucket().await.unwrap(),
            source_db: stack.source_db().await.unwrap(),
            warehouse_db: stack.warehouse_db().await.unwrap(),
        };
        let function = testkit::moto::unique_name("fn");
        let mut env = stack.env(&names);
        for (k, v) in env.iter_mut() {
            if k == "LOADER_FUNCTION_NAME" {
                *v = function.clone();
            }
        }
        let lookup: HashMap<String, String> = env.iter().cloned().collect();
        let settings = Settings::from_lookup(|k| lookup.get(k).cloned()).unwrap();
        let sdk = stack.moto.sdk_config().await;
        let mut clients = Clients::new(&sdk, &settings);
        // Invoke goes to the recorder, as AWS_ENDPOINT_URL_LAMBDA sends the CLI's.
        clients.lambda = aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::config::Builder::from(&sdk)
                .endpoint_url(stack.invoke.endpoint())
                .build(),
        );
        let app = App::new(settings, clients).unwrap();
        World {
            stack,
            names,
            function,
            env,
            app,
            own_source: None,
            replica: None,
        }
    }

    /// A world whose source database is alone in its PostgreSQL cluster.
    pub async fn with_own_source() -> World {
        let mut w = World::new().await;
        let cluster = testkit::pg::PgCluster::start("own-source").await.unwrap();
        w.names.source_db = cluster.create_database().await.unwrap();
        let url = cluster.url(&w.names.source_db);
        for (k, v) in w.env.iter_mut() {
            if k == "SOURCE_DATABASE_URL" {
                *v = url.clone();
            }
        }
        w.own_source = Some(cluster);
        w
    }

    /// A world whose loader reads a hot standby of a source cluster of its own:
    /// [`World::source`] is the primary (write there), [`World::replica`] the standby,
    /// and the job's `source.url` points at the standby. Runs see the primary's commits
    /// once [`World::replayed`] has returned.
    pub async fn with_replica_source() -> World {
        let mut w = World::with_own_source().await;
        let primary = w.own_source.as_ref().expect("its own source");
        let replica = primary.start_replica("replica-source").await.unwrap();
        let url = replica.url(&w.names.source_db);
        for (k, v) in w.env.iter_mut() {
            if k == "SOURCE_DATABASE_URL" {
                *v = url.clone();
            }
        }
        w.replica = Some(replica);
        w
    }

    /// This world's own source cluster (`with_own_source`, `with_replica_source`).
    pub fn own_source(&self) -> Option<&testkit::pg::PgCluster> {
        self.own_source.as_ref()
    }

    /// The standby the loader reads, directly (`with_replica_source` only).
    pub async fn replica(&self) -> tokio_postgres::Client {
        self.replica
            .as_ref()
            .expect("a world with_replica_source")
            .connect(&self.names.source_db)
            .await
            .unwrap()
    }

    /// Waits until the standby has replayed every transaction the primary committed.
    pub async fn replayed(&self) {
        let replica = self.replica.as_ref().expect("a world with_replica_source");
        let primary = self.own_source.as_ref().expect("its own source");
        replica.wait_for_replay(primary).await.unwrap();
    }

    /// The source database, directly (the primary, in a world with a replica).
    pub async fn source(&self) -> tokio_postgres::Client {
        self.own_source
            .as_ref()
            .unwrap_or(&self.stack.source)
            .connect(&self.names.source_db)
            .await
            .unwrap()
    }

    /// The PostgreSQL database behind the emulator, directly: what Redshift really holds.
    pub async fn warehouse(&self) -> tokio_postgres::Client {
        self.stack
            .warehouse
            .connect(&self.names.warehouse_db)
            .await
            .unwrap()
    }

    /// The port of the source cluster the loader reads.
    pub fn source_port(&self) -> u16 {
        self.replica
            .as_ref()
            .or(self.own_source.as_ref())
            .unwrap_or(&self.stack.source)
            .port()
    }

    /// The source the loader reads: the replica, in a world with one.
    pub fn source_url(&self) -> String {
        self.replica
            .as_ref()
            .or(self.own_source.as_ref())
            .unwrap_or(&self.stack.source)
            .url(&self.names.source_db)
    }

    pub fn redshift_url(&self) -> String {
        self.stack.redshift_url(&self.names.warehouse_db)
    }

    /// A job file (YAML) for this world's databases, with `tables` (a YAML list,
    /// indented by two spaces) appended.
    pub fn job_yaml(&self, name: &str, tables: &str) -> String {
        format!(
            "name: {name}\n\
             source:\n  url: {}\n\
             destination:\n  url: {}\n  schema: analytics\n  iam_role: arn:aws:iam::123456789012:role/redshift-copy\n\
             frequency: 300\n\
             tables:\n{tables}",
            self.source_url(),
            self.redshift_url()
        )
    }

    pub fn job(&self, name: &str, tables: &str) -> Job {
        Job::parse(&self.job_yaml(name, tables), Format::Yaml)
            .unwrap_or_else(|e| panic!("test job does not parse: {e}"))
    }

    /// Stores the job (creating it) and returns it.
    pub async fn apply(&self, name: &str, tables: &str) -> Job {
        self.apply_yaml(&self.job_yaml(name, tables)).await
    }

    /// Parses a job file (YAML), stores the job (creating it) and returns it.
    pub async fn apply_yaml(&self, yaml: &str) -> Job {
        let job = Job::parse(yaml, Format::Yaml)
            .unwrap_or_else(|e| panic!("test job does not parse: {e}"));
        self.app
            .store
            .put_job(&job, None, chrono::Utc::now())
            .await
            .unwrap();
        job
    }

    /// Runs the CLI binary with this world's environment.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_with(args, &[])
    }

    /// Runs the CLI binary with this world's environment, `extra` set over it.
    pub fn cli_with(&self, args: &[&str], extra: &[(&str, &str)]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_redshift-loader"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
            .output()
            .expect("the redshift-loader binary runs")
    }
}

/// stdout and stderr of a CLI run, for assertion messages.
pub fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
