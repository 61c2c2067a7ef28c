//! Values Redshift cannot hold (infinite dates and timestamps, NaN and infinite numbers)
//! are replaced in the extract as setup's decisions say, and counted.

use crate::support::World;
use crate::sync::{ok, rows, run, setup_job};

const SOURCE: &str =
    "CREATE TABLE offers (id bigint PRIMARY KEY, valid_until timestamptz, starts date,
                                   price numeric(12,2), score double precision);
     INSERT INTO offers VALUES
       (1, 'infinity', 'infinity', 'NaN', 'NaN'),
       (2, '-infinity', '-infinity', 1.50, 'Infinity'),
       (3, '2024-05-01 10:00:00+00', '2024-05-01', 2.25, 0.5)";

async fn load(refused_values: &str) -> (World, Vec<Vec<Option<String>>>, u64) {
    let w = World::new().await;
    w.source().await.batch_execute(SOURCE).await.unwrap();
    let job = w.job(
        "offers",
        &format!("  - {{ source: public.offers, copy_mode: INSERT_ONLY, primary_key: id{refused_values} }}\n"),
    );
    setup_job(&w, &job).await;
    let outcomes = run(&w, &job).await;
    let report = ok(&outcomes[0]).clone();
    let loaded = rows(
        &w.warehouse().await,
        "SELECT id, valid_until, starts, price, score FROM analytics.offers ORDER BY id",
    )
    .await;
    (w, loaded, report.values_replaced)
}

#[tokio::test]
async fn infinity_and_nan_load_as_null_and_are_counted() {
    let (_w, loaded, replaced) = load("").await;
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        loaded,
        vec![
            vec![s("1"), None, None, None, None],
            vec![s("2"), None, None, s("1.50"), None],
            vec![
                s("3"),
                s("2024-05-01 10:00:00+00"),
                s("2024-05-01"),
                s("2.25"),
                s("0.5")
            ],
        ]
    );
    assert_eq!(replaced, 7);
}

#[tokio::test]
async fn the_extreme_option_loads_the_types_extremes() {
    let (_w, loaded, replaced) =
        load(", refused_values: { valid_until: extreme, starts: extreme, score: extreme }").await;
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        loaded,
        vec![
            vec![
                s("1"),
                s("294276-12-31 23:59:59.999999+00"),
                s("294276-12-31"),
                None,
                None
            ],
            vec![
                s("2"),
                s("4713-01-01 00:00:00+00 BC"),
                s("4713-01-01 BC"),
                s("1.50"),
                s("1.7976931348623157e+308")
            ],
            vec![
                s("3"),
                s("2024-05-01 10:00:00+00"),
                s("2024-05-01"),
                s("2.25"),
                s("0.5")
            ],
        ]
    );
    assert_eq!(replaced, 7);
}
