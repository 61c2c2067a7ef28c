//! Conformance of the Redshift emulator: one test per rule of `tests/testkit/README.md`.
//! Each test makes its own warehouse database and bucket, talks to the emulator as the
//! loader would (tokio-postgres), and checks what PostgreSQL really stored.

use std::io::Write;
use std::time::Instant;

use testkit::stack::{shared, Stack};
use tokio_postgres::{Client, SimpleQueryMessage};

const ROLE: &str = "IAM_ROLE 'arn:aws:iam::123456789012:role/redshift-copy'";

struct Db {
    stack: &'static Stack,
    /// Through the emulator.
    rs: Client,
    /// The PostgreSQL database behind it.
    pg: Client,
    bucket: String,
    name: String,
}

async fn db() -> Db {
    db_on(false).await
}

/// A database reached through the emulator acting as Redshift Serverless.
async fn serverless_db() -> Db {
    db_on(true).await
}

async fn db_on(serverless: bool) -> Db {
    let stack = shared();
    let name = stack.warehouse_db().await.unwrap();
    let url = if serverless {
        stack.serverless_url(&name)
    } else {
        stack.redshift_url(&name)
    };
    let rs = testkit::pg::connect_url(&url).await.unwrap();
    let pg = stack.warehouse.connect(&name).await.unwrap();
    let bucket = stack.moto.create_bucket().await.unwrap();
    Db {
        stack,
        rs,
        pg,
        bucket,
        name,
    }
}

impl Db {
    async fn put(&self, key: &str, body: Vec<u8>) {
        self.stack
            .moto
            .s3_client()
            .await
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap();
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// Runs through the emulator; the error's (SQLSTATE, message) on failure.
    async fn exec(&self, sql: &str) -> Result<(), (String, String)> {
        self.rs.batch_execute(sql).await.map_err(error_parts)
    }

    async fn count(&self, table: &str) -> i64 {
        self.pg
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0)
    }

    async fn texts(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.pg
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
}

fn error_parts(e: tokio_postgres::Error) -> (String, String) {
    match e.as_db_error() {
        Some(db) => (db.code().code().to_string(), db.message().to_string()),
        None => ("?".into(), e.to_string()),
    }
}

/// One gzip member per entry, concatenated (one entry: an ordinary gzip file).
fn gzip(members: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(m).unwrap();
        out.extend(enc.finish().unwrap());
    }
    out
}

async fn refused(d: &Db, sql: &str) -> (String, String) {
    match d.exec(sql).await {
        Ok(()) => panic!("the emulator accepted: {sql}"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------- COPY FROM S3

#[tokio::test]
async fn copy_by_prefix_loads_every_object_under_it() {
    let d = db().await;
    d.exec("CREATE TABLE t (id int, name varchar(10))")
        .await
        .unwrap();
    d.put("run/part-1.csv", b"1,\"a\"\n2,\"b\"\n".to_vec())
        .await;
    d.put("run/part-2.csv", b"3,\"c\"\n".to_vec()).await;
    d.put("other/x.csv", b"9,\"z\"\n".to_vec()).await;
    d.exec(&format!(
        "COPY t (id, name) FROM '{}' {ROLE} CSV",
        d.url("run/part")
    ))
    .await
    .unwrap();
    assert_eq!(d.count("t").await, 3);
}

#[tokio::test]
async fn copy_by_manifest_loads_only_its_entries() {
    let d = db().await;
    d.exec("CREATE TABLE t (id int)").await.unwrap();
    d.put("run/a.csv", b"1\n".to_vec()).await;
    d.put("run/stale.csv", b"666\n".to_vec()).await;
    let manifest = serde_json::json!({"entries": [
        {"url": d.url("run/a.csv"), "mandatory": true},
        {"url": d.url("run/missing-but-optional.csv"), "mandatory": false},
    ]});
    d.put("run/manifest.json", manifest.to_string().into_bytes())
        .await;
    d.exec(&format!(
        "COPY t FROM '{}' {ROLE} CSV MANIFEST",
        d.url("run/manifest.json")
    ))
    .await
    .unwrap();
    assert_eq!(
        d.texts("SELECT id FROM t").await,
        vec![vec![Some("1".to_string())]]
    );
}

#[tokio::test]
async fn manifest_with_a_missing_mandatory_file_fails() {
    let d = db().await;
    d.exec("CREATE TABLE t (id int)").await.unwrap();
    d.put("run/a.csv", b"1\n".to_vec()).await;
    let manifest = serde_json::json!({"entries": [
        {"url": d.url("run/a.csv"), "mandatory": true},
        {"url": d.url("run/gone.csv"), "mandatory": true},
    ]});
    d.put("run/m.json", manifest.to_string().into_bytes()).await;
    let (code, message) = refused(
        &d,
        &format!("COPY t FROM '{}' {ROLE} CSV MANIFEST", d.url("run/m.json")),
    )
    .await;
    assert_eq!(code, "XX000");
    assert!(message.contains("run/gone.csv"), "{message}");
    assert_eq!(d.count("t").await, 0);
}

#[tokio::test]
async fn an_empty_prefix_fails_like_redshift() {
    let d = db().await;
    d.exec("CREATE TABLE t (id int)").await.unwrap();
    let (code, message) = refused(
        &d,
        &format!("COPY t FROM '{}' {ROLE} CSV", d.url("nothing/here")),
    )
    .await;
    assert_eq!(code, "XX000");
    assert_eq!(
        message,
        "The specified S3 prefix 'nothing/here' does not exist"
    );
}

#[tokio::test]
async fn gzip_and_zstd_decompress_and_a_second_gzip_member_is_refused() {
    let d = db().await;
    d.exec("CREATE TABLE t (id int)").await.unwrap();
    d.put("gz/a.csv.gz", gzip(&[b"1\n2\n3\n"])).await;
    d.exec(&format!("COPY t FROM '{}' {ROLE} CSV GZIP", d.url("gz/")))
        .await
        .unwrap();
    assert_eq!(d.count("t").await, 3);
    d.put("zs/a.csv.zst", zstd::encode_all(&b"4\n5\n"[..], 3).unwrap())
        .await;
    d.exec(&format!("COPY t FROM '{}' {ROLE} CSV ZSTD", d.url("zs/")))
        .await
        .unwrap();
    assert_eq!(d.count("t").await, 5);
    // Two members in one object (what concatenated, separately compressed blocks make).
    d.put("multi/a.csv.gz", gzip(&[b"6\n7\n", b"8\n"])).await;
    let (code, message) = refused(
        &d,
        &format!("COPY t FROM '{}' {ROLE} CSV GZIP", d.url("multi/")),
    )
    .await;
    assert_eq!(code, "XX000");
    assert!(
        message.starts_with("Load into table 't' failed."),
        "{message}"
    );
    let rows = d
        .texts("SELECT trim(filename), err_code, trim(err_reason) FROM stl_load_errors")
        .await;
    let file = d.url("multi/a.csv.gz");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0].as_deref(), Some(file.as_str()));
    assert_eq!(rows[0][1].as_deref(), Some("8001"));
    let reason = rows[0][2].clone().unwrap_or_default();
    assert!(
        reason.starts_with(testkit::redshift::copy::MULTI_MEMBER),
        "{reason}"
    );
    assert_eq!(d.count("t").await, 5, "nothing of the refused file loads");
}

#[tokio::test]
async fn stv_slices_lists_the_configured_slices_and_serverless_has_none() {
    async fn count(d: &Db) -> Result<String, (String, String)> {
        d.rs.simple_query("SELECT COUNT(*) FROM stv_slices")
            .await
            .map(|m| {
                m.iter()
                    .find_map(|m| match m {
                        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                        _ => None,
                    })
                    .expect("a row")
            })
            .map_err(error_parts)
    }
    let d = db().await;
    assert_eq!(
        count(&d).await.unwrap(),
        testkit::redshift::DEFAULT_SLICES.to_string()
    );
    let rows =
        d.rs.simple_query("SELECT node, slice, localslice, type FROM stv_slices ORDER BY slice")
            .await
            .unwrap();
    let rows: Vec<Vec<&str>> = rows
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..4).map(|i| r.get(i).unwrap()).collect()),
            _ => None,
        })
        .collect();
    assert_eq!(rows, [["0", "0", "0", "D"], ["0", "1", "1", "D"]]);
    // An emulator told another count lists that many.
    let eight = testkit::redshift::RedshiftEmulator::start(testkit::redshift::EmulatorConfig {
        backend_host: d.stack.warehouse.host().to_string(),
        backend_port: d.stack.warehouse.port(),
        backend_user: d.stack.warehouse.user().to_string(),
        s3: d.stack.moto.s3_client().await,
        serverless: false,
        iam_role: None,
        slices: Some(8),
        tls: None,
        require_ssl: false,
    })
    .await
    .unwrap();
    let other = Db {
        rs: testkit::pg::connect_url(&eight.url(&d.stack.warehouse_db().await.unwrap()))
            .await
            .unwrap(),
        ..db().await
    };
    assert_eq!(count(&other).await.unwrap(), "8");
    // Redshift Serverless has no STV tables.
    let (code, message) = count(&serverless_db().await).await.unwrap_err();
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("42P01", "relation \"stv_slices\" does not exist")
    );
}

