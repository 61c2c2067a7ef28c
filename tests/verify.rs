//! The key comparison behind `verify` and `deletes: reconcile`, on the real source and
//! the Redshift emulator: a synced table compares equal; planted drifts of each kind
//! are found with their keys, shipping a few thousand keys, not the table; `verify`
//! reports them with its exit codes, and tells rows changed after the mark apart.

use redshift_loader::config::{Format, Job};
use redshift_loader::secrets::Role;
use redshift_loader::verify::compare::{compare, Tuning};
use redshift_loader::verify::sql::{Dialect, KeyTable, Range};
use redshift_loader::verify::Db;

use crate::support::World;

fn job(w: &World) -> Job {
    Job::parse(
        &w.job_yaml(
            "keys",
            "  - source: public.pairs\n    copy_mode: INSERT_ONLY\n  - source: public.items\n    copy_mode: INSERT_ONLY\n",
        ),
        Format::Yaml,
    )
    .unwrap()
}

fn key_table(dialect: Dialect, table: &str, columns: &[&str], text: &[bool]) -> KeyTable {
    KeyTable {
        dialect,
        table: table.into(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        text: text.to_vec(),
        padded: Vec::new(),
        content: None,
    }
}

#[tokio::test]
async fn keys_on_one_side_only_are_found_at_a_cost_proportional_to_them() {
    let w = World::new().await;
    let src = w.source().await;
    src.batch_execute(
        "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 20000) g;
         CREATE TABLE pairs (region text NOT NULL, n int NOT NULL, PRIMARY KEY (region, n));
         INSERT INTO pairs SELECT r, g FROM unnest(ARRAY['a|b', 'a', 'Zed', 'zed', 'é']) r,
                                        generate_series(1, 400) g;",
    )
    .await
    .unwrap();
    let job = job(&w);
    crate::sync::setup_job(&w, &job).await;
    crate::sync::run(&w, &job).await;
    let rs = redshift_loader::connect::connect(
        redshift_loader::secrets::Role::Destination,
        &redshift_loader::secrets::parse_url(
            redshift_loader::secrets::Role::Destination,
            &w.redshift_url().into(),
            "test",
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let tuning = Tuning {
        range_keys: 2_000,
        fan_out: 8,
        leaf_keys: 100,
        batch: 16,
        stop_at: None,
    };
    let items = |dialect, table: &str| key_table(dialect, table, &["id"], &[false]);
    let source = Db {
        client: &src,
        table: items(Dialect::Postgres, "\"public\".\"items\""),
        role: Role::Source,
    };
    let redshift = Db {
        client: &rs,
        table: items(Dialect::Redshift, "\"analytics\".\"items\""),
        role: Role::Destination,
    };
    let d = compare(&source, &redshift, &Range::default(), tuning)
        .await
        .unwrap();
    assert!(
        d.only_source.is_empty() && d.only_redshift.is_empty(),
        "{d:?}"
    );
    assert_eq!(d.ranges, 10, "20,000 keys in ranges of 2,000");

    // Deleted at the source (twice), lost in Redshift, and one only Redshift holds.
    src.batch_execute("DELETE FROM items WHERE id IN (3, 15001)")
        .await
        .unwrap();
    rs.batch_execute(
        "DELETE FROM analytics.items WHERE id = 777;
         INSERT INTO analytics.items VALUES (25000, 'stray');",
    )
    .await
    .unwrap();
    let d = compare(&source, &redshift, &Range::default(), tuning)
        .await
        .unwrap();
    let keys =
        |ks: &[&str]| -> Vec<Vec<String>> { ks.iter().map(|k| vec![k.to_string()]).collect() };
    assert_eq!(d.only_source, keys(&["777"]));
    assert_eq!(d.only_redshift, keys(&["3", "15001", "25000"]));
    assert!(
        d.keys_transferred < 1_500,
        "{} keys shipped for 4 differences in 20,000",
        d.keys_transferred
    );

    // A composite text key: byte order on both sides, separators inside values.
    let pairs = |dialect, table: &str| key_table(dialect, table, &["region", "n"], &[true, false]);
    let source = Db {
        client: &src,
        table: pairs(Dialect::Postgres, "\"public\".\"pairs\""),
        role: Role::Source,
    };
    let redshift = Db {
        client: &rs,
        table: pairs(Dialect::Redshift, "\"analytics\".\"pairs\""),
        role: Role::Destination,
    };
    let small = Tuning {
        range_keys: 97,
        fan_out: 4,
        leaf_keys: 10,
        batch: 8,
        stop_at: None,
    };
    let d = compare(&source, &redshift, &Range::default(), small)
        .await
        .unwrap();
    assert!(
        d.only_source.is_empty() && d.only_redshift.is_empty(),
        "{d:?}"
    );
    src.batch_execute("DELETE FROM pairs WHERE region = 'Zed' AND n = 400")
        .await
        .unwrap();
    let d = compare(&source, &redshift, &Range::default(), small)
        .await
        .unwrap();
    assert_eq!(
        d.only_redshift,
        vec![vec!["Zed".to_string(), "400".to_string()]]
    );
    assert!(d.only_source.is_empty());
}

#[tokio::test]
async fn verify_reports_each_kind_of_drift_and_not_what_the_next_run_loads() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, note text, total numeric(12,2),
                                  paid boolean, code char(4), blob bytea, due date,
                                  updated_at timestamptz NOT NULL);
             CREATE INDEX ON orders (updated_at, id);
             INSERT INTO orders SELECT g, 'order ' || g, g * 1.25, g % 2 = 0, 'c' || (g % 10),
                                       CASE WHEN g % 3 = 0 THEN NULL ELSE int8send(g) END,
                                       '2024-01-01'::date + (g % 400),
                                       '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 minute'
                                FROM generate_series(1, 3000) g;",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            "checked",
            "  - source: public.orders\n    copy_mode: INSERT_AND_UPDATE\n    updated_key: updated_at\n",
        )
        .await;
    crate::sync::setup_job(&w, &job).await;
    crate::sync::run(&w, &job).await;
    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", "checked"];
        args.extend_from_slice(extra);
        w.cli(&args)
    };
    let out = verify(&[]);
    let (stdout, stderr) = crate::support::text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("equal"), "{stdout}");

    // A row lost in Redshift, a row changed in Redshift, a row deleted at the source;
    // and at the source, a row updated and one inserted after the mark (pending).
    w.warehouse()
        .await
        .batch_execute(
            "DELETE FROM analytics.orders WHERE id = 5;
             UPDATE analytics.orders SET total = 99.99 WHERE id = 10;
             INSERT INTO analytics.orders SELECT * FROM analytics.orders WHERE id = 15;",
        )
        .await
        .unwrap();
    w.source()
        .await
        .batch_execute(
            "DELETE FROM orders WHERE id = 20;
             UPDATE orders SET note = 'changed', updated_at = now() WHERE id = 30;
             INSERT INTO orders (id, note, updated_at) VALUES (5000, 'new', now());",
        )
        .await
        .unwrap();
    let out = verify(&[]);
    let (stdout, stderr) = crate::support::text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert!(stdout.contains("DRIFT"), "{stdout}");
    for key in ["id=5", "id=10", "id=15", "id=20"] {
        assert!(stdout.contains(key), "{key} missing from {stdout}");
    }
    let out = verify(&["--json"]);
    let (stdout, _) = crate::support::text(&out);
    assert_eq!(out.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let v = &json["tables"][0]["verdict"];
    assert_eq!(v["only_source"]["count"], 1, "{v}");
    assert_eq!(v["only_source"]["examples"][0], "id=5");
    assert_eq!(v["differ"]["count"], 1, "{v}");
    assert_eq!(v["differ"]["examples"][0], "id=10");
    assert_eq!(v["only_redshift"]["count"], 1, "{v}");
    assert_eq!(v["only_redshift"]["examples"][0], "id=20");
    assert_eq!(v["duplicated"]["count"], 1, "{v}");
    assert_eq!(v["duplicated"]["examples"][0], "id=15");
    assert_eq!(v["pending"], 2, "rows 30 and 5000 are the next run's: {v}");
    assert!(v["keys_transferred"].as_u64().unwrap() < 3000, "{v}");

    // A table that cannot be compared: exit 1, the reason on stderr.
    w.warehouse()
        .await
        .batch_execute("DROP TABLE analytics.orders")
        .await
        .unwrap();
    let out = verify(&[]);
    let (_, stderr) = crate::support::text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("public.orders"), "{stderr}");
}

