//! Change capture on a busy source: writers that commit out of order, transactions held
//! open across runs (with savepoints), app-set timestamps, keys that are not timestamps.
//! Each test drives several source sessions at once and compares the warehouse with the
//! source row by row.

use redshift_loader::config::{Job, TableRef};
use redshift_loader::sync::{self, Mark, Options, Report, MARK};
use tokio_postgres::Client;

use crate::support::World;
use crate::sync::{assert_same, ok, rows, setup_job, TIMING};

async fn run_as(w: &World, job: &Job, continuation: bool) -> Report {
    let options = Options {
        run_id: format!("test-{}", uuid::Uuid::new_v4().simple()),
        force: true,
        continuation,
        ..Options::default()
    };
    let outcomes = sync::run(&w.app, job, &options, TIMING).await.unwrap();
    ok(&outcomes[0]).clone()
}

async fn run(w: &World, job: &Job) -> Report {
    run_as(w, job, false).await
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

async fn sessions(w: &World, n: usize) -> Vec<Client> {
    let mut all = Vec::new();
    for _ in 0..n {
        all.push(w.source().await);
    }
    all
}

#[tokio::test]
async fn insert_only_loads_an_id_that_commits_after_a_higher_one() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute("CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL)")
        .await
        .unwrap();
    let job = w
        .apply(
            "late_ids",
            "  - source: public.events\n    copy_mode: INSERT_ONLY\n",
        )
        .await;
    setup_job(&w, &job).await;
    let s = sessions(&w, 2).await;
    // A takes id 1, B takes id 2 and commits first.
    s[0].batch_execute("BEGIN; INSERT INTO events (kind) VALUES ('a')")
        .await
        .unwrap();
    s[1].batch_execute("INSERT INTO events (kind) VALUES ('b')")
        .await
        .unwrap();
    let first = run(&w, &job).await;
    assert_eq!(first.rows, 1);
    let m = mark(&w, "late_ids", "events").await;
    assert_eq!(m.cursor, vec!["2"]);
    let snapshot = m.snapshot.expect("the mark keeps its read's snapshot");
    assert!(
        !snapshot.xip.is_empty(),
        "A was in flight when the chunk was read: {snapshot}"
    );
    s[0].batch_execute("COMMIT").await.unwrap();
    let second = run(&w, &job).await;
    // Id 1, and id 2 once more: B wrote it after A began, and PostgreSQL cannot tell
    // B's rows from rows of a savepoint of A's.
    assert_eq!((second.rows, second.late_rows), (2, 2), "{second:?}");
    assert_same(
        &w,
        "SELECT id, kind FROM events ORDER BY id",
        "SELECT id, kind FROM analytics.events ORDER BY id",
    )
    .await;
    // Nothing is late any more: the next run reads nothing again.
    assert_eq!(run(&w, &job).await.rows, 0);
}

#[tokio::test]
async fn five_sessions_inserting_and_committing_out_of_order_lose_nothing() {
    let w = World::new().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            "busy_ids",
            "  - source: public.events\n    copy_mode: INSERT_ONLY\n    import_chunk_size: 13\n",
        )
        .await;
    setup_job(&w, &job).await;
    let s = sessions(&w, 5).await;
    // A sixth session holds one transaction open across every run, inserting each round.
    let long = w.source().await;
    long.batch_execute("BEGIN").await.unwrap();
    let writer = w.source().await;
    let mut late_seen = 0;
    for round in 0..4 {
        for session in &s {
            session.batch_execute("BEGIN").await.unwrap();
        }
        long.execute(
            "INSERT INTO events (kind) VALUES ($1)",
            &[&format!("long {round}")],
        )
        .await
        .unwrap();
        // The five take ids in turns, so every transaction holds ids all over the range.
        for i in 0..20 {
            for (n, session) in s.iter().enumerate() {
                session
                    .execute(
                        "INSERT INTO events (kind) VALUES ($1)",
                        &[&format!("round {round} session {n} row {i}")],
                    )
                    .await
                    .unwrap();
            }
        }
        // They commit in an order unlike the one they took ids in, with runs between the
        // commits, while a sixth writer commits single rows at the same time.
        let order: Vec<usize> = (0..5).map(|k| (k * 3 + round) % 5).collect();
        let commits_and_runs = async {
            let mut late = 0;
            for (j, n) in order.iter().enumerate() {
                s[*n].batch_execute("COMMIT").await.unwrap();
                if j % 2 == 0 {
                    late += run(&w, &job).await.late_rows;
                }
            }
            late
        };
        let single_rows = async {
            for k in 0..10 {
                writer
                    .execute(
                        "INSERT INTO events (kind) VALUES ($1)",
                        &[&format!("round {round} single {k}")],
                    )
                    .await
                    .unwrap();
            }
        };
        let (late, ()) = tokio::join!(commits_and_runs, single_rows);
        late_seen += late;
    }
    long.batch_execute("COMMIT").await.unwrap();
    let last = run(&w, &job).await;
    assert!(last.caught_up);
    assert!(last.late_rows >= 4, "the long transaction's rows: {last:?}");
    assert!(late_seen > 0, "some rows committed behind the mark");
    let count = rows(&w.source().await, "SELECT count(*) FROM events").await;
    assert_eq!(count[0][0].as_deref(), Some("444"));
    assert_same(
        &w,
        "SELECT id, kind, at FROM events ORDER BY id",
        "SELECT id, kind, at FROM analytics.events ORDER BY id",
    )
    .await;
}