#[tokio::test]
async fn null_as_empty_strings_and_a_literal_backslash_n_stay_apart() {
    let d = db().await;
    d.exec("CREATE TABLE t (id int, v varchar(10), n int)")
        .await
        .unwrap();
    d.put("f.csv", b"1,\\N,\\N\n2,\"\",\n3,\"\\N\",3\n".to_vec())
        .await;
    d.exec(&format!(
        "COPY t FROM '{}' {ROLE} CSV NULL AS '\\\\N'",
        d.url("f.csv")
    ))
    .await
    .unwrap();
    let rows = d
        .texts("SELECT id, v IS NULL, v, n IS NULL FROM t ORDER BY id")
        .await;
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        rows,
        vec![
            vec![s("1"), s("t"), None, s("t")],
            vec![s("2"), s("f"), s(""), s("t")],
            vec![s("3"), s("f"), s("\\N"), s("f")],
        ]
    );
}

#[tokio::test]
async fn delimiter_quote_ignoreheader_timeformat_region_and_updates_options() {
    let d = db().await;
    d.exec("CREATE TABLE t (id int, at timestamptz, note varchar(20))")
        .await
        .unwrap();
    d.put(
        "f.csv",
        b"id|at|note\n1|2024-05-06 07:08:09.123456+00|'a|b'\n".to_vec(),
    )
    .await;
    d.exec(&format!(
        "COPY t FROM '{}' {ROLE} FORMAT AS CSV DELIMITER AS '|' QUOTE AS '''' IGNOREHEADER 1 \
         TIMEFORMAT 'auto' DATEFORMAT 'auto' REGION 'us-east-1' COMPUPDATE OFF STATUPDATE OFF",
        d.url("f.csv")
    ))
    .await
    .unwrap();
    assert_eq!(
        d.texts("SELECT id, at, note FROM t").await,
        vec![vec![
            Some("1".into()),
            Some("2024-05-06 07:08:09.123456+00".into()),
            Some("a|b".into())
        ]]
    );
}

#[tokio::test]
async fn iam_role_is_required_and_access_keys_are_refused() {
    let d = db().await;
    d.exec("CREATE TABLE t (id int)").await.unwrap();
    d.put("f.csv", b"1\n".to_vec()).await;
    let (_, message) = refused(&d, &format!("COPY t FROM '{}' CSV", d.url("f.csv"))).await;
    assert!(message.contains("IAM_ROLE"), "{message}");
    let (_, message) = refused(
        &d,
        &format!(
            "COPY t FROM '{}' ACCESS_KEY_ID 'AKIA' SECRET_ACCESS_KEY 'x' CSV",
            d.url("f.csv")
        ),
    )
    .await;
    assert!(message.contains("use IAM_ROLE"), "{message}");
    let (_, message) = refused(
        &d,
        &format!(
            "COPY t FROM '{}' CREDENTIALS 'aws_access_key_id=A' CSV",
            d.url("f.csv")
        ),
    )
    .await;
    assert!(message.contains("use IAM_ROLE"), "{message}");
}

