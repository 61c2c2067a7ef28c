//! `run` end to end: source PostgreSQL → S3 (moto) → the Redshift emulator, each mode,
//! initial and incremental loads, compared value by value.

use redshift_loader::config::{CopyMode, Job, TableRef};
use redshift_loader::setup;
use redshift_loader::sync::{self, Mark, Options, Outcome, Report, Timing, MARK};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::support::World;

pub const TIMING: Timing = Timing {
    catchup_window_seconds: 86400,
    lookback_seconds: 0,
    lease_seconds: 600,
    table_concurrency: 4,
};

pub async fn setup_job(w: &World, job: &Job) {
    let outcomes = setup::run(&w.app, job, &setup::Options::default(), chrono::Utc::now())
        .await
        .unwrap();
    for o in outcomes {
        o.result
            .unwrap_or_else(|e| panic!("setup {}: {e}", o.table));
    }
}

pub async fn run(w: &World, job: &Job) -> Vec<Outcome> {
    let options = Options {
        run_id: format!("test-{}", uuid::Uuid::new_v4().simple()),
        force: true,
        ..Options::default()
    };
    sync::run(&w.app, job, &options, TIMING).await.unwrap()
}

pub fn ok(o: &Outcome) -> &Report {
    match &o.result {
        Ok(r) => r,
        Err(e) => panic!("run of {} failed: {e}", o.table),
    }
}

/// Every row as text, in a UTC session: the canonical form both sides must agree on.
pub async fn rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client.batch_execute("SET TimeZone = 'UTC'").await.unwrap();
    client
        .simple_query(sql)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

pub async fn assert_same(w: &World, source_sql: &str, warehouse_sql: &str) {
    let src = rows(&w.source().await, source_sql).await;
    let dst = rows(&w.warehouse().await, warehouse_sql).await;
    assert!(!src.is_empty());
    assert_eq!(src.len(), dst.len(), "row counts differ");
    for (a, b) in src.iter().zip(&dst) {
        assert_eq!(a, b);
    }
}

#[tokio::test]
async fn insert_and_update_in_chunks_of_7_with_500_equal_updated_at() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE orders (id bigserial PRIMARY KEY, note text, total numeric(12,2), meta jsonb,
                                  updated_at timestamptz NOT NULL);
             CREATE INDEX ON orders (updated_at);
             INSERT INTO orders (note, total, meta, updated_at)
               SELECT 'order ' || i, i * 1.25, jsonb_build_object('i', i), '2024-01-01 00:00:00+00'
               FROM generate_series(1, 500) i;
             INSERT INTO orders (note, total, meta, updated_at)
               SELECT NULL, NULL, NULL, '2024-01-01 00:00:00+00'::timestamptz + i * interval '1 second'
               FROM generate_series(1, 20) i;",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            "iau",
            "  - source: public.orders\n    import_chunk_size: 7\n",
        )
        .await;
    setup_job(&w, &job).await;
    let outcomes = run(&w, &job).await;
    let report = ok(&outcomes[0]);
    assert_eq!(report.rows, 520);
    assert!(report.caught_up);
    assert_eq!(report.chunks, 75, "520 rows in chunks of 7");
    assert_eq!(report.lag_seconds, Some(0), "caught up");
    let compare = (
        "SELECT id, note, total, meta, updated_at FROM orders ORDER BY id",
        "SELECT id, note, total, meta, updated_at FROM analytics.orders ORDER BY id",
    );
    assert_same(&w, compare.0, compare.1).await;
    let mark: Mark = serde_json::from_value(
        w.app
            .store
            .get_table_document("iau", &TableRef::new("public", "orders"), MARK)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(mark.mode, CopyMode::InsertAndUpdate);
    assert_eq!(mark.keys, vec!["updated_at", "id"]);
    assert_eq!(mark.cursor, vec!["2024-01-01 00:00:20+00", "520"]);

    // Changes and new rows, then a second run: the warehouse follows, nothing doubles.
    w.source()
        .await
        .batch_execute(
            "UPDATE orders SET note = 'changed', updated_at = '2024-01-01 00:00:30+00' WHERE id % 50 = 0;
             INSERT INTO orders (note, updated_at) SELECT 'new', '2024-01-01 00:00:30+00' FROM generate_series(1, 5);",
        )
        .await
        .unwrap();
    let outcomes = run(&w, &job).await;
    assert!(ok(&outcomes[0]).caught_up);
    assert_same(&w, compare.0, compare.1).await;
}