#[tokio::test]
async fn floats_times_and_super_compare_in_one_form_and_a_change_in_each_is_found() {
    let w = World::with_own_source().await;
    let source = w.source().await;
    // The probe text for jsonb columns is what PostgreSQL prints for it.
    let printed = source
        .query_one(
            "SELECT $1::text::jsonb::text",
            &[&redshift_loader::verify::content::PROBE_JSONB],
        )
        .await
        .unwrap()
        .get::<_, String>(0);
    assert_eq!(printed, redshift_loader::verify::content::PROBE_JSONB);
    source
        .batch_execute(
            r#"SET TimeZone = 'America/St_Johns';
               CREATE TABLE readings (id bigint PRIMARY KEY, r real, d double precision,
                                      tm time, tz timetz, doc jsonb, tags text[]);
               INSERT INTO readings SELECT g, g / 7.0, g / 3.0 + 1e-12 * g, '00:00:01.5'::time + g * interval '1 second',
                                           '23:30:00.25-03:30'::timetz + g * interval '1 minute',
                                           jsonb_build_object('n', g, 'price', g * 1.50, 'label', 'item "' || g || '" é', 'deep', jsonb_build_array(g, NULL, true)),
                                           ARRAY['a b', NULL, 'c"' || g]
                                    FROM generate_series(1, 200) g;"#,
        )
        .await
        .unwrap();
    let job = w.apply("kinds", "  - source: public.readings\n").await;
    crate::sync::setup_job(&w, &job).await;
    crate::sync::run(&w, &job).await;
    let verify = || redshift_loader::verify::check::verify_job(&w.app, &job, &[], 10);
    let verdicts = verify().await.unwrap();
    let v = verdicts[0].as_ref().unwrap();
    assert!(!v.drift(), "{v:?}");
    assert!(v.not_compared.is_empty(), "{:?}", v.not_compared);

    // One change per type, each below what a careless text form would show: a double
    // in its 12th digit, a real in its 6th, a microsecond, a JSON number, an
    // array element.
    w.warehouse()
        .await
        .batch_execute(
            r#"UPDATE analytics.readings SET d = d + 1e-10 WHERE id = 11;
               UPDATE analytics.readings SET r = r * 1.00001 WHERE id = 22;
               UPDATE analytics.readings SET tm = tm + interval '1 microsecond' WHERE id = 33;
               UPDATE analytics.readings SET tz = tz + interval '1 microsecond' WHERE id = 44;
               UPDATE analytics.readings SET doc = JSON_PARSE('{"n": 55, "deep": [55, null, true], "label": "item \"55\" é", "price": 82.51}') WHERE id = 55;
               UPDATE analytics.readings SET tags = JSON_PARSE('["a b",null,"c\"67"]') WHERE id = 66;"#,
        )
        .await
        .unwrap();
    let verdicts = verify().await.unwrap();
    let v = verdicts[0].as_ref().unwrap();
    let mut found = v.differ.examples.clone();
    found.sort();
    assert_eq!(
        found,
        ["id=11", "id=22", "id=33", "id=44", "id=55", "id=66"],
        "{v:?}"
    );
    assert_eq!(v.differ.count, 6, "{v:?}");
}