#[tokio::test]
async fn a_bad_row_fails_the_copy_and_its_details_survive_the_rollback() {
    let d = db().await;
    d.exec("CREATE TABLE items (id int, name varchar(5), qty int)")
        .await
        .unwrap();
    d.put(
        "bad/part-1.csv",
        b"1,\"ok\",1\n2,\"much too long\",2\n".to_vec(),
    )
    .await;
    d.exec("BEGIN; INSERT INTO items VALUES (0, 'x', 0)")
        .await
        .unwrap();
    let (code, message) = refused(
        &d,
        &format!("COPY items FROM '{}' {ROLE} CSV", d.url("bad/")),
    )
    .await;
    assert_eq!(code, "XX000");
    assert_eq!(
        message,
        "Load into table 'items' failed.  Check 'stl_load_errors' system table for details."
    );
    // The transaction is aborted like after any error, and rolls back.
    let (code, _) = refused(&d, "SELECT 1").await;
    assert_eq!(code, "25P02");
    d.exec("ROLLBACK").await.unwrap();
    assert_eq!(d.count("items").await, 0);
    let rows = d
        .texts("SELECT trim(filename), line_number, trim(colname), trim(raw_field_value), trim(err_reason), err_code FROM stl_load_errors")
        .await;
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        rows,
        vec![vec![
            Some(d.url("bad/part-1.csv")),
            s("2"),
            s("name"),
            s("much too long"),
            s("String length exceeds DDL length"),
            s("1204")
        ]]
    );
    // The same table is readable through the emulator without a schema, as in Redshift.
    let n: i64 =
        d.rs.query_one("SELECT count(*) FROM stl_load_errors", &[])
            .await
            .unwrap()
            .get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn serverless_keeps_load_errors_in_sys_load_error_detail_only() {
    let d = serverless_db().await;
    d.exec("CREATE TABLE items (id int, name varchar(5))")
        .await
        .unwrap();
    d.put(
        "bad/part-1.csv",
        b"1,\"ok\"\n2,\"much too long\"\n".to_vec(),
    )
    .await;
    let (code, message) = refused(
        &d,
        &format!("COPY items FROM '{}' {ROLE} CSV", d.url("bad/")),
    )
    .await;
    assert_eq!(code, "XX000");
    assert_eq!(
        message,
        "Load into table 'items' failed.  Check 'sys_load_error_detail' system table for details."
    );
    let rows = d
        .texts("SELECT trim(file_name), line_number, trim(column_name), trim(column_type), trim(column_length), error_code, trim(error_message), trim(database_name) FROM sys_load_error_detail")
        .await;
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        rows,
        vec![vec![
            Some(d.url("bad/part-1.csv")),
            s("2"),
            s("name"),
            s("varchar"),
            s("5"),
            s("1204"),
            s("String length exceeds DDL length"),
            Some(d.name.clone()),
        ]]
    );
    // No STL table: the catalog tells the loader which one to read.
    let tables: Vec<String> = d
        .rs
        .query(
            "SELECT relname::text FROM pg_catalog.pg_class WHERE relname IN ('stl_load_errors', 'sys_load_error_detail')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tables, ["sys_load_error_detail"]);
}

#[tokio::test]
async fn type_errors_name_column_and_reason() {
    let d = db().await;
    d.exec("CREATE TABLE t (id int NOT NULL, amount decimal(5,2), ok boolean)")
        .await
        .unwrap();
    for (file, body, col, reason) in [
        (
            "a.csv",
            "x1,1.00,t\n",
            "id",
            "Invalid digit, Value 'x', Pos 0, Type: Integer",
        ),
        ("b.csv", "1,1234.5,t\n", "amount", "Numeric data overflow"),
        (
            "c.csv",
            "\\N,1,t\n",
            "id",
            "Missing data for not-null field",
        ),
        ("d.csv", "1,1,maybe\n", "ok", "Invalid boolean value"),
    ] {
        d.put(file, body.as_bytes().to_vec()).await;
        let (code, _) = refused(
            &d,
            &format!("COPY t FROM '{}' {ROLE} CSV NULL AS '\\\\N'", d.url(file)),
        )
        .await;
        assert_eq!(code, "XX000");
        let last = d
            .texts(&format!(
                "SELECT trim(colname), trim(err_reason) FROM stl_load_errors WHERE trim(filename) = '{}'",
                d.url(file)
            ))
            .await;
        assert_eq!(last[0][0].as_deref(), Some(col), "{file}");
        assert!(
            last[0][1].as_deref().unwrap().starts_with(reason),
            "{file}: {last:?}"
        );
    }
    assert_eq!(d.count("t").await, 0);
}

#[tokio::test]
async fn pg_last_copy_count_is_per_session() {
    let d = db().await;
    d.exec("CREATE TABLE t (id int)").await.unwrap();
    d.put("f.csv", b"1\n2\n3\n".to_vec()).await;
    d.exec(&format!("COPY t FROM '{}' {ROLE} CSV", d.url("f.csv")))
        .await
        .unwrap();
    let n: i64 =
        d.rs.query_one("SELECT pg_last_copy_count()", &[])
            .await
            .unwrap()
            .get(0);
    assert_eq!(n, 3);
    let other = testkit::pg::connect_url(&d.stack.redshift_url(&d.name))
        .await
        .unwrap();
    let n: i64 = other
        .query_one("SELECT pg_last_copy_count()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "another session has copied nothing");
}

#[tokio::test]
async fn copy_belongs_to_the_client_transaction_and_reports_its_rows() {
    let d = db().await;
    d.exec("CREATE TABLE t (id int)").await.unwrap();
    d.put("f.csv", b"1\n2\n3\n".to_vec()).await;
    let copy = format!("COPY t FROM '{}' {ROLE} CSV", d.url("f.csv"));
    d.exec(&format!("BEGIN; {copy}")).await.unwrap();
    d.exec("ROLLBACK").await.unwrap();
    assert_eq!(d.count("t").await, 0, "rolled back with the transaction");
    d.exec(&format!("BEGIN; {copy}; COMMIT")).await.unwrap();
    assert_eq!(d.count("t").await, 3);
    let first: i32 =
        d.rs.query_one("SELECT pg_last_copy_id()", &[])
            .await
            .unwrap()
            .get(0);
    d.exec(&copy).await.unwrap();
    let second: i32 =
        d.rs.query_one("SELECT pg_last_copy_id()", &[])
            .await
            .unwrap()
            .get(0);
    assert!(second > first, "each COPY has its own query id");
    // Redshift reports the load as an INFO notice and the tag `COPY`.
    let psql = testkit::pg::find_bin_dir().unwrap().join("psql");
    let out = std::process::Command::new(psql)
        .args([&d.stack.redshift_url(&d.name), "-c", &copy])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "COPY");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "INFO:  Load into table 't' completed, 3 record(s) loaded successfully."
    );
}

