//! What an operator meets in the first week: a column added or widened at the source
//! (picked up by the next run, no `setup`), a value that still has to be cut (a warning
//! in `status`), and a run killed mid-chunk (its staged objects gone after the next run).

use std::sync::Arc;

use redshift_loader::config::{Job, TableRef};
use redshift_loader::sync::{self, Options, Report, Step};

use crate::support::{text, World};
use crate::sync::{assert_same, ok, setup_job, TIMING};

async fn run(w: &World, job: &Job) -> Report {
    let options = Options {
        run_id: format!("test-{}", uuid::Uuid::new_v4().simple()),
        force: true,
        ..Options::default()
    };
    let outcomes = sync::run(&w.app, job, &options, TIMING).await.unwrap();
    ok(&outcomes[0]).clone()
}

#[tokio::test]
async fn a_column_added_and_one_widened_at_the_source_arrive_whole_without_setup() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE people (id bigserial PRIMARY KEY, name varchar(10) NOT NULL,
                                  updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
             CREATE INDEX ON people (updated_at, id);
             INSERT INTO people (name) VALUES ('ann'), ('bob'), ('cy');",
        )
        .await
        .unwrap();
    let job = w.apply("grow", "  - source: public.people\n").await;
    setup_job(&w, &job).await;
    assert_eq!(run(&w, &job).await.rows, 3);
    // A column added, one widened; values that need both arrive at once.
    let long_name = "é".repeat(40);
    w.source()
        .await
        .batch_execute(&format!(
            "ALTER TABLE people ADD COLUMN note text;
             ALTER TABLE people ALTER COLUMN name TYPE varchar(40);
             INSERT INTO people (name, note) VALUES ('{long_name}', 'new');
             UPDATE people SET note = 'added later', updated_at = clock_timestamp() WHERE id = 1;"
        ))
        .await
        .unwrap();
    let report = run(&w, &job).await;
    assert_eq!(report.rows, 2, "{report:?}");
    assert_eq!(
        report.values_truncated, 0,
        "the widened column holds it whole"
    );
    assert_eq!(
        report.schema_changes,
        vec![
            "widen column \"name\" from VARCHAR(40) to VARCHAR(160)".to_string(),
            "add column \"note\" VARCHAR(65535)".to_string(),
        ],
        "{report:?}"
    );
    assert_same(
        &w,
        "SELECT id, name, note FROM people ORDER BY id",
        "SELECT id, name, note FROM analytics.people ORDER BY id",
    )
    .await;
    // Recorded as setup would: the next run changes nothing.
    let again = run(&w, &job).await;
    assert!(again.schema_changes.is_empty(), "{again:?}");
}

#[tokio::test]
async fn a_type_change_the_run_cannot_apply_stops_the_table_with_the_remedy() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE items (id bigserial PRIMARY KEY, qty int NOT NULL);
             INSERT INTO items (qty) VALUES (1);",
        )
        .await
        .unwrap();
    let job = w.apply("narrow", "  - source: public.items\n").await;
    setup_job(&w, &job).await;
    run(&w, &job).await;
    w.source()
        .await
        .batch_execute("ALTER TABLE items ALTER COLUMN qty TYPE text")
        .await
        .unwrap();
    let options = Options {
        run_id: "narrow-2".into(),
        force: true,
        ..Options::default()
    };
    let outcomes = sync::run(&w.app, &job, &options, TIMING).await.unwrap();
    let error = outcomes[0].result.as_ref().unwrap_err().to_string();
    assert!(
        error.starts_with("table public.items: column \"qty\" changed type at the source")
            && error.contains("--rebuild"),
        "{error}"
    );
}

#[tokio::test]
async fn a_value_still_cut_makes_the_table_a_warning_in_status() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL);
             INSERT INTO notes (body) VALUES ('short'), (repeat('x', 70000));",
        )
        .await
        .unwrap();
    let job = w.apply("cut", "  - source: public.notes\n").await;
    setup_job(&w, &job).await;
    let report = run(&w, &job).await;
    assert_eq!(report.values_truncated, 1);
    let out = w.cli(&["status", "cut"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("warning: the last run cut 1 value(s) to fit their columns"),
        "{stdout}"
    );
    let out = w.cli(&["--json", "status", "cut"]);
    let (stdout, _) = text(&out);
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let table = &doc["tables"][0];
    assert_eq!(table["state"], "warning", "{doc}");
}

/// Stops the run at one step of one chunk, as a kill there would.
struct KillAt(Step);

impl sync::Observer for KillAt {
    fn step(&self, _: &TableRef, step: Step, _: u64, _: u64) -> Result<(), String> {
        if step == self.0 {
            return Err("killed".into());
        }
        Ok(())
    }
}

async fn staged_keys(w: &World) -> Vec<String> {
    let listed = w
        .app
        .clients
        .s3
        .list_objects_v2()
        .bucket(&w.names.bucket)
        .send()
        .await
        .unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn a_killed_runs_staged_objects_are_gone_after_the_next_run() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL);
             INSERT INTO events (kind) SELECT 'e' || i FROM generate_series(1, 20) i;",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            "killed",
            "  - source: public.events\n    import_chunk_size: 5\n",
        )
        .await;
    setup_job(&w, &job).await;
    let kill = |k: usize, step: Step| Options {
        run_id: format!("killed-{k}"),
        force: true,
        observer: Some(Arc::new(KillAt(step))),
        ..Options::default()
    };
    // Killed after its manifest was staged: a part and a manifest stay behind.
    let outcomes = sync::run(&w.app, &job, &kill(0, Step::Staged), TIMING)
        .await
        .unwrap();
    assert!(outcomes[0].result.is_err());
    let first = staged_keys(&w).await;
    assert_eq!(first.len(), 2, "a part and a manifest: {first:?}");
    // The next run, killed after its part was staged: it removed the first one's.
    let outcomes = sync::run(&w.app, &job, &kill(1, Step::Extracted), TIMING)
        .await
        .unwrap();
    assert!(outcomes[0].result.is_err());
    let second = staged_keys(&w).await;
    assert_eq!(second.len(), 1, "{second:?}");
    assert!(!first.contains(&second[0]));
    let report = run(&w, &job).await;
    assert_eq!(report.leftovers_removed, 1, "{report:?}");
    assert_eq!(report.rows, 20);
    assert_eq!(staged_keys(&w).await, Vec::<String>::new());
}