#[tokio::test]
async fn insert_only_loads_new_rows_after_its_mark() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE events (id serial PRIMARY KEY, kind text, at timestamptz);
             INSERT INTO events (kind, at) SELECT 'k' || i, '2024-01-01'::timestamptz + i * interval '1 minute'
               FROM generate_series(1, 50) i;",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            "ins",
            "  - source: public.events\n    import_chunk_size: 7\n",
        )
        .await;
    setup_job(&w, &job).await;
    assert_eq!(ok(&run(&w, &job).await[0]).rows, 50);
    w.source()
        .await
        .batch_execute("INSERT INTO events (kind) SELECT 'later' FROM generate_series(1, 10)")
        .await
        .unwrap();
    let second = run(&w, &job).await;
    assert_eq!(ok(&second[0]).rows, 10, "only the new rows are read");
    assert_same(
        &w,
        "SELECT id, kind, at FROM events ORDER BY id",
        "SELECT id, kind, at FROM analytics.events ORDER BY id",
    )
    .await;
}

#[tokio::test]
async fn full_data_sync_swaps_in_a_complete_copy_including_deletes() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE countries (code text PRIMARY KEY, name text);
             INSERT INTO countries SELECT 'c' || i, 'country ' || i FROM generate_series(1, 30) i;",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            "full",
            "  - source: public.countries\n    import_chunk_size: 7\n",
        )
        .await;
    setup_job(&w, &job).await;
    assert_eq!(ok(&run(&w, &job).await[0]).rows, 30);
    w.source()
        .await
        .batch_execute("DELETE FROM countries WHERE code < 'c2'; UPDATE countries SET name = 'renamed' WHERE code = 'c5'")
        .await
        .unwrap();
    let second = run(&w, &job).await;
    assert!(ok(&second[0]).caught_up);
    assert_same(
        &w,
        "SELECT code, name FROM countries ORDER BY code",
        "SELECT code, name FROM analytics.countries ORDER BY code",
    )
    .await;
    let leftovers = rows(
        &w.warehouse().await,
        "SELECT relname FROM pg_class WHERE relname LIKE 'countries__rsl%'",
    )
    .await;
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn a_value_redshift_rejects_names_the_column_keeps_the_mark_and_spares_other_tables() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE days (id serial PRIMARY KEY, day numeric(12,2));
             INSERT INTO days (day) VALUES (1.50), (424242.17);
             CREATE TABLE fine (id serial PRIMARY KEY, v text);
             INSERT INTO fine (v) VALUES ('a'), ('b');",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            "bad",
            "  - source: public.days\n    column_types: { day: \"DECIMAL(5,2)\" }\n  - source: public.fine\n",
        )
        .await;
    setup_job(&w, &job).await;
    let outcomes = run(&w, &job).await;
    let message = match &outcomes[0].result {
        Ok(r) => panic!("loaded {r:?}"),
        Err(e) => e.to_string(),
    };
    assert!(message.contains("column day"), "{message}");
    assert!(message.contains("Numeric data overflow"), "{message}");
    // The value is redacted (tests/load_errors.rs), its length told.
    assert!(!message.contains("424242"), "{message}");
    assert!(message.contains("(9 characters) is not shown"), "{message}");
    assert_eq!(ok(&outcomes[1]).rows, 2);
    let mark = w
        .app
        .store
        .get_table_document("bad", &TableRef::new("public", "days"), MARK)
        .await
        .unwrap();
    assert_eq!(mark, None, "the mark did not move");
    // The failure and the success are stored per table, and in the run history.
    let store = &w.app.store;
    let days = TableRef::new("public", "days");
    let error = store
        .get_table_document("bad", &days, sync::LAST_ERROR)
        .await
        .unwrap()
        .unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("Numeric data overflow"),
        "{error}"
    );
    assert!(store
        .get_table_document("bad", &days, sync::LAST_SUCCESS)
        .await
        .unwrap()
        .is_none());
    let fine = TableRef::new("public", "fine");
    let success = store
        .get_table_document("bad", &fine, sync::LAST_SUCCESS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(success["report"]["rows"], 2);
    let history = store.runs("bad", 10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert!(history
        .iter()
        .any(|r| r["ok"] == false && r["table"] == "public.days"));
    let stored = rows(&w.warehouse().await, "SELECT count(*) FROM analytics.days").await;
    assert_eq!(stored[0][0].as_deref(), Some("0"));
}

#[tokio::test]
async fn every_supported_type_round_trips_exactly() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            r#"CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
               CREATE DOMAIN short_text AS varchar(10);
               CREATE TABLE every (
                 id bigint PRIMARY KEY, s smallint, i integer, b bigint,
                 n12 numeric(12,2), n38 numeric(38,0), nwide numeric(50,5), r real, d double precision,
                 flag boolean, c char(3), vc varchar(20), t text,
                 dt date, tm time, tmtz timetz, ts timestamp, tstz timestamptz,
                 iv interval, u uuid, j json, jb jsonb, arr integer[], tarr text[], bin bytea,
                 ip inet, net cidr, mac macaddr, cash money, m mood, dom short_text);
               SET TimeZone = 'Asia/Kolkata';
               INSERT INTO every VALUES
                 (1, -32768, -2147483648, -9223372036854775808, -9999999999.99,
                  99999999999999999999999999999999999999, 123456789012345678901234567890123.12345,
                  1.17549435e-38, 2.2250738585072014e-308, true, 'ab', 'ééééééééééééééééééé😀', 'plain',
                  '0001-01-01', '00:00:00', '23:59:59.999999+14', '1970-01-01 00:00:00.000001',
                  '2024-02-29 23:59:59.999999', '1 year 2 mons 3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
                  '{"b": [1, 2.5, "x"], "a": null}', '{"nested": {"k": "v\"q"}}', '{1,NULL,3}', '{"a,b","c\"d",NULL}',
                  '\x00ff10', '192.168.0.1', '10.0.0.0/8', '08:00:2b:01:02:03', '-12.34', 'happy', 'short'),
                 (2, 32767, 2147483647, 9223372036854775807, 0, 0, 0, '3.4028235e38'::real, 1e308,
                  false, '', '', '', '9999-12-31', '24:00:00', '00:00:00-12', '4713-01-01 00:00:00 BC'::timestamp + interval '5000 years',
                  '2000-01-01 00:00:00+00', '-5 days -00:00:01', '00000000-0000-0000-0000-000000000000',
                  '[]', '{}', '{}', '{}', '\x', '::1', '::/0', '00:00:00:00:00:00', '0', 'sad', ''),
                 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, E'\\N',
                  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
                 (4, 1, 1, 1, 0.01, 1, 0.00001, -0.0, -1.5, NULL, 'x"y', E'line\nbreak', E'tab\tand\\backslash, "quotes" and \r\n crlf',
                  '2024-06-15', '12:34:56.789', '12:34:56+05:30', '2024-06-15 12:34:56', '2024-06-15 12:34:56.5',
                  '0', NULL, 'null', '"just a string"', '{{1,2},{3,4}}', '{""}', '\x5c4e', '2001:db8::1', '2001:db8::/32', NULL, '0.01', 'ok', 'dom');"#,
        )
        .await
        .unwrap();
    let job = w.apply("every", "  - source: public.every\n").await;
    setup_job(&w, &job).await;
    let report = ok(&run(&w, &job).await[0]).clone();
    assert_eq!(report.rows, 4);
    // The empty bytea of row 2 is the one value Redshift cannot hold as it is: an
    // empty CSV field is NULL to every type but text. It is counted.
    assert_eq!((report.values_truncated, report.values_nulled), (0, 1));

    // Compare through each value's text form, in identical sessions on both sides.
    let common = "id, s, i, b, n12, n38, nwide, flag, dt, tm, tmtz, ts, tstz";
    let source_sql = format!(
        "SET extra_float_digits = 3; SELECT {common}, r, d, CASE WHEN c IS NULL THEN NULL ELSE format('%s', c) END, vc, t, CASE WHEN iv IS NULL THEN NULL ELSE format('%s', iv) END, CASE WHEN u IS NULL THEN NULL ELSE format('%s', u) END, \
         j::jsonb, jb, to_jsonb(arr), to_jsonb(tarr), NULLIF(encode(bin, 'hex'), ''), CASE WHEN ip IS NULL THEN NULL ELSE format('%s', ip) END, CASE WHEN net IS NULL THEN NULL ELSE format('%s', net) END, \
         CASE WHEN mac IS NULL THEN NULL ELSE format('%s', mac) END, cash::numeric, CASE WHEN m IS NULL THEN NULL ELSE format('%s', m) END, dom FROM every ORDER BY id"
    );
    let warehouse_sql = format!(
        "SET extra_float_digits = 3; SELECT {common}, r, d, c, vc, t, iv, u, j, jb, arr, tarr, encode(bin, 'hex'), \
         ip, net, mac, cash, m, dom FROM analytics.every ORDER BY id"
    );
    assert_same(&w, &source_sql, &warehouse_sql).await;
    // `verify` finds it equal, content included, in every type it compares.
    let verdicts = redshift_loader::verify::check::verify_job(&w.app, &job, &[], 10)
        .await
        .unwrap();
    let v = verdicts[0].as_ref().unwrap();
    assert!(!v.drift() && v.pending == 0, "{v:?}");
    // All but the json column: its keys keep their written order at the source, and
    // the emulator (jsonb underneath) sorts them, which the probe finds out.
    assert_eq!(v.not_compared.len(), 1, "{:?}", v.not_compared);
    assert!(
        v.not_compared[0].starts_with("\"j\" (the cluster prints a probe value as"),
        "{:?}",
        v.not_compared
    );
}