#[tokio::test]
async fn load_errors_found_by_the_backend_name_file_line_and_value() {
    let d = db().await;
    d.exec("CREATE TABLE t (id int, note varchar(20), at timestamp)")
        .await
        .unwrap();
    d.put(
        "run/a.csv",
        b"id,note,at\n1,\"x\",2024-01-01 00:00:00\n2,\"y\",2024-01-02 00:00:00\n".to_vec(),
    )
    .await;
    // A quoted newline makes the file's line numbers run ahead of its rows.
    d.put(
        "run/b.csv",
        b"id,note,at\n3,\"two\nlines\",2024-01-03 00:00:00\n4,\"z\",2024-02-30 00:00:00\n".to_vec(),
    )
    .await;
    let (code, _) = refused(
        &d,
        &format!(
            "COPY t FROM '{}' {ROLE} CSV IGNOREHEADER 1 TIMEFORMAT 'auto'",
            d.url("run/")
        ),
    )
    .await;
    assert_eq!(code, "XX000");
    let rows = d
        .texts("SELECT trim(filename), line_number, trim(colname), trim(type), trim(raw_field_value), trim(raw_line), err_code, trim(err_reason) FROM stl_load_errors")
        .await;
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        rows,
        vec![vec![
            Some(d.url("run/b.csv")),
            s("4"),
            s("at"),
            s("timestamp"),
            s("2024-02-30 00:00:00"),
            s("4,\"z\",2024-02-30 00:00:00"),
            s("1206"),
            s("Invalid timestamp format or value [YYYY-MM-DD HH24:MI:SS]"),
        ]]
    );
    assert_eq!(d.count("t").await, 0);
}

#[tokio::test]
async fn dateformat_and_timeformat_read_epochs_format_strings_and_defaults() {
    let d = db().await;
    d.exec("CREATE TABLE t (d date, ts timestamp, tz timestamptz)")
        .await
        .unwrap();
    d.put("a.csv", b"03/31/2003,1700000000,1700000000.5\n".to_vec())
        .await;
    d.exec(&format!(
        "COPY t FROM '{}' {ROLE} CSV DATEFORMAT AS 'MM/DD/YYYY' TIMEFORMAT AS 'epochsecs'",
        d.url("a.csv")
    ))
    .await
    .unwrap();
    d.put(
        "b.csv",
        b"Mar 1 2024,01.02.2024 13:14:15,02.02.2024 01:02:03\n".to_vec(),
    )
    .await;
    d.exec(&format!(
        "COPY t FROM '{}' {ROLE} CSV DATEFORMAT 'MON DD YYYY' TIMEFORMAT 'DD.MM.YYYY HH24:MI:SS'",
        d.url("b.csv")
    ))
    .await
    .unwrap();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        d.texts("SELECT d, ts, tz FROM t ORDER BY d").await,
        vec![
            vec![
                s("2003-03-31"),
                s("2023-11-14 22:13:20"),
                s("2023-11-14 22:13:20.5+00")
            ],
            vec![
                s("2024-03-01"),
                s("2024-02-01 13:14:15"),
                s("2024-02-02 01:02:03+00")
            ],
        ]
    );
    // Without the options Redshift reads only its default formats.
    d.put("c.csv", b"2024-01-01,2024-01-01T00:00:00,\n".to_vec())
        .await;
    let (code, _) = refused(&d, &format!("COPY t FROM '{}' {ROLE} CSV", d.url("c.csv"))).await;
    assert_eq!(code, "XX000");
    assert_eq!(
        d.texts("SELECT trim(colname), err_code, trim(err_reason) FROM stl_load_errors")
            .await,
        vec![vec![
            s("ts"),
            s("1206"),
            s("Invalid timestamp format or value [YYYY-MM-DD HH24:MI:SS]")
        ]]
    );
}

#[tokio::test]
async fn field_rules_fail_with_redshift_codes() {
    let d = db().await;
    d.exec("CREATE TABLE t (i smallint, c char(3), j super, b varbyte(4))")
        .await
        .unwrap();
    for (file, body, col, code, reason) in [
        (
            "extra.csv",
            "1,a,1,00,9\n",
            "",
            1202,
            "Extra column(s) found",
        ),
        ("fewer.csv", "1,a\n", "", 1214, "Delimiter not found"),
        (
            "quote.csv",
            "1,\"a\"x,1,00\n",
            "",
            1216,
            "Missing newline: Unexpected character 0x78 found at location 6",
        ),
        (
            "short.csv",
            "40000,a,1,00\n",
            "i",
            1222,
            "Overflow (Short valid range -32768 to 32767)",
        ),
        (
            "char.csv",
            "1,é,1,00\n",
            "c",
            1220,
            "Multibyte character not supported for CHAR",
        ),
        ("super.csv", "1,a,{x,00\n", "j", 1224, "Invalid JSON"),
        ("hex.csv", "1,a,1,0g\n", "b", 1207, "Invalid hex value"),
    ] {
        d.put(file, body.as_bytes().to_vec()).await;
        let (sqlstate, _) = refused(&d, &format!("COPY t FROM '{}' {ROLE} CSV", d.url(file))).await;
        assert_eq!(sqlstate, "XX000", "{file}");
        let row = d
            .texts(&format!(
                "SELECT trim(colname), err_code, trim(err_reason), line_number FROM stl_load_errors WHERE trim(filename) = '{}'",
                d.url(file)
            ))
            .await;
        assert_eq!(row[0][0].as_deref(), Some(col), "{file}");
        assert_eq!(row[0][1], Some(code.to_string()), "{file}");
        assert!(
            row[0][2].as_deref().unwrap().starts_with(reason),
            "{file}: {row:?}"
        );
        assert_eq!(row[0][3].as_deref(), Some("1"), "{file}");
    }
    assert_eq!(d.count("t").await, 0);
}

// ---------------------------------------------------------------- types and functions