const ORDERS: &str = "CREATE TABLE orders (id bigserial PRIMARY KEY, note text NOT NULL,
                                         updated_at timestamptz NOT NULL DEFAULT now());
    CREATE INDEX ON orders (updated_at, id);
    INSERT INTO orders (note, updated_at) SELECT 'o' || i, now() - interval '1 day'
      FROM generate_series(1, 100) i;";

#[tokio::test]
async fn an_update_held_open_across_three_runs_is_loaded_when_it_commits() {
    let w = World::with_own_source().await;
    w.source().await.batch_execute(ORDERS).await.unwrap();
    let job = w.apply("held", "  - source: public.orders\n").await;
    setup_job(&w, &job).await;
    assert_eq!(run(&w, &job).await.rows, 100);
    // Stamped with its start time (now()), partly inside a savepoint (a subtransaction,
    // whose id PostgreSQL's snapshots do not list).
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
    let other = w.source().await;
    for k in 0..3 {
        other
            .execute(
                "UPDATE orders SET note = 'moved', updated_at = clock_timestamp() WHERE id = $1",
                &[&(50i64 + k)],
            )
            .await
            .unwrap();
        let r = run(&w, &job).await;
        // One new change a run, nothing read again while the held one is open.
        assert_eq!((r.rows, r.late_rows), (1, 0), "run {k}: {r:?}");
    }
    // Older than a time window of a second or two would reach (the test's sleep lets
    // the transaction age; it synchronises nothing).
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    held.batch_execute("COMMIT").await.unwrap();
    let r = run(&w, &job).await;
    // Its 10 rows, and once the 3 written behind the mark while it was open: they were
    // written after it began, and a savepoint of it could have written them as far as
    // PostgreSQL tells.
    assert_eq!((r.rows, r.late_rows), (13, 13), "{r:?}");
    assert_same(
        &w,
        "SELECT id, note, updated_at FROM orders ORDER BY id",
        "SELECT id, note, updated_at FROM analytics.orders ORDER BY id",
    )
    .await;
    // Nothing is in flight any more: nothing is read again.
    assert_eq!(run(&w, &job).await.rows, 0);
}

#[tokio::test]
async fn an_app_set_updated_at_an_hour_in_the_past_is_loaded_when_it_commits() {
    let w = World::with_own_source().await;
    w.source().await.batch_execute(ORDERS).await.unwrap();
    let job = w.apply("backdated", "  - source: public.orders\n").await;
    setup_job(&w, &job).await;
    assert_eq!(run(&w, &job).await.rows, 100);
    w.source()
        .await
        .batch_execute(
            "UPDATE orders SET note = 'now', updated_at = clock_timestamp() WHERE id = 60",
        )
        .await
        .unwrap();
    let held = w.source().await;
    held.batch_execute(
        "BEGIN; UPDATE orders SET note = 'backdated', updated_at = now() - interval '1 hour' WHERE id IN (20, 21)",
    )
    .await
    .unwrap();
    assert_eq!(run(&w, &job).await.rows, 1);
    held.batch_execute("COMMIT").await.unwrap();
    let r = run(&w, &job).await;
    assert_eq!((r.rows, r.late_rows), (2, 2), "{r:?}");
    assert_same(
        &w,
        "SELECT id, note, updated_at FROM orders ORDER BY id",
        "SELECT id, note, updated_at FROM analytics.orders ORDER BY id",
    )
    .await;
}

