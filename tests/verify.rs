//! The key comparison behind `verify` and `deletes: reconcile`, on the real source and
//! the Redshift emulator: a synced table compares equal; planted drifts of each kind
//! are found with their keys, shipping a few thousand keys, not the table.

use redshift_loader::config::{Format, Job};
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
    };
    let items = |dialect, table: &str| key_table(dialect, table, &["id"], &[false]);
    let source = Db {
        client: &src,
        table: items(Dialect::Postgres, "\"public\".\"items\""),
    };
    let redshift = Db {
        client: &rs,
        table: items(Dialect::Redshift, "\"analytics\".\"items\""),
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
    };
    let redshift = Db {
        client: &rs,
        table: pairs(Dialect::Redshift, "\"analytics\".\"pairs\""),
    };
    let small = Tuning {
        range_keys: 97,
        fan_out: 4,
        leaf_keys: 10,
        batch: 8,
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