#[tokio::test]
async fn super_varbyte_json_parse_and_getdate() {
    let d = db().await;
    d.exec("CREATE TABLE t (doc SUPER, bin VARBYTE(16), at TIMESTAMP)")
        .await
        .unwrap();
    d.exec("INSERT INTO t SELECT JSON_PARSE('{\"a\": [1, 2]}'), 'ab'::varbyte, GETDATE()")
        .await
        .unwrap();
    let rows = d
        .texts("SELECT doc->'a'->>1, encode(bin, 'hex'), at <= now()::timestamp FROM t")
        .await;
    assert_eq!(
        rows,
        vec![vec![
            Some("2".into()),
            Some("6162".into()),
            Some("t".into())
        ]]
    );
    d.put(
        "f.csv",
        b"\"{\"\"b\"\":true}\",\"00ff\",2024-01-01 00:00:00\n".to_vec(),
    )
    .await;
    d.exec(&format!("COPY t FROM '{}' {ROLE} CSV", d.url("f.csv")))
        .await
        .unwrap();
    let rows = d
        .texts("SELECT doc->>'b', encode(bin, 'hex') FROM t WHERE bin = '\\x00ff'")
        .await;
    assert_eq!(rows, vec![vec![Some("true".into()), Some("00ff".into())]]);
}

#[tokio::test]
async fn sysdate_json_serialize_is_valid_json_and_cast_as_super() {
    let d = db().await;
    let rows =
        d.rs.simple_query(
            "SELECT SYSDATE <= getdate() + interval '1 second', \
             json_serialize(json_parse('{\"a\": 1}')), is_valid_json('{'), is_valid_json('[1]'), \
             json_serialize(CAST('[2]' AS SUPER)), \
             json_serialize(json_parse('{\"b\": [1, 2.50], \"a\": \"x  y\\\\\\\" z\"}')), json_serialize(NULL)",
        )
        .await
        .unwrap();
    let SimpleQueryMessage::Row(r) = &rows[1] else {
        panic!("{rows:?}")
    };
    let got: Vec<Option<&str>> = (0..r.len()).map(|i| r.get(i)).collect();
    assert_eq!(
        got,
        vec![
            Some("t"),
            Some("{\"a\":1}"),
            Some("f"),
            Some("t"),
            Some("[2]"),
            Some(r#"{"a":"x  y\" z","b":[1,2.50]}"#),
            Some("null"),
        ]
    );
}

#[tokio::test]
async fn redshift_table_attributes_are_accepted() {
    let d = db().await;
    d.exec(
        "CREATE TABLE t (id BIGINT NOT NULL ENCODE az64 DISTKEY, v VARCHAR(10) ENCODE zstd, PRIMARY KEY (id)) \
         DISTSTYLE KEY COMPOUND SORTKEY (id, v)",
    )
    .await
    .unwrap();
    d.exec("CREATE TABLE u (id int) DISTSTYLE AUTO SORTKEY AUTO ENCODE AUTO BACKUP NO")
        .await
        .unwrap();
    d.exec("CREATE TABLE w (id int SORTKEY) DISTSTYLE EVEN INTERLEAVED SORTKEY (id)")
        .await
        .unwrap();
    assert_eq!(
        d.count("t").await + d.count("u").await + d.count("w").await,
        0
    );
}

#[tokio::test]
async fn primary_key_and_unique_are_not_enforced() {
    let d = db().await;
    d.exec("CREATE TABLE t (id int PRIMARY KEY, e varchar(10) UNIQUE)")
        .await
        .unwrap();
    d.exec("INSERT INTO t VALUES (1, 'a'), (1, 'a')")
        .await
        .unwrap();
    assert_eq!(d.count("t").await, 2);
    d.exec(
        "CREATE TABLE c (id int REFERENCES t (id), tid int NOT NULL, \
         CONSTRAINT fk FOREIGN KEY (tid) REFERENCES t (id))",
    )
    .await
    .unwrap();
    d.exec("INSERT INTO c VALUES (98, 99)").await.unwrap();
    assert_eq!(
        d.count("c").await,
        1,
        "foreign keys are not enforced either"
    );
    let (code, _) = refused(&d, "INSERT INTO c (id) VALUES (1)").await;
    assert_eq!(code, "23502", "NOT NULL is enforced");
}

#[tokio::test]
async fn type_defaults_follow_redshift() {
    let d = db().await;
    d.exec("CREATE TABLE t (a TEXT, b VARCHAR, c VARCHAR(MAX), d DECIMAL, e CHAR)")
        .await
        .unwrap();
    let types = d
        .texts("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0 ORDER BY attnum")
        .await;
    let types: Vec<String> = types.into_iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(
        types,
        [
            "character varying(256)",
            "character varying(256)",
            "character varying(65535)",
            "numeric(18,0)",
            "character(1)"
        ]
    );
    let (_, message) = refused(&d, "CREATE TABLE x (a VARCHAR(65536))").await;
    assert!(message.contains("65535"), "{message}");
    let (_, message) = refused(&d, "CREATE TABLE x (a DECIMAL(39,0))").await;
    assert!(message.contains("between 1 and 38"), "{message}");
}

#[tokio::test]
async fn varchar_length_counts_bytes() {
    let d = db().await;
    d.exec("CREATE TABLE t (v VARCHAR(4), c CHAR(2))")
        .await
        .unwrap();
    d.exec("INSERT INTO t (v) VALUES ('éé')").await.unwrap();
    let (code, message) = refused(&d, "INSERT INTO t (v) VALUES ('ééé')").await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("22001", "value too long for type character varying(4)")
    );
    let (code, _) = refused(&d, "UPDATE t SET v = 'ééé'").await;
    assert_eq!(code, "22001");
    let (_, message) = refused(&d, "INSERT INTO t (c) VALUES ('é')").await;
    assert!(message.contains("multibyte"), "{message}");
    // Widening the column moves the limit with it.
    d.exec("ALTER TABLE t ALTER COLUMN v TYPE VARCHAR(6)")
        .await
        .unwrap();
    d.exec("INSERT INTO t (v) VALUES ('ééé')").await.unwrap();
    // Temp tables made LIKE a target carry the rule too.
    d.exec("CREATE TEMP TABLE s (LIKE t); INSERT INTO s (v) VALUES ('éé')")
        .await
        .unwrap();
    let (code, _) = refused(&d, "INSERT INTO s (v) VALUES ('éééé')").await;
    assert_eq!(code, "22001");
}

// ---------------------------------------------------------------- transactions

