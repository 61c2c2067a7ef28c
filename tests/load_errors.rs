//! A value Redshift refuses: the load error names column, line, reason and the value's
//! length, never the value (unless `LOADER_SHOW_REJECTED_VALUES=true`), on a
//! provisioned cluster (`stl_load_errors`) and on Redshift Serverless
//! (`sys_load_error_detail`).

use redshift_loader::config::TableRef;
use redshift_loader::sync::LAST_ERROR;
use serde_json::Value;

use crate::support::{text, World};

/// Distinctive: it must not appear in any stored or printed error by default.
const REFUSED: &str = "424242.17";

/// A table whose `price` Redshift cannot hold (`column_types` narrows it to
/// DECIMAL(5,2)), set up through the emulator (`serverless` or provisioned).
async fn refused_price(w: &World, name: &str, serverless: bool) {
    w.source()
        .await
        .batch_execute(&format!(
            "CREATE TABLE prices (id bigint PRIMARY KEY, price numeric(12,2));
             INSERT INTO prices VALUES (1, 1.50), (2, {REFUSED})"
        ))
        .await
        .unwrap();
    let destination = if serverless {
        w.stack.serverless_url(&w.names.warehouse_db)
    } else {
        w.redshift_url()
    };
    let yaml = format!(
        "name: {name}\nsource:\n  url: {}\ndestination:\n  url: {destination}\n  schema: analytics\n  \
         iam_role: arn:aws:iam::123456789012:role/redshift-copy\nfrequency: 300\ntables:\n  \
         - {{ source: public.prices, copy_mode: INSERT_ONLY, primary_key: id, column_types: {{ price: \"DECIMAL(5,2)\" }} }}\n",
        w.source_url()
    );
    w.apply_yaml(&yaml).await;
    let out = w.cli(&["--json", "setup", name]);
    assert!(out.status.success(), "{:?}", text(&out));
}

/// Runs the job with `extra` settings; returns the table's error from `run --json`.
fn run_error(w: &World, name: &str, extra: &[(&str, &str)]) -> String {
    let out = w.cli_with(&["--json", "run", name, "--force"], extra);
    let (stdout, stderr) = text(&out);
    let v: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"));
    assert_eq!(v["tables"][0]["ok"], false, "{v}");
    v["tables"][0]["error"].as_str().unwrap().to_string()
}

/// Everything the loader stored about the job's runs and the table's last error.
async fn stored(w: &World, name: &str) -> String {
    let runs = w.app.store.runs(name, 10).await.unwrap();
    let last_error = w
        .app
        .store
        .get_table_document(name, &TableRef::new("public", "prices"), LAST_ERROR)
        .await
        .unwrap();
    assert!(last_error.is_some(), "no last error stored");
    format!("{runs:?} {last_error:?}")
}

#[tokio::test]
async fn a_refused_value_is_redacted_unless_the_setting_shows_it() {
    let w = World::new().await;
    refused_price(&w, "redact", false).await;

    let error = run_error(&w, "redact", &[]);
    assert!(!error.contains(REFUSED), "{error}");
    assert!(
        error.starts_with(
            "Redshift refused the load into analytics.prices: column price, line 2 of s3://"
        ),
        "{error}"
    );
    assert!(
        error.ends_with(
            "Numeric data overflow (result precision), Value '…', Type: DECIMAL(5,2) (error code 1204); \
             the value (9 characters) is not shown; LOADER_SHOW_REJECTED_VALUES=true shows it"
        ),
        "{error}"
    );
    let kept = stored(&w, "redact").await;
    assert!(!kept.contains(REFUSED), "{kept}");

    let error = run_error(&w, "redact", &[("LOADER_SHOW_REJECTED_VALUES", "true")]);
    assert!(
        error.ends_with(&format!(
            "Numeric data overflow (result precision), Value '{REFUSED}', Type: DECIMAL(5,2) (error code 1204); value: \"{REFUSED}\""
        )),
        "{error}"
    );
}

#[tokio::test]
async fn serverless_load_errors_are_read_from_sys_load_error_detail() {
    let w = World::new().await;
    refused_price(&w, "serverless", true).await;
    let error = run_error(&w, "serverless", &[]);
    assert!(
        error.starts_with(
            "Redshift refused the load into analytics.prices: column price, line 2 of s3://"
        ),
        "{error}"
    );
    assert!(
        error.ends_with(
            "Numeric data overflow (result precision), Value '…', Type: DECIMAL(5,2) (error code 1204); \
             Redshift Serverless does not record the value"
        ),
        "{error}"
    );
    let kept = stored(&w, "serverless").await;
    assert!(!kept.contains(REFUSED), "{kept}");
}