#[tokio::test]
async fn a_table_another_run_is_loading_is_skipped_not_failed_with_the_holder_named() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE a (id serial PRIMARY KEY); INSERT INTO a DEFAULT VALUES;
             CREATE TABLE b (id serial PRIMARY KEY); INSERT INTO b DEFAULT VALUES;",
        )
        .await
        .unwrap();
    let job = w
        .apply("busy", "  - source: public.a\n  - source: public.b\n")
        .await;
    setup_job(&w, &job).await;
    let now = chrono::Utc::now();
    w.app
        .store
        .acquire_lease(
            "busy",
            &TableRef::new("public", "a"),
            "lambda-run-42",
            now,
            now + chrono::Duration::minutes(10),
        )
        .await
        .unwrap();
    let outcomes = run(&w, &job).await;
    let skipped = ok(&outcomes[0]).skipped.clone().expect("a skip");
    assert!(
        skipped.starts_with("being loaded by run lambda-run-42 (lease until "),
        "{skipped}"
    );
    assert_eq!(ok(&outcomes[1]).rows, 1);
    let loaded = rows(&w.warehouse().await, "SELECT count(*) FROM analytics.a").await;
    assert_eq!(loaded[0][0].as_deref(), Some("0"));
    // Neither a failure nor a success: only the run history has it.
    let a = TableRef::new("public", "a");
    for doc in [sync::LAST_ERROR, sync::LAST_SUCCESS, sync::LAST_RUN] {
        let stored = w
            .app
            .store
            .get_table_document("busy", &a, doc)
            .await
            .unwrap();
        assert_eq!(stored, None, "{doc}");
    }
    let history = w.app.store.runs("busy", 10).await.unwrap();
    let skip = history
        .iter()
        .find(|r| r["table"] == "public.a")
        .expect("the skip is in the history");
    assert_eq!(skip["report"]["skipped"], serde_json::json!(skipped));
}