#[tokio::test]
async fn truncate_commits_the_open_transaction() {
    let d = db().await;
    d.exec("CREATE TABLE a (id int); CREATE TABLE b (id int); INSERT INTO b VALUES (1)")
        .await
        .unwrap();
    d.exec("BEGIN; INSERT INTO a VALUES (1); TRUNCATE b")
        .await
        .unwrap();
    d.exec("ROLLBACK").await.unwrap();
    assert_eq!(
        d.count("a").await,
        1,
        "the insert was committed by TRUNCATE"
    );
    assert_eq!(d.count("b").await, 0);
}

#[tokio::test]
async fn alter_table_append_is_refused_in_a_transaction_and_moves_rows_outside() {
    let d = db().await;
    d.exec("CREATE TABLE t (id int, v varchar(5)); CREATE TABLE s (v varchar(5), id int); INSERT INTO s VALUES ('x', 1)")
        .await
        .unwrap();
    d.exec("BEGIN").await.unwrap();
    let (code, message) = refused(&d, "ALTER TABLE t APPEND FROM s").await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        (
            "25001",
            "ALTER TABLE APPEND cannot run inside a transaction block"
        )
    );
    d.exec("ROLLBACK").await.unwrap();
    d.exec("ALTER TABLE t APPEND FROM s").await.unwrap();
    assert_eq!((d.count("t").await, d.count("s").await), (1, 0));
}

#[tokio::test]
async fn alter_table_adds_one_column_per_statement() {
    let d = db().await;
    d.exec("CREATE TABLE t (id int)").await.unwrap();
    let (code, message) = refused(&d, "ALTER TABLE t ADD COLUMN a int, ADD COLUMN b int").await;
    assert_eq!(code, "0A000");
    assert!(message.contains("one column"), "{message}");
    d.exec("ALTER TABLE t ADD COLUMN a SUPER").await.unwrap();
}

// ---------------------------------------------------------------- refusals

#[tokio::test]
async fn postgres_only_features_are_refused_in_both_protocols() {
    let d = db().await;
    d.exec("CREATE TABLE t (id int)").await.unwrap();
    for sql in [
        "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING",
        "INSERT INTO t VALUES (1) RETURNING id",
        "COPY t FROM STDIN",
        "COPY t TO STDOUT",
        "CREATE INDEX i ON t (id)",
        "CREATE TABLE x (a json)",
        "CREATE TABLE x (a jsonb)",
        "CREATE TABLE x (a uuid)",
        "CREATE TABLE x (a int[])",
        "CREATE TABLE x (a _int4)",
        "CREATE TABLE x (a serial)",
        "CREATE TABLE x (a bigserial)",
        "CREATE EXTENSION hstore",
    ] {
        let (code, _) = refused(&d, sql).await;
        assert_eq!(code, "0A000", "simple protocol: {sql}");
        let e = d.rs.execute(sql, &[]).await.unwrap_err();
        assert_eq!(error_parts(e).0, "0A000", "extended protocol: {sql}");
    }
    // The session is still usable, and nothing was created.
    d.exec("INSERT INTO t VALUES (2)").await.unwrap();
    assert_eq!(d.count("t").await, 1);
}