#[tokio::test]
async fn a_date_updated_key_misses_no_same_day_update() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE visits (id bigserial PRIMARY KEY, note text NOT NULL, day date NOT NULL);
             CREATE INDEX ON visits (day, id);
             INSERT INTO visits (note, day) SELECT 'v' || i, current_date FROM generate_series(1, 50) i;",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            "dates",
            "  - source: public.visits\n    copy_mode: INSERT_AND_UPDATE\n    updated_key: day\n",
        )
        .await;
    setup_job(&w, &job).await;
    assert_eq!(run(&w, &job).await.rows, 50);
    // Same day, smaller primary key than the mark's (current_date, 50).
    w.source()
        .await
        .batch_execute("UPDATE visits SET note = 'changed', day = current_date WHERE id = 10")
        .await
        .unwrap();
    let r = run(&w, &job).await;
    assert_eq!((r.rows, r.late_rows), (1, 1), "{r:?}");
    assert_same(
        &w,
        "SELECT id, note, day FROM visits ORDER BY id",
        "SELECT id, note, day FROM analytics.visits ORDER BY id",
    )
    .await;
}

#[tokio::test]
async fn an_integer_updated_key_taken_first_and_committed_last_is_loaded() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE SEQUENCE versions;
             CREATE TABLE docs (id bigserial PRIMARY KEY, body text NOT NULL,
                                version bigint NOT NULL DEFAULT nextval('versions'));
             CREATE INDEX ON docs (version, id);
             INSERT INTO docs (body) SELECT 'd' || i FROM generate_series(1, 20) i;",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            "versions",
            "  - source: public.docs\n    copy_mode: INSERT_AND_UPDATE\n    updated_key: version\n",
        )
        .await;
    setup_job(&w, &job).await;
    assert_eq!(run(&w, &job).await.rows, 20);
    let s = sessions(&w, 2).await;
    // The first session takes its version, the second takes the next one and commits,
    // then the first writes with its (smaller) version.
    s[0].batch_execute("BEGIN").await.unwrap();
    let taken: i64 = s[0]
        .query_one("SELECT nextval('versions')", &[])
        .await
        .unwrap()
        .get(0);
    s[1].batch_execute(
        "UPDATE docs SET body = 'second', version = nextval('versions') WHERE id = 4",
    )
    .await
    .unwrap();
    s[0].execute(
        "UPDATE docs SET body = 'first', version = $1 WHERE id = 3",
        &[&taken],
    )
    .await
    .unwrap();
    assert_eq!(run(&w, &job).await.rows, 1);
    s[0].batch_execute("COMMIT").await.unwrap();
    let r = run(&w, &job).await;
    assert_eq!((r.rows, r.late_rows), (1, 1), "{r:?}");
    assert_same(
        &w,
        "SELECT id, body, version FROM docs ORDER BY id",
        "SELECT id, body, version FROM analytics.docs ORDER BY id",
    )
    .await;
}

#[tokio::test]
async fn a_domain_over_timestamptz_updated_key_catches_a_late_commit() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE DOMAIN stamp AS timestamptz;
             CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL,
                                 changed stamp NOT NULL DEFAULT now());
             CREATE INDEX ON notes (changed, id);
             INSERT INTO notes (body, changed) SELECT 'n' || i, now() - interval '1 day'
               FROM generate_series(1, 20) i;",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            "domains",
            "  - source: public.notes\n    copy_mode: INSERT_AND_UPDATE\n    updated_key: changed\n",
        )
        .await;
    setup_job(&w, &job).await;
    assert_eq!(run(&w, &job).await.rows, 20);
    // The held transaction starts (its now() is fixed), a quick one commits a later
    // time, then the held one writes its earlier time.
    let held = w.source().await;
    held.batch_execute("BEGIN; SELECT now()").await.unwrap();
    w.source()
        .await
        .batch_execute("UPDATE notes SET body = 'quick', changed = clock_timestamp() WHERE id = 7")
        .await
        .unwrap();
    held.batch_execute("UPDATE notes SET body = 'held', changed = now() WHERE id = 2")
        .await
        .unwrap();
    assert_eq!(run(&w, &job).await.rows, 1);
    held.batch_execute("COMMIT").await.unwrap();
    let r = run(&w, &job).await;
    assert_eq!((r.rows, r.late_rows), (1, 1), "{r:?}");
    assert_same(
        &w,
        "SELECT id, body, changed FROM notes ORDER BY id",
        "SELECT id, body, changed FROM analytics.notes ORDER BY id",
    )
    .await;
}

