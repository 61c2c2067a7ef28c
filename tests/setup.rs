//! `setup` against a real source PostgreSQL and the Redshift emulator: type mapping on
//! every supported type, key and mode guessing, schema evolution, odd identifiers.

use chrono::Utc;
use redshift_loader::config::{CopyMode, TableRef};
use redshift_loader::setup::plan::LateCommits;
use redshift_loader::setup::{self, Decisions, Options, Outcome, DECISIONS, SETUP_ERROR};

use crate::support::{text, World};

async fn run(w: &World, job: &redshift_loader::config::Job, options: Options) -> Vec<Outcome> {
    setup::run(&w.app, job, &options, Utc::now()).await.unwrap()
}

fn ok(outcome: &Outcome) -> &setup::TablePlan {
    match &outcome.result {
        Ok(plan) => plan,
        Err(e) => panic!("setup of {} failed: {e}", outcome.table),
    }
}

fn err(outcome: &Outcome) -> String {
    match &outcome.result {
        Ok(_) => panic!("setup of {} should have failed", outcome.table),
        Err(e) => e.to_string(),
    }
}

/// `(column, type)` of a table as the PostgreSQL behind the emulator stores it.
async fn stored_columns(w: &World, schema: &str, table: &str) -> Vec<(String, String)> {
    w.warehouse()
        .await
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&schema, &table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn stored_decisions(w: &World, job: &str, table: &str) -> Option<Decisions> {
    w.app
        .store
        .get_table_document(job, &table.parse().unwrap(), DECISIONS)
        .await
        .unwrap()
        .map(|d| serde_json::from_value(d).unwrap())
}

const EVERY_TYPE: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN short_text AS varchar(10);
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE TABLE public.every_type (
  id bigserial PRIMARY KEY,
  s smallint, i integer, b bigint, ser serial, sser smallserial,
  n12 numeric(12,2), n38 numeric(38,0), nwide numeric(50,5), nfree numeric,
  r real, d double precision, flag boolean,
  c char(3), vc varchar(20), vfree varchar, t text,
  dt date, tm time, tmtz timetz, ts timestamp, tstz timestamptz,
  iv interval, u uuid, j json, jb jsonb, arr integer[], tarr text[],
  bin bytea, ip inet, net cidr, mac macaddr, mac8 macaddr8, cash money,
  m mood, dom short_text, pos positive,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX every_type_updated_at ON every_type (updated_at);
"#;

/// What each column becomes: the Redshift type setup chooses, and how the emulator's
/// PostgreSQL stores that type (SUPER is jsonb there, VARBYTE is bytea).
const EVERY_TYPE_EXPECTED: &[(&str, &str, &str)] = &[
    ("id", "BIGINT", "bigint"),
    ("s", "SMALLINT", "smallint"),
    ("i", "INTEGER", "integer"),
    ("b", "BIGINT", "bigint"),
    ("ser", "INTEGER", "integer"),
    ("sser", "SMALLINT", "smallint"),
    ("n12", "DECIMAL(12,2)", "numeric(12,2)"),
    ("n38", "DECIMAL(38,0)", "numeric(38,0)"),
    ("nwide", "DECIMAL(38,5)", "numeric(38,5)"),
    ("nfree", "DECIMAL(38,10)", "numeric(38,10)"),
    ("r", "REAL", "real"),
    ("d", "DOUBLE PRECISION", "double precision"),
    ("flag", "BOOLEAN", "boolean"),
    ("c", "VARCHAR(12)", "character varying(12)"),
    ("vc", "VARCHAR(80)", "character varying(80)"),
    ("vfree", "VARCHAR(65535)", "character varying(65535)"),
    ("t", "VARCHAR(65535)", "character varying(65535)"),
    ("dt", "DATE", "date"),
    ("tm", "TIME", "time without time zone"),
    ("tmtz", "TIMETZ", "time with time zone"),
    ("ts", "TIMESTAMP", "timestamp without time zone"),
    ("tstz", "TIMESTAMPTZ", "timestamp with time zone"),
    ("iv", "VARCHAR(80)", "character varying(80)"),
    ("u", "VARCHAR(36)", "character varying(36)"),
    ("j", "SUPER", "jsonb"),
    ("jb", "SUPER", "jsonb"),
    ("arr", "SUPER", "jsonb"),
    ("tarr", "SUPER", "jsonb"),
    ("bin", "VARBYTE(1024000)", "bytea"),
    ("ip", "VARCHAR(43)", "character varying(43)"),
    ("net", "VARCHAR(43)", "character varying(43)"),
    ("mac", "VARCHAR(17)", "character varying(17)"),
    ("mac8", "VARCHAR(23)", "character varying(23)"),
    ("cash", "DECIMAL(19,2)", "numeric(19,2)"),
    ("m", "VARCHAR(63)", "character varying(63)"),
    ("dom", "VARCHAR(40)", "character varying(40)"),
    ("pos", "INTEGER", "integer"),
    ("updated_at", "TIMESTAMPTZ", "timestamp with time zone"),
];

#[tokio::test]
async fn every_supported_type_gets_a_redshift_column_that_holds_it() {
    let w = World::new().await;
    w.source().await.batch_execute(EVERY_TYPE).await.unwrap();
    let job = w.apply("types", "  - source: public.every_type\n").await;
    let outcomes = run(&w, &job, Options::default()).await;
    let plan = ok(&outcomes[0]);
    let d = &plan.decisions;
    assert_eq!(d.destination, TableRef::new("analytics", "every_type"));
    let chosen: Vec<(&str, &str)> = d
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.redshift_type.as_str()))
        .collect();
    let expected: Vec<(&str, &str)> = EVERY_TYPE_EXPECTED
        .iter()
        .map(|(c, t, _)| (*c, *t))
        .collect();
    assert_eq!(chosen, expected);

    let stored = stored_columns(&w, "analytics", "every_type").await;
    let expected: Vec<(String, String)> = EVERY_TYPE_EXPECTED
        .iter()
        .map(|(c, _, pg)| (c.to_string(), pg.to_string()))
        .collect();
    assert_eq!(stored, expected);

    // Keys, mode, warnings, and the decisions stored for the runs.
    assert_eq!(d.copy_mode.value, CopyMode::InsertAndUpdate);
    assert_eq!(d.primary_key.value, vec!["id".to_string()]);
    assert_eq!(d.updated_key.value.as_deref(), Some("updated_at"));
    assert_eq!(d.dist_key.as_deref(), Some("id"));
    assert_eq!(d.sort_key, vec!["updated_at".to_string()]);
    assert!(
        d.warnings.iter().any(|w| w.contains("\"nfree\"")),
        "{:?}",
        d.warnings
    );
    assert!(
        d.warnings.iter().any(|w| w.contains("\"nwide\"")),
        "{:?}",
        d.warnings
    );
    assert_eq!(
        stored_decisions(&w, "types", "public.every_type")
            .await
            .as_ref(),
        Some(d)
    );
}

