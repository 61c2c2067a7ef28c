//! `deletes: reconcile` on the local stack: rows deleted at the source leave Redshift
//! in both incremental modes, at the interval asked; a writer inserting, updating and
//! deleting (with transactions held open) while runs reconcile never has a live row
//! deleted; a run that loses its lease while comparing deletes nothing.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redshift_loader::config::TableRef;
use redshift_loader::sync::{self, Options, Step};

use crate::support::World;
use crate::sync::{assert_same, ok, rows, setup_job, TIMING};

async fn ids(w: &World, table: &str) -> BTreeSet<i64> {
    rows(
        &w.warehouse().await,
        &format!("SELECT id FROM analytics.{table}"),
    )
    .await
    .into_iter()
    .map(|r| r[0].as_deref().unwrap().parse().unwrap())
    .collect()
}

async fn source_ids(w: &World, table: &str) -> BTreeSet<i64> {
    rows(&w.source().await, &format!("SELECT id FROM {table}"))
        .await
        .into_iter()
        .map(|r| r[0].as_deref().unwrap().parse().unwrap())
        .collect()
}

/// `tickets` (ids 1 to 100) at the source, a job reconciling it on every run, set up and
/// loaded once.
async fn tickets_loaded(w: &World, name: &str) -> redshift_loader::config::Job {
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE tickets (id bigint PRIMARY KEY, note text NOT NULL);
             INSERT INTO tickets SELECT g, 'ticket ' || g FROM generate_series(1, 100) g;",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            name,
            "  - source: public.tickets\n    copy_mode: INSERT_ONLY\n    deletes: reconcile\n    reconcile_every: 0\n",
        )
        .await;
    setup_job(w, &job).await;
    ok(&sync::run(&w.app, &job, &options("first"), TIMING)
        .await
        .unwrap()[0]);
    job
}

