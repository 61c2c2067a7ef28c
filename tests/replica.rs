//! Change capture from a read replica: the loader reads a hot standby while sessions
//! write on its primary. A standby's snapshot lists no in-flight ids (`xmin:xmax:` with
//! `xmin < xmax`), so the catch-up falls back to every row written at or above `xmin`.
//! Each test compares the warehouse with the primary row by row.

use redshift_loader::config::{Job, TableRef};
use redshift_loader::sync::{self, Mark, Options, Report, MARK};
use tokio_postgres::Client;

use crate::support::World;
use crate::sync::{assert_same, ok, rows, setup_job, TIMING};

async fn run(w: &World, job: &Job) -> Report {
    let options = Options {
        run_id: format!("test-{}", uuid::Uuid::new_v4().simple()),
        force: true,
        ..Options::default()
    };
    let outcomes = sync::run(&w.app, job, &options, TIMING).await.unwrap();
    ok(&outcomes[0]).clone()
}

async fn mark(w: &World, job: &str, table: &str) -> Mark {
    let doc = w
        .app
        .store
        .get_table_document(job, &TableRef::new("public", table), MARK)
        .await
        .unwrap()
        .expect("a mark");
    serde_json::from_value(doc).unwrap()
}

/// The 64-bit id of the transaction `session` is in (assigning one if it has none).
async fn xact_id(session: &Client) -> u64 {
    let id: i64 = session
        .query_one("SELECT pg_current_xact_id()::text::bigint", &[])
        .await
        .unwrap()
        .get(0);
    id as u64
}

/// The mark's snapshot, which must be a standby's with `writer` in flight: no ids
/// listed, `xmin` at or below the writer's id.
async fn standby_snapshot_with(w: &World, job: &str, table: &str, writer: u64) {
    let snapshot = mark(w, job, table)
        .await
        .snapshot
        .expect("the mark keeps its read's snapshot");
    assert!(
        snapshot.xip.is_empty()
            && snapshot.xmin < snapshot.xmax
            && !snapshot.lists_in_flight()
            && (snapshot.xmin..snapshot.xmax).contains(&writer),
        "a standby's snapshot with {writer} in flight: {snapshot}"
    );
}

#[tokio::test]
async fn insert_only_on_a_replica_loads_an_id_that_commits_after_a_higher_one() {
    let w = World::with_replica_source().await;
    w.source()
        .await
        .batch_execute("CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL)")
        .await
        .unwrap();
    w.replayed().await;
    let job = w
        .apply(
            "replica_ids",
            "  - source: public.events\n    copy_mode: INSERT_ONLY\n",
        )
        .await;
    setup_job(&w, &job).await;
    let (a, b) = (w.source().await, w.source().await);
    // A takes id 1, B takes id 2 and commits first.
    a.batch_execute("BEGIN; INSERT INTO events (kind) VALUES ('a')")
        .await
        .unwrap();
    let a_id = xact_id(&a).await;
    b.batch_execute("INSERT INTO events (kind) VALUES ('b')")
        .await
        .unwrap();
    w.replayed().await;
    let seen = rows(&w.replica().await, "SELECT id, kind FROM events").await;
    assert_eq!(seen, [[Some("2".to_string()), Some("b".to_string())]]);
    let first = run(&w, &job).await;
    assert_eq!(first.rows, 1);
    assert_eq!(mark(&w, "replica_ids", "events").await.cursor, vec!["2"]);
    standby_snapshot_with(&w, "replica_ids", "events", a_id).await;
    a.batch_execute("COMMIT").await.unwrap();
    w.replayed().await;
    let second = run(&w, &job).await;
    // Id 1, and id 2 once more: written at or above the snapshot's xmin (A's id).
    assert_eq!((second.rows, second.late_rows), (2, 2), "{second:?}");
    assert_same(
        &w,
        "SELECT id, kind FROM events ORDER BY id",
        "SELECT id, kind FROM analytics.events ORDER BY id",
    )
    .await;
    // The catch-up read an idle standby (`xmin = xmax`): nothing is read again.
    assert_eq!(run(&w, &job).await.rows, 0);
}

const ORDERS: &str = "CREATE TABLE orders (id bigserial PRIMARY KEY, note text NOT NULL,
                                         updated_at timestamptz NOT NULL DEFAULT now());
    CREATE INDEX ON orders (updated_at, id);
    INSERT INTO orders (note, updated_at) SELECT 'o' || i, now() - interval '1 day'
      FROM generate_series(1, 100) i;";

#[tokio::test]
async fn insert_and_update_on_a_replica_loads_an_update_held_open_across_runs() {
    let w = World::with_replica_source().await;
    w.source().await.batch_execute(ORDERS).await.unwrap();
    w.replayed().await;
    let job = w.apply("replica_held", "  - source: public.orders\n").await;
    setup_job(&w, &job).await;
    assert_eq!(run(&w, &job).await.rows, 100);
    // Stamped with its start time (now()), partly inside a savepoint.
    let held = w.source().await;
    held.batch_execute(
        "BEGIN;
         UPDATE orders SET note = 'held', updated_at = now() WHERE id <= 5;
         SAVEPOINT s;
         UPDATE orders SET note = 'held in a savepoint', updated_at = now() WHERE id BETWEEN 6 AND 10;
         RELEASE SAVEPOINT s;",
    )
    .await
    .unwrap();
    let held_id = xact_id(&held).await;
    let other = w.source().await;
    // Each run loads the one new change; from the second on, the catch-up also reads
    // again what was written since the held transaction began (the standby cannot say
    // it is still in flight, only that nothing below `xmin` is).
    for (k, expected) in [(1, 0), (2, 1)].into_iter().enumerate() {
        other
            .execute(
                "UPDATE orders SET note = 'moved', updated_at = clock_timestamp() WHERE id = $1",
                &[&(50 + k as i64)],
            )
            .await
            .unwrap();
        w.replayed().await;
        let r = run(&w, &job).await;
        assert_eq!((r.rows, r.late_rows), expected, "run {k}: {r:?}");
        standby_snapshot_with(&w, "replica_held", "orders", held_id).await;
    }
    held.batch_execute("COMMIT").await.unwrap();
    w.replayed().await;
    let r = run(&w, &job).await;
    // Its 10 rows, and the 2 written behind the mark since it began.
    assert_eq!((r.rows, r.late_rows, r.caught_up), (12, 12, true), "{r:?}");
    assert_same(
        &w,
        "SELECT id, note, updated_at FROM orders ORDER BY id",
        "SELECT id, note, updated_at FROM analytics.orders ORDER BY id",
    )
    .await;
    // Nothing is in flight on the standby any more: nothing is read again.
    assert_eq!(run(&w, &job).await.rows, 0);
}