#[tokio::test]
async fn an_unsupported_type_names_table_column_and_remedies_and_the_remedies_work() {
    let w = World::new().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE docs (id int PRIMARY KEY, body xml, p point);
             CREATE TABLE fine (id int PRIMARY KEY)",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            "unsupported",
            "  - source: public.docs\n  - source: public.fine\n",
        )
        .await;
    let outcomes = run(&w, &job, Options::default()).await;
    let message = err(&outcomes[0]);
    assert!(message.starts_with("table public.docs:"), "{message}");
    assert!(
        message.contains("column \"body\" has type xml"),
        "{message}"
    );
    assert!(message.contains("exclude_columns"), "{message}");
    assert!(message.contains("column_casts"), "{message}");
    assert!(
        message.contains("column \"p\" has type point"),
        "both problems at once: {message}"
    );
    // The other table went ahead; the bad one's error is stored for `status`.
    ok(&outcomes[1]);
    let stored_error = w
        .app
        .store
        .get_table_document("unsupported", &"public.docs".parse().unwrap(), SETUP_ERROR)
        .await
        .unwrap()
        .unwrap();
    assert!(stored_error["message"].as_str().unwrap().contains("xml"));
    assert!(stored_columns(&w, "analytics", "docs").await.is_empty());

    // Cast one, exclude the other: setup succeeds and the stored error is cleared.
    let mut fixed = job.clone();
    fixed.tables[0]
        .column_casts
        .insert("body".into(), "text".into());
    fixed.tables[0].exclude_columns.push("p".into());
    let outcomes = run(&w, &fixed, Options::default()).await;
    let plan = ok(&outcomes[0]);
    let body = plan
        .decisions
        .columns
        .iter()
        .find(|c| c.name == "body")
        .unwrap();
    assert_eq!(body.redshift_type, "VARCHAR(65535)");
    assert!(body.select.contains("::text"), "{}", body.select);
    assert_eq!(
        stored_columns(&w, "analytics", "docs").await,
        vec![
            ("id".to_string(), "integer".to_string()),
            ("body".to_string(), "character varying(65535)".to_string())
        ]
    );
    assert!(w
        .app
        .store
        .get_table_document("unsupported", &"public.docs".parse().unwrap(), SETUP_ERROR)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn keys_and_copy_mode_are_guessed_from_the_catalog() {
    let w = World::new().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE orders (id bigserial PRIMARY KEY, total numeric(10,2), updated_at timestamptz NOT NULL);
             CREATE INDEX ON orders (updated_at);
             CREATE TABLE events (id bigserial PRIMARY KEY, name text, created_at timestamptz);
             CREATE TABLE accounts (code text NOT NULL, region text, modified_at timestamp);
             CREATE UNIQUE INDEX accounts_code ON accounts (code);
             CREATE INDEX ON accounts (modified_at);
             CREATE TABLE tokens (id uuid PRIMARY KEY, value text);
             CREATE TABLE log_lines (line text, at timestamptz);
             CREATE TABLE slow (id int PRIMARY KEY, updated_at timestamptz NOT NULL);
             CREATE TABLE set_in_job (a int NOT NULL, b int NOT NULL, changed bigint NOT NULL);",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            "guess",
            "  - source: public.orders\n  - source: public.events\n  - source: public.accounts\n  \
             - source: public.tokens\n  - source: public.log_lines\n  - source: public.slow\n  \
             - source: public.set_in_job\n    primary_key: [a, b]\n    updated_key: changed\n",
        )
        .await;
    let outcomes = run(&w, &job, Options::default()).await;
    let got = |i: usize| {
        let d = &ok(&outcomes[i]).decisions;
        (
            d.copy_mode.value,
            d.primary_key.value.join(","),
            d.updated_key.value.clone().unwrap_or_default(),
        )
    };
    assert_eq!(
        got(0),
        (CopyMode::InsertAndUpdate, "id".into(), "updated_at".into())
    );
    assert_eq!(got(1), (CopyMode::InsertOnly, "id".into(), "".into()));
    // modified_at allows NULL: not chosen, so the text key leaves only a full copy.
    assert_eq!(got(2), (CopyMode::FullDataSync, "code".into(), "".into()));
    assert!(ok(&outcomes[2])
        .decisions
        .primary_key
        .why
        .contains("accounts_code"));
    assert!(ok(&outcomes[2])
        .decisions
        .warnings
        .iter()
        .any(|w| w.contains("\"modified_at\" looks like an updated key but allows NULL")));
    assert_eq!(got(3), (CopyMode::FullDataSync, "id".into(), "".into()));
    assert!(ok(&outcomes[3])
        .decisions
        .copy_mode
        .why
        .contains("not sequential"));
    assert_eq!(got(4), (CopyMode::FullDataSync, "".into(), "".into()));
    // An updated_at without an index is not chosen: it would scan production each run.
    assert_eq!(got(5), (CopyMode::InsertOnly, "id".into(), "".into()));
    assert!(ok(&outcomes[5])
        .decisions
        .warnings
        .iter()
        .any(|w| w.contains("\"updated_at\" looks like an updated key but has no index")));
    // What the job sets wins, with warnings about what the catalog cannot back up.
    assert_eq!(
        got(6),
        (CopyMode::InsertAndUpdate, "a,b".into(), "changed".into())
    );
    let warnings = &ok(&outcomes[6]).decisions.warnings;
    assert!(
        warnings.iter().any(|w| w.contains("no unique index")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("has no index")),
        "{warnings:?}"
    );
    // Composite key: no dist key, sorted by the updated key.
    assert_eq!(ok(&outcomes[6]).decisions.dist_key, None);
    assert_eq!(
        ok(&outcomes[6]).decisions.sort_key,
        vec!["changed".to_string()]
    );
}