#[tokio::test]
async fn refusals_with_bind_parameters_reach_the_client_and_abort_the_transaction() {
    let d = db().await;
    d.exec("CREATE TABLE t (id int)").await.unwrap();
    let e =
        d.rs.execute("INSERT INTO t VALUES ($1) RETURNING id", &[&1i32])
            .await
            .unwrap_err();
    let (code, message) = error_parts(e);
    assert_eq!(code, "0A000");
    assert!(message.contains("RETURNING"), "{message}");
    let e =
        d.rs.prepare("INSERT INTO t VALUES ($1) ON CONFLICT DO NOTHING")
            .await
            .unwrap_err();
    assert_eq!(error_parts(e).0, "0A000", "prepare alone is refused");
    // In a transaction block the refusal aborts the block, like any error.
    d.exec("BEGIN").await.unwrap();
    d.rs.execute("INSERT INTO t VALUES ($1)", &[&1i32])
        .await
        .unwrap();
    let e =
        d.rs.execute("INSERT INTO t VALUES ($1) ON CONFLICT DO NOTHING", &[&2i32])
            .await
            .unwrap_err();
    assert_eq!(error_parts(e).0, "0A000");
    let e = d.rs.execute("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(error_parts(e).0, "25P02");
    d.exec("ROLLBACK").await.unwrap();
    assert_eq!(d.count("t").await, 0);
    d.rs.execute("INSERT INTO t VALUES ($1)", &[&3i32])
        .await
        .unwrap();
    assert_eq!(d.count("t").await, 1, "the session goes on");
}

#[tokio::test]
async fn array_parameters_are_refused() {
    let d = db().await;
    let e =
        d.rs.query("SELECT $1::int[]", &[&vec![1i32, 2]])
            .await
            .unwrap_err();
    assert_eq!(error_parts(e).0, "0A000");
    let n: i32 =
        d.rs.query_one("SELECT $1::int", &[&7i32])
            .await
            .unwrap()
            .get(0);
    assert_eq!(n, 7, "scalar parameters work");
}

#[tokio::test]
async fn psql_connects_through_the_emulator() {
    let d = db().await;
    let psql = testkit::pg::find_bin_dir().unwrap().join("psql");
    let out = std::process::Command::new(psql)
        .args([&d.stack.redshift_url(&d.name), "-Atc", "SELECT 40 + 2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
}

// ---------------------------------------------------------------- speed

#[tokio::test]
async fn copy_one_million_rows_gzip() {
    const ROWS: u64 = 1_000_000;
    let d = db().await;
    d.exec("CREATE TABLE big (id bigint NOT NULL, name varchar(40), amount decimal(12,2), at timestamp) DISTSTYLE AUTO")
        .await
        .unwrap();
    // Four objects, each one gzip member, as the loader writes them (one per slice).
    let per_object = ROWS / 4;
    for object in 0..4u64 {
        let mut members = Vec::new();
        for half in 0..2u64 {
            let mut csv = Vec::with_capacity(30 << 20);
            let from = object * per_object + half * per_object / 2;
            for id in from..from + per_object / 2 {
                writeln!(
                    csv,
                    "{id},\"name {id} \"\"q\"\"\",{}.{:02},2024-01-01 00:00:{:02}",
                    id % 100_000,
                    id % 100,
                    id % 60
                )
                .unwrap();
            }
            members.push(csv);
        }
        let refs: Vec<&[u8]> = members.iter().map(Vec::as_slice).collect();
        d.put(
            &format!("big/part-{object:05}.csv.gz"),
            gzip(&[refs.concat().as_slice()]),
        )
        .await;
    }
    let started = Instant::now();
    d.exec(&format!(
        "COPY big FROM '{}' {ROLE} CSV GZIP NULL AS '\\\\N' TIMEFORMAT 'auto'",
        d.url("big/")
    ))
    .await
    .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let row =
        d.pg.query_one(
            "SELECT count(*), sum(id)::text, sum(amount)::text FROM big",
            &[],
        )
        .await
        .unwrap();
    let expected_amount: u64 = (0..ROWS).map(|id| (id % 100_000) * 100 + id % 100).sum();
    assert_eq!(row.get::<_, i64>(0), ROWS as i64);
    assert_eq!(row.get::<_, String>(1), (ROWS * (ROWS - 1) / 2).to_string());
    assert_eq!(
        row.get::<_, String>(2),
        format!("{}.{:02}", expected_amount / 100, expected_amount % 100)
    );
    eprintln!(
        "emulator COPY: {ROWS} rows in {seconds:.1} s ({:.0} rows/s)",
        ROWS as f64 / seconds
    );
}

#[tokio::test]
async fn infinite_dates_and_nan_numbers_are_refused() {
    for (column, value, reason) in [
        (
            "d date",
            "infinity",
            "Invalid timestamp format or value [YYYY-MM-DD]",
        ),
        (
            "t timestamptz",
            "-infinity",
            "Invalid timestamp format or value [YYYY-MM-DD HH24:MI:SS]",
        ),
        (
            "n decimal(12,2)",
            "NaN",
            "Invalid digit, Value 'NaN', Pos 0, Type: Decimal",
        ),
        (
            "r real",
            "NaN",
            "Invalid digit, Value 'NaN', Pos 0, Type: Real",
        ),
        (
            "f double precision",
            "-Infinity",
            "Invalid digit, Value '-Infinity', Pos 0, Type: Double",
        ),
    ] {
        let d = db().await;
        d.exec(&format!("CREATE TABLE t ({column})")).await.unwrap();
        d.put("v/part-1.csv", format!("{value}\n").into_bytes())
            .await;
        let (code, _) = refused(
            &d,
            &format!(
                "COPY t FROM '{}' {ROLE} CSV TIMEFORMAT 'auto' DATEFORMAT 'auto'",
                d.url("v/")
            ),
        )
        .await;
        assert_eq!(code, "XX000", "{column}");
        let rows = d
            .texts("SELECT trim(err_reason) FROM stl_load_errors")
            .await;
        assert_eq!(rows, vec![vec![Some(reason.to_string())]], "{column}");
    }
}

// ---------------------------------------------------------------- strictness

#[tokio::test]
async fn quoted_names_fold_to_lower_case_and_names_over_127_bytes_are_refused() {
    let d = db().await;
    d.exec("CREATE TABLE \"Orders\" (\"Id\" int, \"Note\" varchar(10))")
        .await
        .unwrap();
    d.exec("INSERT INTO \"ORDERS\" (\"ID\", note) VALUES (1, 'a')")
        .await
        .unwrap();
    assert_eq!(
        d.texts("SELECT table_name, string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = 'public' AND table_name ILIKE 'orders' GROUP BY 1")
            .await,
        vec![vec![Some("orders".into()), Some("id,note".into())]]
    );
    let (code, message) =
        refused(&d, &format!("CREATE TABLE \"{}\" (a int)", "n".repeat(128))).await;
    assert_eq!(code, "42622", "{message}");
    assert!(message.contains("at most 127 bytes"), "{message}");
    // 64 to 127 bytes: valid in Redshift; the emulator refuses rather than cut the name.
    let (code, message) = refused(&d, &format!("CREATE TABLE {} (a int)", "n".repeat(64))).await;
    assert_eq!(code, "0A000", "{message}");
    d.exec(&format!("CREATE TABLE {} (a int)", "n".repeat(63)))
        .await
        .unwrap();
}

#[tokio::test]
async fn alter_column_type_is_refused_in_a_transaction_block() {
    let d = db().await;
    d.exec("CREATE TABLE t (v varchar(4))").await.unwrap();
    let (code, message) = refused(&d, "BEGIN; ALTER TABLE t ALTER COLUMN v TYPE varchar(8)").await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        (
            "25001",
            "ALTER TABLE ALTER COLUMN cannot run inside a transaction block"
        )
    );
    d.exec("ROLLBACK").await.unwrap();
    // Through the extended protocol too.
    d.exec("BEGIN").await.unwrap();
    let e =
        d.rs.execute("ALTER TABLE t ALTER COLUMN v TYPE varchar(8)", &[])
            .await
            .unwrap_err();
    assert_eq!(error_parts(e).0, "25001");
    d.exec("ROLLBACK").await.unwrap();
    d.exec("ALTER TABLE t ALTER COLUMN v TYPE varchar(8)")
        .await
        .unwrap();
    // Only a VARCHAR's size changes in place.
    let (code, _) = refused(&d, "ALTER TABLE t ALTER COLUMN v TYPE bigint").await;
    assert_eq!(code, "0A000");
    assert_eq!(
        d.texts("SELECT character_maximum_length FROM information_schema.columns WHERE table_name = 't'")
            .await,
        vec![vec![Some("8".into())]]
    );
}

#[tokio::test]
async fn iam_role_must_be_a_role_arn_or_default_and_the_clusters_role_when_configured() {
    let d = db().await;
    d.exec("CREATE TABLE t (id int)").await.unwrap();
    d.put("f.csv", b"1\n".to_vec()).await;
    for bad in [
        "redshift-copy",
        "arn:aws:iam::1234:role/r",
        "arn:aws:iam::123456789012:user/u",
    ] {
        let (code, message) = refused(
            &d,
            &format!("COPY t FROM '{}' IAM_ROLE '{bad}' CSV", d.url("f.csv")),
        )
        .await;
        assert_eq!(code, "XX000");
        assert!(message.starts_with("Invalid IAM_ROLE ARN"), "{message}");
    }
    d.exec(&format!(
        "COPY t FROM '{}' IAM_ROLE default CSV",
        d.url("f.csv")
    ))
    .await
    .unwrap();
    // An emulator that knows the stack's role refuses any other.
    let role = "arn:aws:iam::123456789012:role/stack-copy";
    let strict = testkit::redshift::RedshiftEmulator::start(testkit::redshift::EmulatorConfig {
        backend_host: d.stack.warehouse.host().to_string(),
        backend_port: d.stack.warehouse.port(),
        backend_user: d.stack.warehouse.user().to_string(),
        s3: d.stack.moto.s3_client().await,
        serverless: false,
        iam_role: Some(role.into()),
        slices: Some(testkit::redshift::DEFAULT_SLICES),
        tls: None,
        require_ssl: false,
    })
    .await
    .unwrap();
    let rs = testkit::pg::connect_url(&strict.url(&d.name))
        .await
        .unwrap();
    let e = rs
        .batch_execute(&format!("COPY t FROM '{}' {ROLE} CSV", d.url("f.csv")))
        .await
        .unwrap_err();
    let (code, message) = error_parts(e);
    assert_eq!(code, "XX000");
    assert!(
        message.ends_with(
            "is not authorized to assume IAM Role arn:aws:iam::123456789012:role/redshift-copy"
        ),
        "{message}"
    );
    rs.batch_execute(&format!(
        "COPY t FROM '{}' IAM_ROLE '{role}' CSV",
        d.url("f.csv")
    ))
    .await
    .unwrap();
    assert_eq!(d.count("t").await, 2);
}

#[tokio::test]
async fn varbyte_and_input_row_limits() {
    let d = db().await;
    let (code, _) = refused(&d, "CREATE TABLE v (b varbyte(16777217))").await;
    assert_eq!(code, "22023");
    let (code, _) = refused(&d, "CREATE TABLE v (s varchar(65536))").await;
    assert_eq!(code, "22023");
    // VARBYTE(n) holds n bytes, in the table and in a stage made LIKE it.
    d.exec("CREATE TABLE vb (b varbyte(2)); CREATE TEMP TABLE stage (LIKE vb)")
        .await
        .unwrap();
    d.put("vb.csv", b"\"0a0b\"\n\"0a0b0c\"\n".to_vec()).await;
    for table in ["vb", "stage"] {
        let (code, _) = refused(
            &d,
            &format!("COPY {table} FROM '{}' {ROLE} CSV", d.url("vb.csv")),
        )
        .await;
        assert_eq!(code, "XX000", "{table}");
    }
    let last = d
        .texts(&format!(
            "SELECT line_number, trim(colname), err_code FROM stl_load_errors WHERE trim(filename) = '{}'",
            d.url("vb.csv")
        ))
        .await;
    assert_eq!(
        last,
        vec![vec![Some("2".into()), Some("b".into()), Some("1204".into())]; 2]
    );
    let (code, _) = refused(&d, "INSERT INTO vb VALUES ('abc'::varbyte)").await;
    assert_eq!(code, "23514");
    d.exec("CREATE TABLE t (a varchar(max), b varchar(max))")
        .await
        .unwrap();
    // Each value fits its column, the row does not fit 4 MB.
    let half = "x".repeat(2 * 1024 * 1024);
    d.put("big.csv", format!("\"{half}\",\"{half}\"\n").into_bytes())
        .await;
    let (code, _) = refused(
        &d,
        &format!("COPY t FROM '{}' {ROLE} CSV", d.url("big.csv")),
    )
    .await;
    assert_eq!(code, "XX000");
    let last = d
        .texts("SELECT err_code, trim(err_reason) FROM stl_load_errors ORDER BY starttime DESC LIMIT 1")
        .await;
    assert!(last[0][1].as_deref().unwrap().contains("4 MB"), "{last:?}");
}

#[tokio::test]
async fn real_double_time_and_numeric_values_are_checked() {
    let d = db().await;
    d.exec("CREATE TABLE t (r real, f double precision, tm time, tz timetz, n decimal(10,2))")
        .await
        .unwrap();
    d.put(
        "ok.csv",
        b"1.5,-1.0E4,04:05:06.789,04:05:06+02,12.34\n".to_vec(),
    )
    .await;
    d.exec(&format!("COPY t FROM '{}' {ROLE} CSV", d.url("ok.csv")))
        .await
        .unwrap();
    for (file, body, col) in [
        ("a.csv", "1e39,1,04:05,04:05,1\n", "r"),
        ("b.csv", "1,1;5,04:05,04:05,1\n", "f"),
        ("c.csv", "1,1,allballs,04:05,1\n", "tm"),
        ("d.csv", "1,1,04:05,now,1\n", "tz"),
        ("e.csv", "1,1,04:05,04:05,NaN\n", "n"),
    ] {
        d.put(file, body.as_bytes().to_vec()).await;
        let (code, _) = refused(&d, &format!("COPY t FROM '{}' {ROLE} CSV", d.url(file))).await;
        assert_eq!(code, "XX000", "{file}");
        let last = d
            .texts(&format!(
                "SELECT trim(colname) FROM stl_load_errors WHERE trim(filename) = '{}'",
                d.url(file)
            ))
            .await;
        assert_eq!(last, vec![vec![Some(col.to_string())]], "{file}");
    }
    assert_eq!(d.count("t").await, 1);
}

#[tokio::test]
async fn drop_table_with_a_dependent_view_fails_unless_cascade() {
    let d = db().await;
    d.exec("CREATE TABLE t (a int); CREATE VIEW v AS SELECT a FROM t")
        .await
        .unwrap();
    let (code, message) = refused(&d, "DROP TABLE t").await;
    assert_eq!(code, "2BP01");
    assert!(message.contains("other objects depend on it"), "{message}");
    d.exec("DROP TABLE t CASCADE").await.unwrap();
    assert_eq!(
        d.texts("SELECT count(*) FROM pg_views WHERE viewname = 'v'")
            .await,
        vec![vec![Some("0".into())]]
    );
    d.exec("CREATE TABLE t (a int)").await.unwrap();
    let (code, _) = refused(
        &d,
        "CREATE VIEW lb AS SELECT a FROM public.t WITH NO SCHEMA BINDING",
    )
    .await;
    assert_eq!(code, "0A000");
}