#[tokio::test]
async fn a_row_committed_late_is_loaded_by_the_next_run() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE payments (id serial PRIMARY KEY, amount int, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
             CREATE INDEX ON payments (updated_at);",
        )
        .await
        .unwrap();
    let job = w.apply("late", "  - source: public.payments\n").await;
    setup_job(&w, &job).await;
    // A transaction stamps its row, then takes its time to commit...
    let slow = w.source().await;
    slow.batch_execute("BEGIN; INSERT INTO payments (amount) VALUES (1)")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // ...while a later row commits at once and is loaded, moving the mark past the first.
    w.source()
        .await
        .batch_execute("INSERT INTO payments (amount) VALUES (2)")
        .await
        .unwrap();
    assert_eq!(ok(&run(&w, &job).await[0]).rows, 1);
    slow.batch_execute("COMMIT").await.unwrap();
    // The next run catches up on what the first could not see, and finds it.
    run(&w, &job).await;
    assert_same(
        &w,
        "SELECT id, amount, updated_at FROM payments ORDER BY id",
        "SELECT id, amount, updated_at FROM analytics.payments ORDER BY id",
    )
    .await;
}

/// Stops the run at one step of one chunk, as a crash there would.
pub struct CrashAt {
    pub step: sync::Step,
    pub chunk: u64,
}

