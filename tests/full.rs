//! FULL_DATA_SYNC on a real warehouse: views and grants on the table survive every run,
//! readers see the old rows or the new ones, and a copy larger than one invocation goes
//! on over continuations and replaces the rows once.

use std::sync::Arc;
use std::time::Duration;

use redshift_loader::config::TableRef;
use redshift_loader::lambda::Handler;
use redshift_loader::sync::{self, Options, Step};
use serde_json::json;

use crate::support::World;
use crate::sync::{assert_same, ok, rows, setup_job, CrashAt, TIMING};

const FIFTEEN: Duration = Duration::from_secs(900);

/// Table `plans` (30 rows) at the source, and job `name` copying it in full in chunks of
/// `chunk` rows, set up.
async fn plans(w: &World, name: &str, chunk: u32) -> redshift_loader::config::Job {
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE plans (id bigserial PRIMARY KEY, name text NOT NULL);
             INSERT INTO plans (name) SELECT 'plan ' || i FROM generate_series(1, 30) i;",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            name,
            &format!(
                "  - source: public.plans\n    copy_mode: FULL_DATA_SYNC\n    import_chunk_size: {chunk}\n"
            ),
        )
        .await;
    setup_job(w, &job).await;
    job
}

/// While the rows are being replaced (not committed yet), another session reads the
/// table: what it counts is kept.
struct ReadDuringReplace {
    url: String,
    seen: std::sync::Mutex<Option<i64>>,
}

impl sync::Observer for ReadDuringReplace {
    fn step(&self, _: &TableRef, step: Step, _: u64, _: u64) -> Result<(), String> {
        if step == Step::Swapping {
            let count = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    let c = testkit::pg::connect_url(&self.url).await.unwrap();
                    let n: i64 = c
                        .query_one("SELECT count(*) FROM analytics.countries", &[])
                        .await
                        .unwrap()
                        .get(0);
                    n
                })
            });
            *self.seen.lock().unwrap() = Some(count);
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_copy_keeps_the_views_and_grants_on_its_table() {
    let w = World::new().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL);
             INSERT INTO countries SELECT 'c' || i, 'country ' || i FROM generate_series(1, 30) i;",
        )
        .await
        .unwrap();
    let job = w.apply("views", "  - source: public.countries\n").await;
    setup_job(&w, &job).await;
    let options = |id: &str| Options {
        run_id: id.into(),
        force: true,
        ..Options::default()
    };
    ok(&sync::run(&w.app, &job, &options("first"), TIMING)
        .await
        .unwrap()[0]);
    // What analysts do with a warehouse table: a view on it, and a grant.
    let reader = format!("reader_{}", uuid::Uuid::new_v4().simple());
    w.warehouse()
        .await
        .batch_execute(&format!(
            "CREATE VIEW analytics.country_names AS SELECT name FROM analytics.countries;
             CREATE ROLE {reader};
             GRANT USAGE ON SCHEMA analytics TO {reader};
             GRANT SELECT ON analytics.countries TO {reader};"
        ))
        .await
        .unwrap();
    for round in 0..2 {
        w.source()
            .await
            .batch_execute(&format!(
                "DELETE FROM countries WHERE code = 'c{}'; UPDATE countries SET name = name || ' {round}'",
                round + 1
            ))
            .await
            .unwrap();
        let seen = Arc::new(ReadDuringReplace {
            url: w.redshift_url(),
            seen: Default::default(),
        });
        let run = Options {
            observer: Some(seen.clone()),
            ..options(&format!("round-{round}"))
        };
        let outcomes = sync::run(&w.app, &job, &run, TIMING).await.unwrap();
        ok(&outcomes[0]);
        assert_eq!(
            *seen.seen.lock().unwrap(),
            Some(30 - round),
            "round {round}: a reader sees the old rows until the commit"
        );
        assert_same(
            &w,
            "SELECT code, name FROM countries ORDER BY code",
            "SELECT code, name FROM analytics.countries ORDER BY code",
        )
        .await;
    }
    let warehouse = w.warehouse().await;
    let through_view = rows(&warehouse, "SELECT count(*) FROM analytics.country_names").await;
    assert_eq!(
        through_view[0][0].as_deref(),
        Some("28"),
        "the view reads the new rows"
    );
    let granted: bool = warehouse
        .query_one(
            "SELECT has_table_privilege($1, 'analytics.countries', 'SELECT')",
            &[&reader],
        )
        .await
        .unwrap()
        .get(0);
    assert!(granted, "the grant stays");
    let copies = rows(
        &warehouse,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'analytics' AND tablename LIKE 'countries\\_\\_rsl%'",
    )
    .await;
    assert_eq!(copies[0][0].as_deref(), Some("0"), "no copy left behind");
}