#[tokio::test]
async fn impossible_keys_are_refused_with_what_to_do() {
    let w = World::new().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE heap (note text, at text); CREATE TABLE heap2 (note text, at text)",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            "refused",
            "  - source: public.heap\n    copy_mode: INSERT_AND_UPDATE\n  \
             - source: public.heap2\n    updated_key: at\n    primary_key: nope\n",
        )
        .await;
    let outcomes = run(&w, &job, Options::default()).await;
    let first = err(&outcomes[0]);
    assert!(first.contains("INSERT_AND_UPDATE merges on the primary key, and the table has none; set primary_key, or use FULL_DATA_SYNC"), "{first}");
    assert!(first.contains("set updated_key"), "{first}");
    let second = err(&outcomes[1]);
    assert!(
        second.contains("primary_key: the source table has no column \"nope\""),
        "{second}"
    );
    assert!(
        second.contains("updated_key \"at\" has type text"),
        "{second}"
    );
}

#[tokio::test]
async fn setup_is_idempotent_and_dry_run_changes_nothing() {
    let w = World::new().await;
    w.source()
        .await
        .batch_execute("CREATE TABLE items (id serial PRIMARY KEY, name varchar(50))")
        .await
        .unwrap();
    let job = w.apply("idem", "  - source: public.items\n").await;

    let dry = run(
        &w,
        &job,
        Options {
            dry_run: true,
            ..Options::default()
        },
    )
    .await;
    let statements = &ok(&dry[0]).statements;
    assert_eq!(statements[0], "CREATE SCHEMA IF NOT EXISTS \"analytics\"");
    assert!(
        statements[1].starts_with("CREATE TABLE IF NOT EXISTS \"analytics\".\"items\""),
        "{statements:?}"
    );
    assert!(stored_columns(&w, "analytics", "items").await.is_empty());
    assert!(stored_decisions(&w, "idem", "public.items").await.is_none());

    let first = run(&w, &job, Options::default()).await;
    assert_eq!(
        ok(&first[0]).changes,
        vec!["create table analytics.items".to_string()]
    );
    let second = run(&w, &job, Options::default()).await;
    assert!(
        ok(&second[0]).statements.is_empty(),
        "{:?}",
        ok(&second[0]).statements
    );
    assert!(ok(&second[0]).changes.is_empty());
    assert_eq!(ok(&first[0]).decisions, ok(&second[0]).decisions);
    assert_eq!(stored_columns(&w, "analytics", "items").await.len(), 2);
}

