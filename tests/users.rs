//! The database users README.md tells operators to create, by its exact SQL (read from
//! the README, so the two cannot drift apart), are enough for setup and for runs in
//! every copy mode; and the source user cannot write.

use redshift_loader::config::CopyMode;
use redshift_loader::setup::{Decisions, DECISIONS};

use crate::support::{text, World};

/// The first ```sql block of README.md after `marker`.
fn readme_sql(marker: &str) -> String {
    let readme = include_str!("../README.md");
    let at = readme
        .find(marker)
        .unwrap_or_else(|| panic!("README.md has no {marker:?}"));
    let rest = &readme[at..];
    let open = rest.find("```sql\n").expect("an sql block follows") + "```sql\n".len();
    let close = rest[open..].find("```").expect("the sql block ends");
    rest[open..open + close].to_string()
}

/// `sql` with the README's placeholders filled in: the role, its password and the
/// databases (`shop` at the source, `dev` in Redshift) of this test.
fn fill(sql: &str, role: &str, database: (&str, &str)) -> String {
    let (placeholder, name) = database;
    sql.replace("loader", role)
        .replace("'…'", "'not-checked-on-loopback'")
        .replace(
            &format!("DATABASE {placeholder} "),
            &format!("DATABASE \"{name}\" "),
        )
}

async fn rows(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn the_readme_database_users_can_set_up_and_load_and_no_more() {
    let w = World::new().await;
    let (src_db, dw_db) = (w.names.source_db.clone(), w.names.warehouse_db.clone());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let role = format!("loader_{}", &suffix[..12]);

    // A table before the grants (GRANT ... ON ALL TABLES) ...
    let admin = w.source().await;
    admin
        .batch_execute(
            "CREATE TABLE orders (id bigserial PRIMARY KEY, total numeric(12,2),
                 updated_at timestamptz NOT NULL);
             CREATE INDEX ON orders (updated_at);
             INSERT INTO orders (total, updated_at)
                 SELECT i, now() - interval '2 hours' FROM generate_series(1, 200) i;",
        )
        .await
        .unwrap();
    let source_sql = readme_sql("**Source (PostgreSQL), read-only:**");
    assert!(
        source_sql.contains("GRANT SELECT ON ALL TABLES"),
        "{source_sql}"
    );
    admin
        .batch_execute(&fill(&source_sql, &role, ("shop", &src_db)))
        .await
        .unwrap_or_else(|e| panic!("the README's source SQL fails: {e:?}\n{source_sql}"));
    // ... and one after (ALTER DEFAULT PRIVILEGES), without keys: FULL_DATA_SYNC.
    admin
        .batch_execute(
            "CREATE TABLE later (code text, n integer);
             INSERT INTO later SELECT 'c' || i, i FROM generate_series(1, 50) i;",
        )
        .await
        .unwrap();

    // The Redshift user, created through the emulator as an administrator would.
    let (redshift_admin, connection) =
        tokio_postgres::connect(&w.redshift_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let redshift_sql = readme_sql("**Destination (Redshift), read-write in its schema:**");
    redshift_admin
        .batch_execute(&fill(&redshift_sql, &role, ("dev", &dw_db)))
        .await
        .unwrap_or_else(|e| panic!("the README's Redshift SQL fails: {e:?}\n{redshift_sql}"));

    // A job that connects as those users (loopback trusts them: no password needed).
    let as_role = |url: String| url.replacen("://postgres@", &format!("://{role}@"), 1);
    let (source_url, redshift_url) = (as_role(w.source_url()), as_role(w.redshift_url()));
    assert!(source_url.contains(&role) && redshift_url.contains(&role));
    let yaml = format!(
        "name: users\nsource:\n  url: {source_url}\ndestination:\n  url: {redshift_url}\n  \
         schema: shop\n  iam_role: arn:aws:iam::123456789012:role/redshift-copy\n\
         frequency: 300\ndeletes: reconcile\nreconcile_every: 0\n\
         tables:\n  - source: public.orders\n  - source: public.later\n"
    );
    w.apply_yaml(&yaml).await;

    let out = w.cli(&["--json", "setup", "users"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let out = w.cli(&["--json", "run", "users"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        report["tables"]
            .as_array()
            .is_some_and(|t| t.len() == 2 && t.iter().all(|t| t["ok"] == true)),
        "{report}"
    );
    for (table, mode) in [
        ("public.orders", CopyMode::InsertAndUpdate),
        ("public.later", CopyMode::FullDataSync),
    ] {
        let decisions = w
            .app
            .store
            .get_table_document("users", &table.parse().unwrap(), DECISIONS)
            .await
            .unwrap()
            .unwrap();
        let decisions: Decisions = serde_json::from_value(decisions).unwrap();
        assert_eq!(decisions.copy_mode.value, mode, "{table}");
    }

    // Changes load incrementally (a merge through a temporary stage table), and the
    // keyless table is copied again and swapped in (the user owns what setup created).
    admin
        .batch_execute(
            "UPDATE orders SET total = total + 1000, updated_at = now() - interval '1 hour'
                 WHERE id <= 20;
             INSERT INTO orders (total, updated_at) VALUES (7, now() - interval '1 hour');
             DELETE FROM orders WHERE id = 100;
             INSERT INTO later VALUES ('c51', 51);",
        )
        .await
        .unwrap();
    let out = w.cli(&["run", "users", "--force"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");

    let warehouse = w.warehouse().await;
    // The delete reached Redshift (deletes: reconcile, as the read-only user).
    assert_eq!(
        rows(&warehouse, "SELECT count(*) FROM shop.orders").await,
        200
    );
    // verify, as the same users: equal.
    let out = w.cli(&["verify", "users", "--table", "public.orders"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        rows(
            &warehouse,
            "SELECT count(*) FROM shop.orders WHERE total > 1000"
        )
        .await,
        20
    );
    assert_eq!(
        rows(&warehouse, "SELECT count(*) FROM shop.later").await,
        51
    );
    let owner: String = warehouse
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE schemaname = 'shop' AND tablename = 'later'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, role);

    // The source user reads, and cannot write even by mistake.
    let (reader, connection) = tokio_postgres::connect(&source_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    assert_eq!(rows(&reader, "SELECT count(*) FROM later").await, 51);
    let refused = reader
        .batch_execute("DELETE FROM orders")
        .await
        .expect_err("the source user wrote");
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION),
        "{refused:?}"
    );
}