#[tokio::test]
async fn a_full_copy_larger_than_one_invocation_goes_on_and_replaces_once() {
    let w = World::new().await;
    plans(&w, "big_full", 4).await;
    // Each invocation has time for one chunk.
    let mut h = Handler::from_lookup(w.app.clone(), |_| None).unwrap();
    h.margin = Duration::from_secs(3600);
    let drain = |h: &Handler| {
        let h = h.clone();
        let w = &w;
        async move {
            let mut hops = 0;
            let mut between = Vec::new();
            loop {
                let recorded = w.stack.invoke.take(&w.function);
                if recorded.is_empty() {
                    return (hops, between);
                }
                between.push(
                    rows(
                        &w.warehouse().await,
                        "SELECT count(*), min(name) FROM analytics.plans",
                    )
                    .await,
                );
                for r in recorded {
                    hops += 1;
                    h.handle(r.payload, FIFTEEN).await.unwrap();
                }
            }
        }
    };
    h.handle(json!({"action": "run", "job": "big_full"}), FIFTEEN)
        .await
        .unwrap();
    let (hops, _) = drain(&h).await;
    assert_eq!(hops, 7, "30 rows in chunks of 4: 8 invocations");
    assert_same(
        &w,
        "SELECT id, name FROM plans ORDER BY id",
        "SELECT id, name FROM analytics.plans ORDER BY id",
    )
    .await;
    // A change, and the next full copy: the old rows stay whole until the last hop.
    w.source()
        .await
        .batch_execute("UPDATE plans SET name = 'renamed ' || id; DELETE FROM plans WHERE id > 25")
        .await
        .unwrap();
    h.handle(
        json!({"action": "run", "job": "big_full", "force": true}),
        FIFTEEN,
    )
    .await
    .unwrap();
    let (hops, between) = drain(&h).await;
    assert_eq!(hops, 6, "25 rows in chunks of 4: 7 invocations");
    for seen in between {
        assert_eq!(
            seen[0],
            vec![Some("30".to_string()), Some("plan 1".to_string())],
            "the old rows until the copy is complete"
        );
    }
    assert_same(
        &w,
        "SELECT id, name FROM plans ORDER BY id",
        "SELECT id, name FROM analytics.plans ORDER BY id",
    )
    .await;
    let progress = w
        .app
        .store
        .get_table_document("big_full", &TableRef::new("public", "plans"), "full_copy")
        .await
        .unwrap();
    assert_eq!(progress, None, "the finished copy is forgotten");
}

/// Lambda retries a crashed invocation with the same payload: a hop of a full copy that
/// died after Redshift committed a chunk, before its progress was stored, runs again and
/// reads that chunk again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_copy_hop_retried_after_a_crash_duplicates_nothing() {
    let w = World::new().await;
    let job = plans(&w, "retried_full", 7).await;
    let options = |observer: Option<Arc<dyn sync::Observer>>| Options {
        run_id: "lambda-retried".into(),
        force: true,
        observer,
        ..Options::default()
    };
    let crashed = sync::run(
        &w.app,
        &job,
        &options(Some(Arc::new(CrashAt {
            step: Step::Committed,
            chunk: 2,
        }))),
        TIMING,
    )
    .await
    .unwrap();
    let e = crashed[0].result.as_ref().unwrap_err().to_string();
    assert!(e.contains("injected crash"), "{e}");
    // The retry: same run, so it goes on with the copy and the progress of chunk 1.
    let retried = sync::run(&w.app, &job, &options(None), TIMING)
        .await
        .unwrap();
    ok(&retried[0]);
    assert_same(
        &w,
        "SELECT id, name FROM plans ORDER BY id",
        "SELECT id, name FROM analytics.plans ORDER BY id",
    )
    .await;
}

/// `verify` on a full copy made over several invocations: a row Redshift lost or holds
/// changed is drift, a row changed at the source since the copy's first read is the
/// next copy's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_tells_a_full_copys_drift_from_the_rows_changed_since() {
    let w = World::new().await;
    let job = plans(&w, "checked_full", 4).await;
    let verify = || redshift_loader::verify::check::verify_job(&w.app, &job, &[], 10);
    // Before any copy: every source row is the first copy's.
    let verdicts = verify().await.unwrap();
    let v = verdicts[0].as_ref().unwrap();
    assert!(!v.drift() && v.pending == 30, "{v:?}");
    // One chunk an invocation; between the hops a row the copy has not reached yet
    // changes (the copy reads it changed: equal).
    let mut h = Handler::from_lookup(w.app.clone(), |_| None).unwrap();
    h.margin = Duration::from_secs(3600);
    h.handle(json!({"action": "run", "job": "checked_full"}), FIFTEEN)
        .await
        .unwrap();
    let mut hops = 0;
    loop {
        let recorded = w.stack.invoke.take(&w.function);
        if recorded.is_empty() {
            break;
        }
        if hops == 1 {
            w.source()
                .await
                .batch_execute("UPDATE plans SET name = 'renamed during the copy' WHERE id = 29")
                .await
                .unwrap();
        }
        for r in recorded {
            hops += 1;
            h.handle(r.payload, FIFTEEN).await.unwrap();
        }
    }
    assert_eq!(hops, 7);
    let verdicts = verify().await.unwrap();
    let v = verdicts[0].as_ref().unwrap();
    assert!(!v.drift(), "{v:?}");
    // Row 29 was written after the copy's first read: pending, though equal (not
    // counted: only rows that differ are tested).
    assert_eq!(v.pending, 0, "{v:?}");

    // Planted in Redshift: a row lost, a row changed. At the source: a row updated,
    // one inserted, one deleted (all three the next copy's).
    w.warehouse()
        .await
        .batch_execute(
            "DELETE FROM analytics.plans WHERE id = 3;
             UPDATE analytics.plans SET name = 'tampered' WHERE id = 4;",
        )
        .await
        .unwrap();
    w.source()
        .await
        .batch_execute(
            "UPDATE plans SET name = 'changed' WHERE id = 5;
             INSERT INTO plans (name) VALUES ('new');
             DELETE FROM plans WHERE id = 6;",
        )
        .await
        .unwrap();
    let verdicts = verify().await.unwrap();
    let v = verdicts[0].as_ref().unwrap();
    assert_eq!(v.only_source.examples, ["id=3"], "{v:?}");
    assert_eq!(v.differ.examples, ["id=4"], "{v:?}");
    assert_eq!(v.only_redshift.count, 0, "{v:?}");
    assert_eq!(v.pending, 3, "rows 5, 31 and 6: {v:?}");
}