#[tokio::test]
async fn schema_evolution_adds_widens_keeps_dropped_and_stops_on_type_changes() {
    let w = World::new().await;
    let src = w.source().await;
    src.batch_execute(
        "CREATE TABLE people (id int PRIMARY KEY, name varchar(10), age int, nick text)",
    )
    .await
    .unwrap();
    let job = w.apply("evolve", "  - source: public.people\n").await;
    ok(&run(&w, &job, Options::default()).await[0]);

    src.batch_execute(
        "ALTER TABLE people ADD COLUMN email text, ADD COLUMN score numeric(5,1);
         ALTER TABLE people ALTER COLUMN name TYPE varchar(30);
         ALTER TABLE people DROP COLUMN nick;",
    )
    .await
    .unwrap();
    let outcomes = run(&w, &job, Options::default()).await;
    let plan = ok(&outcomes[0]);
    assert_eq!(
        plan.changes,
        vec![
            "widen column \"name\" from VARCHAR(40) to VARCHAR(120)".to_string(),
            "add column \"email\" VARCHAR(65535)".to_string(),
            "add column \"score\" DECIMAL(5,1)".to_string(),
        ]
    );
    assert!(plan
        .decisions
        .warnings
        .iter()
        .any(|w| w == "column \"nick\" no longer exists at the source; it stays in Redshift and new rows leave it NULL"),
        "{:?}", plan.decisions.warnings);
    let nick = plan
        .decisions
        .columns
        .iter()
        .find(|c| c.name == "nick")
        .unwrap();
    assert!(nick.dropped);
    assert_eq!(plan.decisions.live_columns().count(), 5);
    assert_eq!(
        stored_columns(&w, "analytics", "people").await,
        vec![
            ("id".into(), "integer".into()),
            ("name".into(), "character varying(120)".into()),
            ("age".into(), "integer".into()),
            ("nick".into(), "character varying(65535)".into()),
            ("email".into(), "character varying(65535)".into()),
            ("score".into(), "numeric(5,1)".into()),
        ]
    );

    // A type Redshift cannot change in place stops the table with what to do.
    src.batch_execute("ALTER TABLE people ALTER COLUMN age TYPE bigint")
        .await
        .unwrap();
    let message = err(&run(&w, &job, Options::default()).await[0]);
    assert!(message.contains("column \"age\" changed type at the source: it was integer (INTEGER in Redshift) and is now bigint (BIGINT)"), "{message}");
    assert!(message.contains("column_casts (age: integer)"), "{message}");
    assert!(
        message.contains("--table public.people --rebuild"),
        "{message}"
    );

    // Both remedies work: casting back...
    let mut cast = job.clone();
    cast.tables[0]
        .column_casts
        .insert("age".into(), "integer".into());
    ok(&run(&w, &cast, Options::default()).await[0]);
    // ...or rebuilding, which recreates the table with the new type.
    let rebuilt = run(
        &w,
        &job,
        Options {
            tables: vec!["public.people".parse().unwrap()],
            rebuild: true,
            ..Options::default()
        },
    )
    .await;
    assert_eq!(
        ok(&rebuilt[0]).changes,
        vec!["create table analytics.people".to_string()]
    );
    let stored = stored_columns(&w, "analytics", "people").await;
    assert!(
        stored.contains(&("age".into(), "bigint".into())),
        "{stored:?}"
    );
    assert!(!stored.iter().any(|(c, _)| c == "nick"), "{stored:?}");
}