impl sync::Observer for CrashAt {
    fn step(&self, _: &TableRef, step: sync::Step, chunk: u64, _: u64) -> Result<(), String> {
        if step == self.step && chunk == self.chunk {
            return Err("injected crash".into());
        }
        Ok(())
    }
}

/// Runs the job forced, stopped at `step` of chunk `chunk` as a crash there would be.
async fn run_crashing(w: &World, job: &Job, step: sync::Step, chunk: u64) -> Vec<Outcome> {
    let options = Options {
        run_id: format!("crashing-{step:?}"),
        force: true,
        observer: Some(std::sync::Arc::new(CrashAt { step, chunk })),
        ..Options::default()
    };
    sync::run(&w.app, job, &options, TIMING).await.unwrap()
}

#[tokio::test]
async fn a_crash_at_any_step_loses_and_duplicates_nothing() {
    use sync::Step::*;
    for step in [Extracted, Staged, Copied, Committed, MarkMoved] {
        let w = World::with_own_source().await;
        w.source()
            .await
            .batch_execute(
                "CREATE TABLE items (id serial PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
                 CREATE INDEX ON items (updated_at);
                 INSERT INTO items (v, updated_at) SELECT 'v' || i, '2024-01-01'::timestamptz + (i / 4) * interval '1 second'
                   FROM generate_series(1, 30) i;",
            )
            .await
            .unwrap();
        let job = w
            .apply(
                "crash",
                "  - source: public.items\n    import_chunk_size: 7\n",
            )
            .await;
        setup_job(&w, &job).await;
        let outcomes = run_crashing(&w, &job, step, 2).await;
        let message = outcomes[0].result.as_ref().unwrap_err().to_string();
        assert!(message.contains("injected crash"), "{step:?}: {message}");
        // Changes arrive meanwhile; then a normal run catches up.
        w.source()
            .await
            .batch_execute("UPDATE items SET v = 'changed' WHERE id IN (3, 9, 30)")
            .await
            .unwrap();
        assert!(ok(&run(&w, &job).await[0]).caught_up, "{step:?}");
        assert_same(
            &w,
            "SELECT id, v, updated_at FROM items ORDER BY id",
            "SELECT id, v, updated_at FROM analytics.items ORDER BY id",
        )
        .await;
    }
}

/// A chunk is appended (no DELETE) only when the target provably holds none of its keys,
/// asked inside the chunk's transaction: a chunk re-read after a crash between COMMIT
/// and the mark, a row committed late behind the mark and an updated row all merge.
#[tokio::test]
async fn chunks_append_only_when_the_target_cannot_hold_their_keys() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE items (id serial PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
             CREATE INDEX ON items (updated_at);
             INSERT INTO items (v, updated_at) SELECT 'v' || i, '2024-01-01'::timestamptz + i * interval '1 second'
               FROM generate_series(1, 30) i;",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            "append",
            "  - source: public.items\n    import_chunk_size: 7\n",
        )
        .await;
    setup_job(&w, &job).await;
    // Chunks 1 and 2 commit in Redshift; the mark stays after chunk 1.
    let outcomes = run_crashing(&w, &job, sync::Step::Committed, 2).await;
    assert!(outcomes[0].result.is_err());
    // A writer holds row 31 uncommitted while others commit 32 to 41.
    let held = w.source().await;
    held.batch_execute("BEGIN; INSERT INTO items (v) VALUES ('held')")
        .await
        .unwrap();
    w.source()
        .await
        .batch_execute("INSERT INTO items (v) SELECT 'later' FROM generate_series(1, 10)")
        .await
        .unwrap();
    let report = ok(&run(&w, &job).await[0]).clone();
    // Chunk 2 again (its keys are in the target: merged), then 15-21, 22-28, 29-30 and
    // 32-36, 37-41 (past everything: appended).
    assert_eq!(report.rows, 7 + 7 + 7 + 7 + 5, "{report:?}");
    assert_eq!(
        (report.chunks, report.chunks_appended),
        (5, 4),
        "{report:?}"
    );
    held.batch_execute("COMMIT").await.unwrap();
    w.source()
        .await
        .batch_execute(
            "UPDATE items SET v = 'changed', updated_at = clock_timestamp() WHERE id = 3",
        )
        .await
        .unwrap();
    let report = ok(&run(&w, &job).await[0]).clone();
    // Row 31 committed late, and so did 32-41 for the snapshot that could not see 31
    // (the catch-up reads them again), row 3 updated: every key is in the target.
    assert_eq!((report.rows, report.late_rows), (12, 11), "{report:?}");
    assert_eq!(report.chunks_appended, 0, "{report:?}");
    assert_same(
        &w,
        "SELECT id, v, updated_at FROM items ORDER BY id",
        "SELECT id, v, updated_at FROM analytics.items ORDER BY id",
    )
    .await;
}