#[tokio::test]
async fn the_rows_re_read_are_the_late_ones_not_a_window() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE big (id bigserial PRIMARY KEY, v int NOT NULL, updated_at timestamptz NOT NULL);
             CREATE INDEX ON big (updated_at, id);
             INSERT INTO big (v, updated_at)
               SELECT i, CASE WHEN i % 5 = 0 THEN now() - random() * interval '5 minutes'
                              ELSE now() - interval '1 day' END
               FROM generate_series(1, 100000) i;",
        )
        .await
        .unwrap();
    let job = w.apply("proportional", "  - source: public.big\n").await;
    setup_job(&w, &job).await;
    assert_eq!(run(&w, &job).await.rows, 100_000);
    // 20,000 rows changed in the last 5 minutes; now 3 more changes.
    w.source()
        .await
        .batch_execute(
            "UPDATE big SET v = -v, updated_at = clock_timestamp() WHERE id IN (7, 70, 700)",
        )
        .await
        .unwrap();
    let r = run(&w, &job).await;
    assert!(r.rows <= 10, "3 changes, {} rows loaded", r.rows);
    assert_eq!((r.rows, r.late_rows), (3, 0), "{r:?}");
    assert_same(
        &w,
        "SELECT id, v, updated_at FROM big WHERE id IN (7, 70, 700) ORDER BY id",
        "SELECT id, v, updated_at FROM analytics.big WHERE id IN (7, 70, 700) ORDER BY id",
    )
    .await;
}

#[tokio::test]
async fn a_catch_up_larger_than_the_row_limit_goes_on_in_the_next_invocation() {
    let w = World::with_own_source().await;
    w.source().await.batch_execute(ORDERS).await.unwrap();
    let job = w
        .apply(
            "long_catch_up",
            "  - source: public.orders\n    import_row_limit: 10\n    import_chunk_size: 5\n",
        )
        .await;
    setup_job(&w, &job).await;
    let mut loaded = 0;
    for _ in 0..10 {
        loaded += run_as(&w, &job, true).await.rows;
    }
    assert_eq!(loaded, 100);
    w.source()
        .await
        .batch_execute(
            "UPDATE orders SET note = 'now', updated_at = clock_timestamp() WHERE id = 90",
        )
        .await
        .unwrap();
    let held = w.source().await;
    held.batch_execute(
        "BEGIN; UPDATE orders SET note = 'migrated', updated_at = now() - interval '2 hours' WHERE id <= 25",
    )
    .await
    .unwrap();
    assert_eq!(run(&w, &job).await.rows, 1);
    held.batch_execute("COMMIT").await.unwrap();
    let first = run(&w, &job).await;
    assert_eq!((first.late_rows, first.caught_up), (10, false), "{first:?}");
    let progress = mark(&w, "long_catch_up", "orders").await;
    let catchup = progress.catchup.expect("the catch-up's progress is stored");
    assert_eq!(catchup.after.len(), 2);
    let second = run_as(&w, &job, true).await;
    assert_eq!(
        (second.late_rows, second.caught_up),
        (10, false),
        "{second:?}"
    );
    let third = run_as(&w, &job, true).await;
    assert_eq!((third.late_rows, third.caught_up), (5, true), "{third:?}");
    assert_eq!(mark(&w, "long_catch_up", "orders").await.catchup, None);
    assert_same(
        &w,
        "SELECT id, note, updated_at FROM orders ORDER BY id",
        "SELECT id, note, updated_at FROM analytics.orders ORDER BY id",
    )
    .await;
}

#[tokio::test]
async fn a_key_column_that_came_to_allow_null_stops_the_run_naming_it() {
    let w = World::new().await;
    w.source().await.batch_execute(ORDERS).await.unwrap();
    let job = w.apply("nullable", "  - source: public.orders\n").await;
    setup_job(&w, &job).await;
    w.source()
        .await
        .batch_execute("ALTER TABLE orders ALTER COLUMN updated_at DROP NOT NULL")
        .await
        .unwrap();
    let options = Options {
        run_id: "nullable-1".into(),
        force: true,
        ..Options::default()
    };
    let outcomes = sync::run(&w.app, &job, &options, TIMING).await.unwrap();
    let message = outcomes[0].result.as_ref().unwrap_err().to_string();
    assert!(
        message.contains("key column \"updated_at\" allows NULL")
            && message.contains("SET NOT NULL"),
        "{message}"
    );
}