#[tokio::test]
async fn odd_identifiers_are_quoted_everywhere_and_long_names_refused() {
    let w = World::new().await;
    w.source()
        .await
        .batch_execute(
            r#"CREATE SCHEMA "Sales Data";
               CREATE TABLE "Sales Data"."Order ""Items""" (
                 "Id" int PRIMARY KEY, "select" text, "x""y" int, "Name With Space" text,
                 "ünïcödé" text, "UpdatedAt" timestamptz NOT NULL);
               CREATE INDEX ON "Sales Data"."Order ""Items""" ("UpdatedAt");
               CREATE TABLE "Clash" ("Name" text, "name" text);
               CREATE TABLE long_one (id int);"#,
        )
        .await
        .unwrap();
    let long = "x".repeat(128);
    let job = w
        .apply(
            "odd",
            &format!(
                "  - source: '\"Sales Data\".\"Order \"\"Items\"\"\"'\n  \
                 - source: public.\"Clash\"\n  \
                 - source: public.long_one\n    destination: {long}\n"
            ),
        )
        .await;
    let outcomes = run(&w, &job, Options::default()).await;
    let d = &ok(&outcomes[0]).decisions;
    assert_eq!(d.destination, TableRef::new("analytics", "order \"items\""));
    assert_eq!(d.updated_key.value.as_deref(), Some("UpdatedAt"));
    assert_eq!(
        stored_columns(&w, "analytics", "order \"items\"").await,
        vec![
            ("id".into(), "integer".into()),
            ("select".into(), "character varying(65535)".into()),
            ("x\"y".into(), "integer".into()),
            ("name with space".into(), "character varying(65535)".into()),
            ("ünïcödé".into(), "character varying(65535)".into()),
            ("updatedat".into(), "timestamp with time zone".into()),
        ]
    );
    let clash = err(&outcomes[1]);
    assert!(
        clash.contains("columns \"Name\" and \"name\" both become \"name\""),
        "{clash}"
    );
    let long_err = err(&outcomes[2]);
    assert!(long_err.contains("127"), "{long_err}");
}