#[tokio::test]
async fn a_crash_during_the_swap_leaves_the_old_copy_whole() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE plans (code text PRIMARY KEY, price int);
             INSERT INTO plans SELECT 'p' || i, i FROM generate_series(1, 10) i;",
        )
        .await
        .unwrap();
    let job = w.apply("swap", "  - source: public.plans\n").await;
    setup_job(&w, &job).await;
    ok(&run(&w, &job).await[0]);
    w.source()
        .await
        .batch_execute("UPDATE plans SET price = price * 100; DELETE FROM plans WHERE code = 'p1'")
        .await
        .unwrap();
    let outcomes = run_crashing(&w, &job, sync::Step::Swapping, 1).await;
    assert!(outcomes[0].result.is_err());
    let old = rows(
        &w.warehouse().await,
        "SELECT count(*), sum(price) FROM analytics.plans",
    )
    .await;
    assert_eq!(
        old[0],
        vec![Some("10".to_string()), Some("55".to_string())],
        "the old copy, whole"
    );
    ok(&run(&w, &job).await[0]);
    assert_same(
        &w,
        "SELECT code, price FROM plans ORDER BY code",
        "SELECT code, price FROM analytics.plans ORDER BY code",
    )
    .await;
}

#[tokio::test]
async fn a_million_rows_load_with_flat_memory() {
    const ROWS: i64 = 1_000_000;
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(&format!(
            "CREATE TABLE big (id bigint PRIMARY KEY, name text, amount numeric(12,2), doc jsonb,
                               updated_at timestamptz NOT NULL);
             CREATE INDEX ON big (updated_at);
             INSERT INTO big SELECT i, 'customer ' || i || ' \"quoted\", with commas', i % 100000 / 100.0,
               jsonb_build_object('i', i, 'tags', jsonb_build_array('a', 'b')),
               '2024-01-01'::timestamptz + (i / 10) * interval '1 second'
             FROM generate_series(1, {ROWS}) i;"
        ))
        .await
        .unwrap();
    let job = w.apply("big", "  - source: public.big\n").await;
    setup_job(&w, &job).await;

    // The CLI, as an operator runs it; its peak RSS is its own (testkit::measure).
    let started = std::time::Instant::now();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_redshift-loader"))
        .args(["run", "big"])
        .env_clear()
        .envs(w.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("IMPORT_CHUNK_SIZE", "250000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let run = testkit::measure::wait(child, started).await.unwrap();
    assert!(run.success, "run failed: {}", run.status);
    let peak_mib = run.peak_rss_mib;
    eprintln!(
        "run: {ROWS} rows in {:.1} s ({:.0} rows/s), peak RSS {peak_mib:.1} MiB",
        run.seconds,
        ROWS as f64 / run.seconds
    );
    let counts = rows(
        &w.warehouse().await,
        "SELECT count(*), sum(id), sum(amount) FROM analytics.big",
    )
    .await;
    let source = rows(
        &w.source().await,
        "SELECT count(*), sum(id), sum(amount) FROM big",
    )
    .await;
    assert_eq!(counts, source);
    assert!(peak_mib < 100.0, "peak RSS {peak_mib:.1} MiB");
}

#[tokio::test]
async fn duplicate_keys_at_the_source_become_one_row_the_newest() {
    let w = World::with_own_source().await;
    // A key set in the job that no unique index backs: the source has duplicates.
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE readings (sensor int NOT NULL, value int, updated_at timestamptz NOT NULL);
             CREATE INDEX ON readings (updated_at);
             INSERT INTO readings VALUES (1, 10, '2024-01-01 00:00:01'), (1, 11, '2024-01-01 00:00:02'),
               (2, 20, '2024-01-01 00:00:01'), (1, 12, '2024-01-01 00:00:03'), (3, 30, '2024-01-01 00:00:01');",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            "dups",
            "  - source: public.readings\n    primary_key: sensor\n    updated_key: updated_at\n    copy_mode: INSERT_AND_UPDATE\n",
        )
        .await;
    setup_job(&w, &job).await;
    ok(&run(&w, &job).await[0]);
    let stored = rows(
        &w.warehouse().await,
        "SELECT sensor, value FROM analytics.readings ORDER BY sensor",
    )
    .await;
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        stored,
        vec![
            vec![s("1"), s("12")],
            vec![s("2"), s("20")],
            vec![s("3"), s("30")]
        ]
    );
}