/// The table's decisions and mark, as `verify` reads them.
async fn stored(
    w: &World,
    job: &Job,
) -> (
    redshift_loader::setup::Decisions,
    Option<redshift_loader::sync::Mark>,
) {
    let table = &job.tables[0];
    let doc = |attribute| {
        w.app
            .store
            .get_table_document(&job.name, &table.source, attribute)
    };
    let decisions = serde_json::from_value(
        doc(redshift_loader::setup::DECISIONS)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let mark = doc(redshift_loader::sync::MARK)
        .await
        .unwrap()
        .map(|m| serde_json::from_value(m).unwrap());
    (decisions, mark)
}

/// `verify`'s first step on the job's table: both snapshots, Redshift's first.
async fn snapshots<'a>(
    w: &World,
    job: &'a Job,
    decisions: &redshift_loader::setup::Decisions,
) -> redshift_loader::verify::check::Prepared<'a> {
    redshift_loader::verify::check::prepare(
        &w.app.source(job).await.unwrap(),
        &w.app.destination(job).await.unwrap(),
        &job.tables[0],
        decisions,
    )
    .await
    .unwrap()
}

/// `verify`'s second step: the comparison, pending rows told apart by `mark`.
async fn compared(
    prepared: redshift_loader::verify::check::Prepared<'_>,
    decisions: &redshift_loader::setup::Decisions,
    mark: Option<&redshift_loader::sync::Mark>,
) -> redshift_loader::verify::check::Verdict {
    prepared
        .finish(
            decisions,
            redshift_loader::verify::check::Since::Mark(mark),
            10,
            None,
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_run_that_commits_while_verify_compares_is_not_drift() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE notes (id bigint PRIMARY KEY, body text, updated_at timestamptz NOT NULL);
             CREATE INDEX ON notes (updated_at, id);
             INSERT INTO notes SELECT g, 'note ' || g, now() - interval '1 day' FROM generate_series(1, 500) g;",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            "busy",
            "  - source: public.notes\n    copy_mode: INSERT_AND_UPDATE\n    updated_key: updated_at\n",
        )
        .await;
    crate::sync::setup_job(&w, &job).await;
    crate::sync::run(&w, &job).await;

    // verify reads the mark and takes its snapshots; then rows change at the source and
    // a run loads them and commits, all before verify compares.
    let (decisions, mark) = stored(&w, &job).await;
    let prepared = snapshots(&w, &job, &decisions).await;
    w.source()
        .await
        .batch_execute(
            "UPDATE notes SET body = 'edited', updated_at = now() WHERE id IN (7, 8);
             INSERT INTO notes VALUES (501, 'new', now());",
        )
        .await
        .unwrap();
    crate::sync::run(&w, &job).await;
    let v = compared(prepared, &decisions, mark.as_ref()).await;
    assert!(!v.drift(), "the run's rows are no drift: {v:?}");

    // A row changed after the mark was read but before the snapshots: Redshift lacks
    // it, the source has it, and the mark verify read calls it pending, though a run
    // loads it before verify compares.
    let (decisions, mark) = stored(&w, &job).await;
    w.source()
        .await
        .batch_execute("UPDATE notes SET body = 'again', updated_at = now() WHERE id = 9")
        .await
        .unwrap();
    let prepared = snapshots(&w, &job, &decisions).await;
    crate::sync::run(&w, &job).await;
    let v = compared(prepared, &decisions, mark.as_ref()).await;
    assert!(!v.drift() && v.pending == 1, "row 9 is pending: {v:?}");

    // And the next verify sees the table equal as well.
    let verdicts = redshift_loader::verify::check::verify_job(&w.app, &job, &[], 10)
        .await
        .unwrap();
    let v = verdicts[0].as_ref().unwrap();
    assert!(!v.drift() && v.pending == 0, "{v:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_beside_a_busy_writer_and_a_run_after_run_finds_no_drift() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let w = World::with_own_source().await;
    crate::deletes::feed(&w, 3000).await;
    let job = w
        .apply(
            "watched",
            "  - source: public.feed\n    copy_mode: INSERT_AND_UPDATE\n    updated_key: updated_at\n",
        )
        .await;
    crate::sync::setup_job(&w, &job).await;
    crate::sync::run(&w, &job).await;
    // A writer inserting and updating (a transaction held open now and then), and
    // runs one after another, while verify compares again and again.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(crate::deletes::hammer(w.source_url(), stop.clone(), false));
    // Runs and verifies overlap in this task (each waits on its databases).
    let runs = async {
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            crate::sync::run(&w, &job).await;
            n += 1;
        }
        n
    };
    let verifies = async {
        let mut pending = 0;
        for round in 0..10 {
            let verdicts = redshift_loader::verify::check::verify_job(&w.app, &job, &[], 10)
                .await
                .unwrap();
            let v = verdicts[0].as_ref().unwrap();
            assert!(!v.drift(), "round {round}: {v:?}");
            pending += v.pending;
        }
        stop.store(true, Ordering::SeqCst);
        pending
    };
    let (runs, pending) = tokio::join!(runs, verifies);
    let (inserts, updates, _) = writer.await.unwrap();
    assert!(
        inserts > 0 && updates > 0 && runs > 1,
        "{inserts} {updates} {runs}"
    );
    assert!(
        pending > 0,
        "the writer's rows showed as pending at least once"
    );
    // Quiet again: one more run, and the table is equal with nothing pending.
    crate::sync::run(&w, &job).await;
    let verdicts = redshift_loader::verify::check::verify_job(&w.app, &job, &[], 10)
        .await
        .unwrap();
    let v = verdicts[0].as_ref().unwrap();
    assert!(!v.drift() && v.pending == 0, "{v:?}");
}