fn options(id: &str) -> Options {
    Options {
        run_id: id.into(),
        force: true,
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_at_the_source_reach_redshift_in_both_incremental_modes() {
    let w = World::new().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE tickets (id bigint PRIMARY KEY, note text NOT NULL);
             INSERT INTO tickets SELECT g, 'ticket ' || g FROM generate_series(1, 3000) g;
             CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL,
                                    updated_at timestamptz NOT NULL DEFAULT now());
             CREATE INDEX ON accounts (updated_at, id);
             INSERT INTO accounts (id, name) SELECT g, 'account ' || g FROM generate_series(1, 3000) g;
             CREATE TABLE notes (id bigint PRIMARY KEY, body text NOT NULL);
             INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 50) g;
             CREATE TABLE hourly (region text, n int, PRIMARY KEY (region, n));
             INSERT INTO hourly SELECT r, g FROM unnest(ARRAY['north', 'south']) r, generate_series(1, 50) g;
             CREATE TABLE pairs (region text, n int, PRIMARY KEY (region, n));
             INSERT INTO pairs SELECT r, g FROM unnest(ARRAY['a|b', 'a', 'Zed', 'é']) r, generate_series(1, 30) g;
             CREATE TABLE codes (code char(3) PRIMARY KEY, name text NOT NULL);
             INSERT INTO codes VALUES ('DE', 'Germany'), ('FRA', 'France'), ('US', 'United States'), ('X', 'x');",
        )
        .await
        .unwrap();
    // The job reconciles every run; `notes` keeps deleted rows; `hourly` reconciles
    // at most hourly.
    let yaml = w
        .job_yaml(
            "deletes",
            "  - source: public.tickets\n    copy_mode: INSERT_ONLY\n\
             \x20 - source: public.accounts\n    copy_mode: INSERT_AND_UPDATE\n    updated_key: updated_at\n\
             \x20 - source: public.notes\n    copy_mode: INSERT_ONLY\n    deletes: keep\n\
             \x20 - source: public.hourly\n    copy_mode: INSERT_ONLY\n    reconcile_every: 3600\n\
             \x20 - source: public.pairs\n    copy_mode: INSERT_ONLY\n\
             \x20 - source: public.codes\n    copy_mode: INSERT_ONLY\n",
        )
        .replace("frequency: 300\n", "frequency: 300\ndeletes: reconcile\nreconcile_every: 0\n");
    let job = w.apply_yaml(&yaml).await;
    setup_job(&w, &job).await;
    let first = sync::run(&w.app, &job, &options("first"), TIMING)
        .await
        .unwrap();
    for o in &first {
        assert_eq!(ok(o).rows_deleted, 0, "{}", o.table);
    }

    w.source()
        .await
        .batch_execute(
            "DELETE FROM tickets WHERE id % 500 = 7;
             INSERT INTO tickets SELECT g, 'ticket ' || g FROM generate_series(3001, 3100) g;
             DELETE FROM tickets WHERE id = 3050;
             DELETE FROM accounts WHERE id IN (1, 1500, 3000);
             UPDATE accounts SET name = 'renamed', updated_at = now() WHERE id IN (2, 1501);
             DELETE FROM notes WHERE id = 10;
             DELETE FROM hourly WHERE region = 'north' AND n = 3;
             DELETE FROM pairs WHERE (region = 'a|b' AND n = 7) OR (region = 'é' AND n = 30);
             DELETE FROM codes WHERE code IN ('US', 'FRA');",
        )
        .await
        .unwrap();
    let second = sync::run(&w.app, &job, &options("second"), TIMING)
        .await
        .unwrap();
    let report = |table: &str| ok(second.iter().find(|o| o.table.name == table).unwrap()).clone();
    assert_eq!(report("tickets").rows_deleted, 6, "{:?}", report("tickets"));
    assert_eq!(report("accounts").rows_deleted, 3);
    assert_eq!(report("pairs").rows_deleted, 2, "a composite text key");
    assert_eq!(report("codes").rows_deleted, 2, "a padded char(3) key");
    assert_eq!(report("codes").reconcile.clone().unwrap().missing, 0);
    assert_eq!(report("notes").rows_deleted, 0);
    assert!(
        report("notes").reconcile.is_none(),
        "deletes: keep never compares"
    );
    let r = report("tickets").reconcile.unwrap();
    assert!(r.keys_transferred < 3_000, "shipped the table: {r:?}");
    assert_eq!(r.missing, 0, "{r:?}");
    // Never reconciled before: `hourly` is due on its first run, and not again.
    assert!(first
        .iter()
        .all(|o| o.table.name != "hourly" || ok(o).reconcile.is_some()));
    assert_eq!(report("hourly").rows_deleted, 0);
    assert!(report("hourly").reconcile.is_none(), "not due for an hour");
    for table in ["tickets", "accounts"] {
        assert_same(
            &w,
            &format!("SELECT * FROM {table} ORDER BY id"),
            &format!("SELECT * FROM analytics.{table} ORDER BY id"),
        )
        .await;
    }
    assert!(ids(&w, "notes").await.contains(&10), "deletes: keep");
    assert_eq!(
        rows(
            &w.warehouse().await,
            "SELECT count(*) FROM analytics.hourly"
        )
        .await[0][0]
            .as_deref(),
        Some("100")
    );

    // The count is in the run history, as `runs` shows it.
    let runs = w
        .app
        .store
        .runs_of("deletes", Some(&TableRef::new("public", "tickets")), 1)
        .await
        .unwrap();
    assert_eq!(runs[0]["report"]["rows_deleted"], 6, "{}", runs[0]);
    let (out, _) = crate::support::text(&w.cli(&[
        "runs",
        "deletes",
        "--table",
        "public.tickets",
        "--limit",
        "1",
    ]));
    assert!(out.contains("deleted"), "{out}");
}