#[tokio::test]
async fn cli_run_goes_on_past_the_row_limit_until_caught_up() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE logs (id serial PRIMARY KEY, line text);
             INSERT INTO logs (line) SELECT 'line ' || i FROM generate_series(1, 25) i;",
        )
        .await
        .unwrap();
    let job = w.apply("limits", "  - source: public.logs\n").await;
    setup_job(&w, &job).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_redshift-loader"))
        .args(["--json", "run", "limits"])
        .env_clear()
        .envs(w.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("IMPORT_ROW_LIMIT", "10")
        .env("IMPORT_CHUNK_SIZE", "4")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let table = &report["tables"][0]["report"];
    assert_eq!(table["rows"], 25);
    assert_eq!(table["caught_up"], true);
    assert_eq!(
        table["chunks"], 8,
        "runs of 10 rows: 4+4+2, 4+4+2, then 4+1"
    );
    let stored = rows(&w.warehouse().await, "SELECT count(*) FROM analytics.logs").await;
    assert_eq!(stored[0][0].as_deref(), Some("25"));
}

#[tokio::test]
async fn a_table_is_not_run_again_before_its_frequency_unless_forced() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute("CREATE TABLE t (id serial PRIMARY KEY); INSERT INTO t DEFAULT VALUES;")
        .await
        .unwrap();
    let job = w.apply("guard", "  - source: public.t\n").await;
    setup_job(&w, &job).await;
    let guarded = |run_id: &str| Options {
        run_id: run_id.into(),
        ..Options::default()
    };
    let first = sync::run(&w.app, &job, &guarded("r1"), TIMING)
        .await
        .unwrap();
    assert_eq!(ok(&first[0]).rows, 1);
    w.source()
        .await
        .batch_execute("INSERT INTO t DEFAULT VALUES")
        .await
        .unwrap();
    let second = sync::run(&w.app, &job, &guarded("r2"), TIMING)
        .await
        .unwrap();
    let skipped = ok(&second[0]).skipped.clone().expect("skipped");
    assert!(skipped.contains("frequency 300 s"), "{skipped}");
    assert_eq!(ok(&second[0]).rows, 0);
    let forced = sync::run(
        &w.app,
        &job,
        &Options {
            force: true,
            ..guarded("r3")
        },
        TIMING,
    )
    .await
    .unwrap();
    assert_eq!(ok(&forced[0]).rows, 1);
}

#[tokio::test]
async fn a_table_stopped_by_its_row_limit_reports_its_lag() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE m (id serial PRIMARY KEY, updated_at timestamptz NOT NULL);
             CREATE INDEX ON m (updated_at);
             INSERT INTO m (updated_at) SELECT now() - interval '2 hours' + i * interval '1 minute'
               FROM generate_series(1, 30) i;",
        )
        .await
        .unwrap();
    let job = w
        .apply("lag", "  - source: public.m\n    import_row_limit: 10\n")
        .await;
    setup_job(&w, &job).await;
    let report = ok(&run(&w, &job).await[0]).clone();
    assert!(!report.caught_up);
    assert_eq!(report.rows, 10);
    // The 10th row is 110 minutes old.
    let lag = report
        .lag_seconds
        .expect("a timestamp cursor tells its lag");
    assert!((6500..6700).contains(&lag), "{lag}");
}