#[tokio::test]
async fn cli_setup_prints_decisions_and_dry_run_ddl() {
    let w = World::new().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE orders (id bigserial PRIMARY KEY, total numeric, updated_at timestamptz NOT NULL);
             CREATE INDEX ON orders (updated_at);",
        )
        .await
        .unwrap();
    w.apply("cli", "  - source: public.orders\n").await;

    let out = w.cli(&["setup", "cli", "--dry-run"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("CREATE TABLE IF NOT EXISTS \"analytics\".\"orders\""),
        "{stdout}"
    );
    assert!(stored_columns(&w, "analytics", "orders").await.is_empty());

    let out = w.cli(&["setup", "cli"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for needle in [
        "INSERT_AND_UPDATE",
        "updated_at",
        "create table analytics.orders",
        "DECIMAL(38,10)",
        "warning: column \"total\"",
        "late commits: transaction ids (exact: each run first loads the rows behind its mark",
        "warning: no index at the source starts with (\"updated_at\", \"id\")",
    ] {
        assert!(stdout.contains(needle), "{needle} missing from:\n{stdout}");
    }
    assert_eq!(stored_columns(&w, "analytics", "orders").await.len(), 3);

    let out = w.cli(&["--json", "setup", "cli"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        json["tables"][0]["decisions"]["late_commits"]["value"], "transaction_ids",
        "{stdout}"
    );

    let out = w.cli(&["setup", "cli", "--table", "public.nope"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("job cli has no table public.nope; its tables are: public.orders"),
        "{stderr}"
    );
}

#[tokio::test]
async fn nullable_key_parts_set_in_the_job_are_refused_naming_the_column() {
    let w = World::new().await;
    let src = w.source().await;
    src.batch_execute(
        "CREATE TABLE codes (code text, name text, updated_at timestamptz NOT NULL);
         CREATE UNIQUE INDEX ON codes (code);
         CREATE INDEX ON codes (updated_at, code);
         CREATE TABLE tickets (id int PRIMARY KEY, updated_at timestamptz);
         CREATE INDEX ON tickets (updated_at, id);",
    )
    .await
    .unwrap();
    let job = w
        .apply(
            "nullable",
            "  - source: public.codes\n    primary_key: code\n  \
             - source: public.tickets\n    updated_key: updated_at\n",
        )
        .await;
    let outcomes = run(&w, &job, Options::default()).await;
    assert_eq!(
        err(&outcomes[0]),
        "table public.codes: primary key column \"code\" allows NULL; the merge cannot match NULL keys: \
         add NOT NULL at the source (ALTER TABLE \"public\".\"codes\" ALTER COLUMN \"code\" SET NOT NULL), \
         or choose other columns with primary_key"
    );
    assert_eq!(
        err(&outcomes[1]),
        "table public.tickets: updated key \"updated_at\" allows NULL; rows where it is NULL would never be found: \
         add NOT NULL at the source (ALTER TABLE \"public\".\"tickets\" ALTER COLUMN \"updated_at\" SET NOT NULL), \
         or choose another column with updated_key"
    );
    assert!(stored_columns(&w, "analytics", "codes").await.is_empty());

    // The remedy the message gives works.
    src.batch_execute(
        "ALTER TABLE \"public\".\"codes\" ALTER COLUMN \"code\" SET NOT NULL;
         ALTER TABLE \"public\".\"tickets\" ALTER COLUMN \"updated_at\" SET NOT NULL;",
    )
    .await
    .unwrap();
    let outcomes = run(&w, &job, Options::default()).await;
    assert_eq!(ok(&outcomes[0]).decisions.primary_key.value, vec!["code"]);
    assert_eq!(
        ok(&outcomes[1]).decisions.updated_key.value.as_deref(),
        Some("updated_at")
    );
}

#[tokio::test]
async fn a_nullable_guessed_updated_key_is_not_chosen_and_the_warning_says_why() {
    let w = World::new().await;
    let src = w.source().await;
    src.batch_execute(
        "CREATE TABLE notes (id bigserial PRIMARY KEY, body text, updated_at timestamptz);
         CREATE INDEX ON notes (updated_at, id);",
    )
    .await
    .unwrap();
    let job = w.apply("guessnull", "  - source: public.notes\n").await;
    let outcomes = run(&w, &job, Options::default()).await;
    let d = &ok(&outcomes[0]).decisions;
    assert_eq!(d.copy_mode.value, CopyMode::InsertOnly);
    assert_eq!(d.updated_key.value, None);
    assert_eq!(
        d.warnings,
        vec![
            "column \"updated_at\" looks like an updated key but allows NULL, so it was not chosen \
             (rows where it is NULL would never be found); to use it, add NOT NULL at the source \
             (ALTER TABLE \"public\".\"notes\" ALTER COLUMN \"updated_at\" SET NOT NULL) and run setup again"
                .to_string()
        ]
    );

    // With NOT NULL it is chosen.
    src.batch_execute("ALTER TABLE notes ALTER COLUMN updated_at SET NOT NULL")
        .await
        .unwrap();
    let outcomes = run(&w, &job, Options::default()).await;
    let d = &ok(&outcomes[0]).decisions;
    assert_eq!(d.copy_mode.value, CopyMode::InsertAndUpdate);
    assert_eq!(d.updated_key.value.as_deref(), Some("updated_at"));
}

#[tokio::test]
async fn updated_keys_are_judged_by_their_base_type() {
    let w = World::new().await;
    w.source()
        .await
        .batch_execute(
            "CREATE DOMAIN stamp AS timestamptz;
             CREATE DOMAIN audit_stamp AS stamp;
             CREATE TABLE dom_set (id int PRIMARY KEY, changed audit_stamp NOT NULL);
             CREATE INDEX ON dom_set (changed, id);
             CREATE TABLE dom_guessed (id int PRIMARY KEY, updated_at stamp NOT NULL);
             CREATE INDEX ON dom_guessed (updated_at, id);
             CREATE TABLE by_date (id int PRIMARY KEY, day date NOT NULL);
             CREATE INDEX ON by_date (day, id);
             CREATE TABLE by_int2 (id int PRIMARY KEY, version smallint NOT NULL);
             CREATE INDEX ON by_int2 (version, id);
             CREATE TABLE by_int4 (id int PRIMARY KEY, version integer NOT NULL);
             CREATE INDEX ON by_int4 (version, id);
             CREATE TABLE by_int8 (id int PRIMARY KEY, version bigint NOT NULL);
             CREATE INDEX ON by_int8 (version, id);
             CREATE TABLE by_numeric (id int PRIMARY KEY, version numeric(20,0) NOT NULL);
             CREATE INDEX ON by_numeric (version, id);",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            "basetypes",
            "  - source: public.dom_set\n    updated_key: changed\n  \
             - source: public.dom_guessed\n  \
             - source: public.by_date\n    updated_key: day\n  \
             - source: public.by_int2\n    updated_key: version\n  \
             - source: public.by_int4\n    updated_key: version\n  \
             - source: public.by_int8\n    updated_key: version\n  \
             - source: public.by_numeric\n    updated_key: version\n",
        )
        .await;
    let outcomes = run(&w, &job, Options::default()).await;
    let expected = [
        ("public.dom_set", "changed", "set in the job"),
        (
            "public.dom_guessed",
            "updated_at",
            "indexed stamp column with a usual name",
        ),
        ("public.by_date", "day", "set in the job"),
        ("public.by_int2", "version", "set in the job"),
        ("public.by_int4", "version", "set in the job"),
        ("public.by_int8", "version", "set in the job"),
        ("public.by_numeric", "version", "set in the job"),
    ];
    for (outcome, (table, key, why)) in outcomes.iter().zip(expected) {
        assert_eq!(outcome.table.to_string(), table);
        let d = &ok(outcome).decisions;
        assert_eq!(d.copy_mode.value, CopyMode::InsertAndUpdate, "{table}");
        assert_eq!(d.updated_key.value.as_deref(), Some(key), "{table}");
        assert_eq!(d.updated_key.why, why, "{table}");
        assert!(d.warnings.is_empty(), "{table}: {:?}", d.warnings);
    }
}

#[tokio::test]
async fn a_composite_index_is_advised_when_no_index_starts_with_the_chunk_order() {
    let w = World::new().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE alone (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL);
             CREATE INDEX ON alone (updated_at);
             CREATE TABLE together (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL);
             CREATE INDEX ON together (updated_at, id);
             CREATE TABLE longer (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL, kind text);
             CREATE INDEX ON longer (updated_at, id, kind);
             CREATE TABLE pair (a int, b int, updated_at timestamptz NOT NULL, PRIMARY KEY (a, b));
             CREATE INDEX ON pair (updated_at, b, a);
             CREATE TABLE unindexed (id bigint PRIMARY KEY, changed timestamptz NOT NULL);",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            "composite",
            "  - source: public.alone\n  - source: public.together\n  - source: public.longer\n  \
             - source: public.pair\n  - source: public.unindexed\n    updated_key: changed\n",
        )
        .await;
    let outcomes = run(&w, &job, Options::default()).await;
    let warnings = |i: usize| ok(&outcomes[i]).decisions.warnings.clone();
    assert_eq!(
        warnings(0),
        vec![
            "no index at the source starts with (\"updated_at\", \"id\"), so each chunk sorts its rows \
             after the index scan (measured: the source's COPY about 28 % slower on 2,000,000 rows): \
             CREATE INDEX CONCURRENTLY ON \"public\".\"alone\" (\"updated_at\", \"id\")"
                .to_string()
        ]
    );
    assert_eq!(warnings(1), Vec::<String>::new());
    assert_eq!(warnings(2), Vec::<String>::new());
    // The chunk orders by the primary key's columns in the key's order.
    assert_eq!(
        warnings(3),
        vec![
            "no index at the source starts with (\"updated_at\", \"a\", \"b\"), so each chunk sorts its rows \
             after the index scan (measured: the source's COPY about 28 % slower on 2,000,000 rows): \
             CREATE INDEX CONCURRENTLY ON \"public\".\"pair\" (\"updated_at\", \"a\", \"b\")"
                .to_string()
        ]
    );
    // No index at all: one warning, which suggests the composite index.
    assert_eq!(
        warnings(4),
        vec![
            "updated key \"changed\" has no index; every run scans the whole source table \
             (CREATE INDEX CONCURRENTLY ON \"public\".\"unindexed\" (\"changed\", \"id\"))"
                .to_string()
        ]
    );
}

#[tokio::test]
async fn decisions_say_which_protection_against_late_commits_each_table_has() {
    let w = World::new().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE base_orders (id bigint PRIMARY KEY, total int, updated_at timestamptz NOT NULL);
             CREATE INDEX ON base_orders (updated_at, id);
             CREATE VIEW recent_orders AS SELECT id, total, updated_at FROM base_orders;
             CREATE MATERIALIZED VIEW order_totals AS SELECT id, total FROM base_orders;",
        )
        .await
        .unwrap();
    let job = w
        .apply(
            "protection",
            "  - source: public.base_orders\n  \
             - source: public.recent_orders\n    copy_mode: INSERT_AND_UPDATE\n    primary_key: id\n    updated_key: updated_at\n  \
             - source: public.order_totals\n",
        )
        .await;
    let outcomes = run(&w, &job, Options::default()).await;
    let late = |i: usize| {
        let l = ok(&outcomes[i]).decisions.late_commits.clone().unwrap();
        (l.value, l.why)
    };
    assert_eq!(
        late(0),
        (
            LateCommits::TransactionIds,
            "exact: each run first loads the rows behind its mark written by transactions the previous read could not see \
             (xmin against its snapshot), looking back LOADER_CATCHUP_WINDOW (default 24h) of the first key"
                .into()
        )
    );
    assert_eq!(
        late(1),
        (
            LateCommits::Lookback,
            "the source is a view (no xmin): a late commit is caught only when LOADER_LOOKBACK_SECONDS is set; \
             point the job at the underlying table for exact capture"
                .into()
        )
    );
    assert_eq!(
        late(2),
        (
            LateCommits::NotNeeded,
            "not needed: every run copies the whole table".into()
        )
    );
    // What the runs read back, as stored.
    let stored = w
        .app
        .store
        .get_table_document(
            "protection",
            &"public.recent_orders".parse().unwrap(),
            DECISIONS,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored["late_commits"]["value"], "lookback");
}