/// Inserts, updates and (with `delete`) deletes, some in transactions held open a while,
/// in table `feed` until told to stop; returns how many of each it committed.
pub async fn hammer(url: String, stop: Arc<AtomicBool>, delete: bool) -> (u64, u64, u64) {
    let c = testkit::pg::connect_url(&url).await.unwrap();
    let held = testkit::pg::connect_url(&url).await.unwrap();
    let (mut inserts, mut updates, mut deletes) = (0, 0, 0);
    let mut round = 0u64;
    while !stop.load(Ordering::SeqCst) {
        round += 1;
        // A transaction held open across the others: it commits late, below rows
        // committed after it.
        if round % 5 == 0 {
            held.batch_execute("BEGIN; INSERT INTO feed (v) VALUES (-1)")
                .await
                .unwrap();
        }
        c.batch_execute("INSERT INTO feed (v) SELECT g FROM generate_series(1, 3) g")
            .await
            .unwrap();
        inserts += 3;
        updates += c
            .execute(
                "UPDATE feed SET v = v + 1, updated_at = clock_timestamp()
                 WHERE id IN (SELECT id FROM feed ORDER BY random() LIMIT 2)",
                &[],
            )
            .await
            .unwrap();
        if delete {
            deletes += c
                .execute(
                    "DELETE FROM feed WHERE id IN (SELECT id FROM feed ORDER BY random() LIMIT 1)",
                    &[],
                )
                .await
                .unwrap();
        }
        if round % 5 == 4 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        if round % 5 == 0 {
            held.batch_execute("COMMIT").await.unwrap();
            inserts += 1;
        }
    }
    (inserts, updates, deletes)
}

/// Table `feed` at the source with `rows` rows, keyed for INSERT_AND_UPDATE by
/// `updated_at`: what [`hammer`] writes to.
pub async fn feed(w: &World, rows: u32) {
    w.source()
        .await
        .batch_execute(&format!(
            "CREATE TABLE feed (id bigserial PRIMARY KEY, v int NOT NULL,
                                updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
             CREATE INDEX ON feed (updated_at, id);
             INSERT INTO feed (v) SELECT g FROM generate_series(1, {rows}) g;"
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_while_runs_reconcile_are_never_deleted() {
    let w = World::with_own_source().await;
    feed(&w, 2000).await;
    let job = w
        .apply(
            "hammered",
            "  - source: public.feed\n    copy_mode: INSERT_AND_UPDATE\n    updated_key: updated_at\n    deletes: reconcile\n    reconcile_every: 0\n",
        )
        .await;
    setup_job(&w, &job).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(hammer(w.source_url(), stop.clone(), true));
    let mut before = ids(&w, "feed").await;
    let mut deleted = 0;
    for round in 0..12 {
        // Committed before the run starts: loaded by it, unless deleted meanwhile.
        let committed = source_ids(&w, "feed").await;
        let outcomes = sync::run(&w.app, &job, &options(&format!("round-{round}")), TIMING)
            .await
            .unwrap();
        deleted += ok(&outcomes[0]).rows_deleted;
        let now = ids(&w, "feed").await;
        // Every key that is not in Redshift now, though it was before the run or at the
        // source when it started, is gone from the source (ids are never reused).
        let absent: Vec<i64> = before
            .union(&committed)
            .filter(|id| !now.contains(id))
            .copied()
            .collect();
        if !absent.is_empty() {
            let live = rows(
                &w.source().await,
                &format!(
                    "SELECT id FROM feed WHERE id IN ({})",
                    absent
                        .iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .await;
            assert!(
                live.is_empty(),
                "round {round}: live rows missing: {live:?}"
            );
        }
        before = now;
    }
    stop.store(true, Ordering::SeqCst);
    let (inserts, updates, source_deletes) = writer.await.unwrap();
    assert!(inserts > 0 && updates > 0 && source_deletes > 0);
    assert!(deleted > 0, "no run reconciled while the writer deleted");
    // Quiet again: one more run, and Redshift is the source.
    let last = sync::run(&w.app, &job, &options("last"), TIMING)
        .await
        .unwrap();
    ok(&last[0]);
    assert_same(
        &w,
        "SELECT id, v, updated_at FROM feed ORDER BY id",
        "SELECT id, v, updated_at FROM analytics.feed ORDER BY id",
    )
    .await;
}

/// When the source's keys are fixed, another run takes the table over and loads a row
/// the comparison's snapshot cannot see.
struct TakeOverWhileComparing {
    w: Arc<World>,
    job: redshift_loader::config::Job,
    first_owner: String,
    done: AtomicBool,
}

impl sync::Observer for TakeOverWhileComparing {
    fn step(&self, _: &TableRef, step: Step, _: u64, _: u64) -> Result<(), String> {
        if step == Step::KeysFixed && !self.done.swap(true, Ordering::SeqCst) {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    self.w
                        .source()
                        .await
                        .batch_execute("INSERT INTO tickets VALUES (5000, 'late')")
                        .await
                        .unwrap();
                    let options = Options {
                        run_id: "other".into(),
                        force: true,
                        take_over: Some(self.first_owner.clone()),
                        ..Options::default()
                    };
                    let outcomes = sync::run(&self.w.app, &self.job, &options, TIMING)
                        .await
                        .unwrap();
                    assert_eq!(ok(&outcomes[0]).rows, 1);
                })
            });
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_lost_its_lease_while_comparing_deletes_nothing() {
    let w = Arc::new(World::new().await);
    let job = tickets_loaded(&w, "overtaken").await;
    w.source()
        .await
        .batch_execute("DELETE FROM tickets WHERE id = 50")
        .await
        .unwrap();
    let owner = "slow.00000001".to_string();
    let slow = Options {
        run_id: "slow".into(),
        force: true,
        owner: Some(owner.clone()),
        observer: Some(Arc::new(TakeOverWhileComparing {
            w: w.clone(),
            job: job.clone(),
            first_owner: owner,
            done: AtomicBool::new(false),
        })),
        ..Options::default()
    };
    let outcomes = sync::run(&w.app, &job, &slow, TIMING).await.unwrap();
    let error = outcomes[0].result.as_ref().unwrap_err().to_string();
    assert!(error.contains("lost its lease"), "{error}");
    // The other run's row stays; the row deleted at the source went in the other
    // run's own reconcile.
    let now = ids(&w, "tickets").await;
    assert!(
        now.contains(&5000),
        "a row the slow run's snapshot could not see was deleted"
    );
    assert!(!now.contains(&50));
    assert_eq!(now.len(), 100);
}

#[tokio::test]
async fn keys_that_do_not_compare_at_all_delete_nothing() {
    let w = World::new().await;
    let job = tickets_loaded(&w, "mismatched").await;
    // As if Redshift printed every key differently: none of them is at the source.
    w.warehouse()
        .await
        .batch_execute("UPDATE analytics.tickets SET id = id + 1000000")
        .await
        .unwrap();
    let outcomes = sync::run(&w.app, &job, &options("second"), TIMING)
        .await
        .unwrap();
    let error = match &outcomes[0].result {
        Err(e) => e.to_string(),
        Ok(report) => panic!("the run succeeded: {report:?}"),
    };
    assert!(error.contains("none of Redshift's 100 keys"), "{error}");
    assert_eq!(ids(&w, "tickets").await.len(), 100, "nothing deleted");
}

/// In Lambda a reconcile may start with little time left: past the deadline it starts
/// no more ranges (Lambda would end it with the lease held), says so, and the next run
/// compares again.
#[tokio::test]
async fn a_reconcile_past_the_deadline_stops_unfinished_and_the_next_run_completes_it() {
    let w = World::new().await;
    let job = tickets_loaded(&w, "late").await;
    w.source()
        .await
        .batch_execute("DELETE FROM tickets WHERE id IN (10, 20)")
        .await
        .unwrap();
    let hurried = Options {
        deadline: Some(std::time::Instant::now()),
        ..options("hurried")
    };
    let outcomes = sync::run(&w.app, &job, &hurried, TIMING).await.unwrap();
    let report = ok(&outcomes[0]);
    assert!(report.caught_up, "{report:?}");
    let reconcile = report.reconcile.clone().unwrap();
    assert!(reconcile.unfinished, "{reconcile:?}");
    assert_eq!(report.rows_deleted, 0);
    assert_eq!(ids(&w, "tickets").await.len(), 100);
    let outcomes = sync::run(&w.app, &job, &options("next"), TIMING)
        .await
        .unwrap();
    let report = ok(&outcomes[0]);
    assert!(!report.reconcile.clone().unwrap().unfinished, "{report:?}");
    assert_eq!(report.rows_deleted, 2);
    assert_eq!(ids(&w, "tickets").await.len(), 98);
}
