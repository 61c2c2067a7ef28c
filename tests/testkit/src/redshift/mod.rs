//! The Redshift emulator: a PostgreSQL wire-protocol proxy in front of a PostgreSQL
//! server that answers like Redshift for what the loader sends.
//!
//! Each client connection gets its own backend session (the client's database, the
//! configured backend user, `TimeZone=UTC`, `standard_conforming_strings=off` as in
//! Redshift). Messages are relayed as they are, except:
//! - simple `Query` and extended `Parse` statements go through [`sql::plan`]: Redshift
//!   DDL is rewritten into PostgreSQL DDL, PostgreSQL-only features are refused, and
//!   session values (`pg_last_copy_count()`) are substituted;
//! - `COPY ... FROM 's3://...'` (simple protocol) is carried out here: objects are read
//!   from S3 (moto), decompressed, parsed and checked with Redshift's rules, and
//!   streamed into the backend with `COPY ... FROM STDIN` inside the client's own
//!   session and transaction.
//!
//! Refusals and load failures are raised *by the backend* (a `DO` block raising the
//! SQLSTATE and message), so transaction state stays exactly PostgreSQL's. A load
//! failure first writes its row into `stl_load_errors` on a separate connection, so it
//! survives the rollback, as in Redshift.
//!
//! Shim objects live in each database's `public` schema and are installed on first
//! connection: `stl_load_errors`, `getdate()`, `json_parse()`, `json_serialize()`,
//! `is_valid_json()`, and an event trigger that gives every new or altered table a
//! row trigger counting VARCHAR lengths in bytes (Redshift) instead of characters.

pub mod load;
pub mod sql;
pub mod wire;

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

use load::{Column, Compression, CopySpec, CsvError, CsvReader, Record};
use sql::{Action, Refusal, Session};
use wire::Message;

#[derive(Debug)]
pub struct EmulatorConfig {
    pub backend_host: String,
    pub backend_port: u16,
    pub backend_user: String,
    pub s3: aws_sdk_s3::Client,
}

#[derive(Debug)]
pub struct RedshiftEmulator {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RedshiftEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    cfg: EmulatorConfig,
    /// Databases whose shims are installed; the lock serialises installation.
    installed: Mutex<HashMap<String, bool>>,
    copy_ids: AtomicI64,
}

impl RedshiftEmulator {
    /// Binds 127.0.0.1 on a free port and serves on the current runtime.
    pub async fn start(cfg: EmulatorConfig) -> Result<RedshiftEmulator> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            cfg,
            installed: Mutex::new(HashMap::new()),
            copy_ids: AtomicI64::new(1000),
        });
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, shared).await {
                        tracing::debug!(error = %format!("{e:#}"), "emulator session ended");
                    }
                });
            }
        });
        Ok(RedshiftEmulator { port, task })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{dbname}?sslmode=disable",
            self.port
        )
    }
}

/// Opens a backend session for `database` and reads it up to ReadyForQuery.
async fn backend_session(
    cfg: &EmulatorConfig,
    database: &str,
) -> Result<(TcpStream, Vec<Message>)> {
    let mut backend = TcpStream::connect((cfg.backend_host.as_str(), cfg.backend_port))
        .await
        .context("connecting to the backend PostgreSQL")?;
    backend.set_nodelay(true)?;
    let params = vec![
        ("user".to_string(), cfg.backend_user.clone()),
        ("database".to_string(), database.to_string()),
        (
            "options".to_string(),
            "-c TimeZone=UTC -c standard_conforming_strings=off -c escape_string_warning=off -c DateStyle=ISO,MDY".to_string(),
        ),
        (
            "application_name".to_string(),
            "redshift-emulator".to_string(),
        ),
    ];
    tokio::io::AsyncWriteExt::write_all(&mut backend, &wire::startup_packet(&params)).await?;
    let mut greeting = Vec::new();
    loop {
        let m = wire::read_message(&mut backend)
            .await?
            .context("the backend closed during start-up")?;
        let done = m.tag == b'Z' || m.tag == b'E';
        greeting.push(m);
        if done {
            return Ok((backend, greeting));
        }
    }
}

const SHIMS: &str = r#"
CREATE TABLE IF NOT EXISTS public.stl_load_errors (
  userid integer, slice integer, tbl integer, starttime timestamp, session integer,
  query integer, filename char(256), line_number bigint, colname char(127), type char(10),
  col_length char(10), position integer, raw_line char(1024), raw_field_value char(1024),
  err_code integer, err_reason char(100), is_partial integer, start_offset bigint);
CREATE OR REPLACE FUNCTION public.getdate() RETURNS timestamp LANGUAGE sql STABLE
  AS $f$ SELECT date_trunc('second', localtimestamp)::timestamp $f$;
CREATE OR REPLACE FUNCTION public.json_parse(text) RETURNS jsonb LANGUAGE sql IMMUTABLE STRICT
  AS $f$ SELECT $1::jsonb $f$;
CREATE OR REPLACE FUNCTION public.json_serialize(jsonb) RETURNS text LANGUAGE sql IMMUTABLE STRICT
  AS $f$ SELECT $1::text $f$;
CREATE OR REPLACE FUNCTION public.is_valid_json(text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE
  AS $f$ BEGIN PERFORM $1::jsonb; RETURN true; EXCEPTION WHEN others THEN RETURN false; END $f$;
CREATE OR REPLACE FUNCTION public.rs_emulator_install_checks(rel regclass) RETURNS void
LANGUAGE plpgsql AS $f$
DECLARE body text; fname text := 'rs_emulator_checks_' || rel::oid;
BEGIN
  SELECT string_agg(CASE WHEN atttypid = 'varchar'::regtype THEN
      format('IF octet_length(NEW.%I) > %s THEN RAISE EXCEPTION USING ERRCODE = ''22001'', MESSAGE = ''value too long for type character varying(%s)''; END IF;',
             attname, atttypmod - 4, atttypmod - 4)
    ELSE
      format('IF octet_length(NEW.%I) <> char_length(NEW.%I) THEN RAISE EXCEPTION USING ERRCODE = ''22021'', MESSAGE = ''value for type character(%s) holds a multibyte character, which Redshift CHAR cannot store''; END IF;',
             attname, attname, atttypmod - 4)
    END, ' ')
    INTO body
    FROM pg_attribute
   WHERE attrelid = rel AND attnum > 0 AND NOT attisdropped AND atttypmod > 4
     AND atttypid IN ('varchar'::regtype, 'bpchar'::regtype);
  EXECUTE format('CREATE OR REPLACE FUNCTION public.%I() RETURNS trigger LANGUAGE plpgsql AS $b$ BEGIN %s RETURN NEW; END $b$',
                 fname, coalesce(body, ''));
  EXECUTE format('CREATE OR REPLACE TRIGGER rs_emulator_checks BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION public.%I()',
                 rel, fname);
END $f$;
CREATE OR REPLACE FUNCTION public.rs_emulator_on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $f$
DECLARE obj record;
BEGIN
  FOR obj IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE object_type = 'table' LOOP
    IF EXISTS (SELECT 1 FROM pg_class WHERE oid = obj.objid AND relkind IN ('r', 'p')) THEN
      PERFORM public.rs_emulator_install_checks(obj.objid::regclass);
    END IF;
  END LOOP;
END $f$;
DROP EVENT TRIGGER IF EXISTS rs_emulator_on_ddl;
CREATE EVENT TRIGGER rs_emulator_on_ddl ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE')
  EXECUTE FUNCTION public.rs_emulator_on_ddl();
"#;

async fn install_shims(shared: &Shared, database: &str) -> Result<()> {
    let mut installed = shared.installed.lock().await;
    if installed.contains_key(database) {
        return Ok(());
    }
    let (mut backend, greeting) = backend_session(&shared.cfg, database).await?;
    if let Some(e) = greeting.iter().find(|m| m.tag == b'E') {
        // No such database, say: the client's own session will report it.
        tracing::debug!(error = ?wire::error_field(e, b'M'), "shims not installed");
        return Ok(());
    }
    let outcome = wire::run(&mut backend, SHIMS).await?;
    if let Some(e) = outcome.error {
        bail!(
            "installing the emulator's shims in {database}: {}",
            wire::error_field(&e, b'M').unwrap_or_default()
        );
    }
    installed.insert(database.to_string(), true);
    Ok(())
}

/// One client connection.
async fn serve(mut client: TcpStream, shared: Arc<Shared>) -> Result<()> {
    client.set_nodelay(true)?;
    let (mut code, mut body) = wire::read_startup(&mut client).await?;
    while code == wire::SSL_REQUEST || code == wire::GSSENC_REQUEST {
        tokio::io::AsyncWriteExt::write_all(&mut client, b"N").await?;
        (code, body) = wire::read_startup(&mut client).await?;
    }
    if code == 80877102 {
        // CancelRequest: pass it on; the key data is the backend's own.
        let mut backend =
            TcpStream::connect((shared.cfg.backend_host.as_str(), shared.cfg.backend_port)).await?;
        let mut packet = 16i32.to_be_bytes().to_vec();
        packet.extend_from_slice(&code.to_be_bytes());
        packet.extend_from_slice(&body);
        tokio::io::AsyncWriteExt::write_all(&mut backend, &packet).await?;
        return Ok(());
    }
    if code != wire::PROTOCOL_3 {
        bail!("unsupported protocol {code}");
    }
    let params = wire::startup_params(&body);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let database = get("database")
        .or_else(|| get("user"))
        .unwrap_or_else(|| "postgres".into());
    if let Err(e) = install_shims(&shared, &database).await {
        wire::write(
            &mut client,
            &[wire::error_response("XX000", &format!("{e:#}"))],
        )
        .await?;
        return Ok(());
    }
    let (backend, greeting) = backend_session(&shared.cfg, &database).await?;
    wire::write(&mut client, &greeting).await?;
    let mut session = Sess {
        client,
        backend,
        shared,
        database,
        status: b'I',
        values: Session::default(),
        last_parsed: None,
        array_statements: Default::default(),
        refused_until_sync: None,
    };
    session.run().await
}

struct Sess {
    client: TcpStream,
    backend: TcpStream,
    shared: Arc<Shared>,
    database: String,
    status: u8,
    values: Session,
    /// The statement named by the last Parse, until the backend describes it.
    last_parsed: Option<String>,
    /// Prepared statements whose parameters include an array type.
    array_statements: std::collections::HashSet<String>,
    /// Set when a Bind was refused: client messages are dropped until Sync.
    refused_until_sync: Option<Refusal>,
}

/// A load failure: what goes into `stl_load_errors` and the client's error.
struct LoadFailure {
    filename: String,
    line: u64,
    colname: String,
    col_type: String,
    raw_line: String,
    raw_value: String,
    code: i32,
    reason: String,
}

impl Sess {
    async fn run(&mut self) -> Result<()> {
        while let Some(m) = wire::read_message(&mut self.client).await? {
            if let Some(r) = self.refused_until_sync.clone() {
                if m.tag == b'S' {
                    self.refused_until_sync = None;
                    self.raise(&r).await?;
                    wire::write(&mut self.client, &[wire::ready_for_query(self.status)]).await?;
                }
                continue;
            }
            if m.tag == b'B' {
                let statement = m
                    .body
                    .split(|b| *b == 0)
                    .nth(1)
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .unwrap_or_default();
                if self.array_statements.contains(&statement) {
                    self.refused_until_sync = Some(Refusal {
                        code: "0A000",
                        message: "array parameters are not supported by Amazon Redshift; bind scalar values".into(),
                    });
                    continue;
                }
            }
            match m.tag {
                b'Q' => self.simple_query(&wire::query_text(&m)).await?,
                b'P' => self.parse(m).await?,
                b'S' => {
                    wire::write(&mut self.backend, &[m]).await?;
                    self.relay_until_ready().await?;
                }
                b'X' => {
                    let _ = wire::write(&mut self.backend, &[m]).await;
                    return Ok(());
                }
                b'd' | b'c' | b'f' => {
                    // Copy sub-protocol from the client: only reachable after a COPY
                    // FROM STDIN, which is refused.
                }
                _ => wire::write(&mut self.backend, &[m]).await?,
            }
        }
        Ok(())
    }

    /// Relays backend messages to the client up to and including ReadyForQuery.
    async fn relay_until_ready(&mut self) -> Result<()> {
        let mut batch = Vec::new();
        loop {
            let m = wire::read_message(&mut self.backend)
                .await?
                .context("the backend closed the connection")?;
            let ready = m.tag == b'Z';
            if ready {
                self.status = m.body.first().copied().unwrap_or(b'I');
            }
            if m.tag == b't' {
                // ParameterDescription of the statement just parsed.
                let types: Vec<u32> = m.body[2..]
                    .chunks(4)
                    .filter_map(|c| c.try_into().ok().map(u32::from_be_bytes))
                    .collect();
                if let Some(name) = self.last_parsed.take() {
                    if types.iter().any(|t| is_array_oid(*t)) {
                        self.array_statements.insert(name);
                    } else {
                        self.array_statements.remove(&name);
                    }
                }
            }
            m.encode_into(&mut batch);
            if ready || batch.len() > 64 * 1024 {
                tokio::io::AsyncWriteExt::write_all(&mut self.client, &batch).await?;
                batch.clear();
            }
            if ready {
                return Ok(());
            }
        }
    }

    /// Like [`Sess::relay_until_ready`] but holds back ReadyForQuery; returns whether
    /// an error was relayed.
    async fn relay_without_ready(&mut self) -> Result<bool> {
        let mut failed = false;
        loop {
            let m = wire::read_message(&mut self.backend)
                .await?
                .context("the backend closed the connection")?;
            if m.tag == b'Z' {
                self.status = m.body.first().copied().unwrap_or(b'I');
                return Ok(failed);
            }
            failed |= m.tag == b'E';
            wire::write(&mut self.client, &[m]).await?;
        }
    }

    /// `DO` text that makes the backend raise `code`/`message`.
    fn raise_sql(code: &str, message: &str) -> String {
        let message = message.replace("$rsm$", "$ rsm $");
        format!(
            "DO $rse$ BEGIN RAISE EXCEPTION USING ERRCODE = '{code}', MESSAGE = $rsm${message}$rsm$; END $rse$"
        )
    }

    async fn simple_query(&mut self, text: &str) -> Result<()> {
        let statements = sql::split_statements(text);
        if statements.is_empty() {
            wire::write(&mut self.backend, &[wire::query(text)]).await?;
            return self.relay_until_ready().await;
        }
        let actions: Vec<Action> = statements
            .iter()
            .map(|s| sql::plan(s, &self.values))
            .collect();
        if actions.iter().all(|a| matches!(a, Action::Forward(_))) {
            // One message, so PostgreSQL's implicit-transaction rules stay intact.
            let joined = actions
                .iter()
                .map(|a| match a {
                    Action::Forward(s) => s.as_str(),
                    _ => unreachable!(),
                })
                .collect::<Vec<_>>()
                .join(";\n");
            wire::write(&mut self.backend, &[wire::query(&joined)]).await?;
            return self.relay_until_ready().await;
        }
        // Statement by statement, stopping at the first error.
        for action in actions {
            let failed = match action {
                Action::Forward(s) => {
                    wire::write(&mut self.backend, &[wire::query(&s)]).await?;
                    self.relay_without_ready().await?
                }
                Action::Refuse(r) => self.raise(&r).await?,
                Action::Truncate(s) => {
                    self.implicit_commit().await?;
                    wire::write(&mut self.backend, &[wire::query(&s)]).await?;
                    self.relay_without_ready().await?
                }
                Action::Append { target, source } => self.append(&target, &source).await?,
                Action::CopyS3 {
                    table,
                    columns,
                    from,
                    options,
                } => self.copy_s3(&table, &columns, &from, &options).await?,
            };
            if failed {
                break;
            }
        }
        wire::write(&mut self.client, &[wire::ready_for_query(self.status)]).await
    }

    /// Has the backend raise a refusal; relays the error; returns true.
    async fn raise(&mut self, r: &Refusal) -> Result<bool> {
        let sql = Self::raise_sql(r.code, &r.message);
        wire::write(&mut self.backend, &[wire::query(&sql)]).await?;
        self.relay_without_ready().await?;
        Ok(true)
    }

    /// Redshift's TRUNCATE commits the open transaction first.
    async fn implicit_commit(&mut self) -> Result<()> {
        if self.status == b'T' {
            let out = wire::run(&mut self.backend, "COMMIT").await?;
            self.status = out.status;
        }
        Ok(())
    }

    async fn parse(&mut self, m: Message) -> Result<()> {
        let Some(mut p) = wire::parse_parse(&m) else {
            return wire::write(&mut self.backend, &[m]).await;
        };
        let refusal = if p.param_types.iter().any(|t| is_array_oid(*t)) {
            Some(Refusal {
                code: "0A000",
                message:
                    "array parameters are not supported by Amazon Redshift; bind scalar values"
                        .into(),
            })
        } else {
            match sql::plan(&p.sql, &self.values) {
                Action::Forward(s) => {
                    p.sql = s;
                    None
                }
                Action::Refuse(r) => Some(r),
                Action::Truncate(s) => {
                    self.implicit_commit().await?;
                    p.sql = s;
                    None
                }
                Action::CopyS3 { .. } | Action::Append { .. } => Some(Refusal {
                    code: "0A000",
                    message: "the Redshift emulator runs COPY FROM S3 and ALTER TABLE APPEND only through the simple query protocol (batch_execute / simple_query)".into(),
                }),
            }
        };
        if let Some(r) = refusal {
            p.sql = Self::raise_sql(r.code, &r.message);
            p.param_types.clear();
        }
        self.last_parsed = Some(p.name.clone());
        wire::write(&mut self.backend, &[wire::build_parse(&p)]).await
    }

    /// `ALTER TABLE target APPEND FROM source`: refused in a transaction block; moves
    /// the rows otherwise.
    async fn append(&mut self, target: &str, source: &str) -> Result<bool> {
        if self.status != b'I' {
            return self
                .raise(&Refusal {
                    code: "25001",
                    message: "ALTER TABLE APPEND cannot run inside a transaction block".into(),
                })
                .await;
        }
        let cols = |t: &str| {
            format!(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = {}::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attname",
                quote_literal(t)
            )
        };
        let a = wire::run(&mut self.backend, &cols(target)).await?;
        let b = wire::run(&mut self.backend, &cols(source)).await?;
        if a.error.is_some() || b.error.is_some() || a.rows != b.rows {
            return self
                .raise(&Refusal {
                    code: "XX000",
                    message: format!(
                        "ALTER TABLE APPEND: the columns of {source} and {target} do not match"
                    ),
                })
                .await;
        }
        let list = a
            .rows
            .iter()
            .map(|r| quote_ident(r[0].as_deref().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "BEGIN; INSERT INTO {target} ({list}) SELECT {list} FROM {source}; DELETE FROM {source}; COMMIT"
        );
        let out = wire::run(&mut self.backend, &sql).await?;
        self.status = out.status;
        if let Some(e) = out.error {
            if self.status == b'E' {
                wire::run(&mut self.backend, "ROLLBACK").await?;
                self.status = b'I';
            }
            wire::write(&mut self.client, &[e]).await?;
            return Ok(true);
        }
        wire::write(
            &mut self.client,
            &[wire::command_complete("ALTER TABLE APPEND")],
        )
        .await?;
        Ok(false)
    }

    /// `COPY table [(cols)] FROM 's3://...' ...`. Returns whether it failed (the error
    /// has been relayed).
    async fn copy_s3(
        &mut self,
        table: &str,
        columns: &[String],
        from: &str,
        options: &[(String, Option<String>)],
    ) -> Result<bool> {
        let spec = match load::spec(options) {
            Ok(s) => s,
            Err(r) => return self.raise(&r).await,
        };
        if self.status == b'E' {
            // The backend says "current transaction is aborted" itself.
            wire::write(&mut self.backend, &[wire::query("SELECT 1")]).await?;
            return self.relay_without_ready().await;
        }
        // The target's columns, in the order the file holds them.
        let target_cols = match self.describe(table, columns).await? {
            Ok(c) => c,
            Err(r) => return self.raise(&r).await,
        };
        let files = match self.list_files(from, spec.manifest).await {
            Ok(f) => f,
            Err(r) => return self.raise(&r).await,
        };
        let in_block = self.status == b'T';
        if in_block {
            wire::run(&mut self.backend, "SAVEPOINT rs_emulator_copy").await?;
        }
        let column_list = target_cols
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let copy =
            format!("COPY {table} ({column_list}) FROM STDIN WITH (FORMAT csv, NULL '\\\\N')");
        wire::write(&mut self.backend, &[wire::query(&copy)]).await?;
        let first = loop {
            let m = wire::read_message(&mut self.backend)
                .await?
                .context("backend closed")?;
            if m.tag == b'N' || m.tag == b'S' {
                wire::write(&mut self.client, &[m]).await?;
                continue;
            }
            break m;
        };
        if first.tag != b'G' {
            // The backend refused the COPY itself (no such table...): relay.
            wire::write(&mut self.client, &[first]).await?;
            self.relay_without_ready().await?;
            return Ok(true);
        }
        let result = self.stream_files(&files, &target_cols, &spec, table).await;
        let (rows, failure) = match result {
            Ok(rows) => {
                wire::write(&mut self.backend, &[wire::copy_done()]).await?;
                let out = wire::collect(&mut self.backend).await?;
                self.status = out.status;
                match out.error {
                    None => (rows, None),
                    Some(e) => (0, Some(backend_failure(&e, &files, &target_cols))),
                }
            }
            Err(f) => {
                wire::write(&mut self.backend, &[wire::copy_fail("load error")]).await?;
                let out = wire::collect(&mut self.backend).await?;
                self.status = out.status;
                (0, Some(f))
            }
        };
        match failure {
            None => {
                if in_block {
                    wire::run(&mut self.backend, "RELEASE SAVEPOINT rs_emulator_copy").await?;
                }
                self.values.last_copy_count = rows;
                self.values.last_copy_id = self.shared.copy_ids.fetch_add(1, Ordering::Relaxed);
                wire::write(&mut self.client, &[wire::command_complete("COPY")]).await?;
                Ok(false)
            }
            Some(f) => {
                if in_block {
                    let out =
                        wire::run(&mut self.backend, "ROLLBACK TO SAVEPOINT rs_emulator_copy")
                            .await?;
                    self.status = out.status;
                }
                self.record_load_error(table, &f).await?;
                let bare = table.rsplit('.').next().unwrap_or(table).trim_matches('"');
                self.raise(&Refusal {
                    code: "XX000",
                    message: format!(
                        "Load into table '{bare}' failed.  Check 'stl_load_errors' system table for details."
                    ),
                })
                .await
            }
        }
    }

    /// The named columns (or all) of the target, with their types.
    async fn describe(
        &mut self,
        table: &str,
        columns: &[String],
    ) -> Result<Result<Vec<Column>, Refusal>> {
        let sql = format!(
            "SELECT a.attname::text, t.typname::text, a.atttypmod::text, a.attnotnull::text \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = to_regclass({}) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            quote_literal(table)
        );
        let out = wire::run(&mut self.backend, &sql).await?;
        self.status = out.status;
        if let Some(e) = out.error {
            return Ok(Err(Refusal {
                code: "XX000",
                message: wire::error_field(&e, b'M').unwrap_or_default(),
            }));
        }
        let all: Vec<Column> = out
            .rows
            .iter()
            .map(|r| Column {
                name: r[0].clone().unwrap_or_default(),
                typname: r[1].clone().unwrap_or_default(),
                typmod: r[2].as_deref().and_then(|v| v.parse().ok()).unwrap_or(-1),
                not_null: r[3].as_deref() == Some("true"),
            })
            .collect();
        if all.is_empty() {
            return Ok(Err(Refusal {
                code: "42P01",
                message: format!("relation \"{}\" does not exist", table.trim_matches('"')),
            }));
        }
        if columns.is_empty() {
            return Ok(Ok(all));
        }
        let mut picked = Vec::new();
        for c in columns {
            let name = unquote_ident(c);
            match all.iter().find(|a| a.name == name) {
                Some(a) => picked.push(a.clone()),
                None => {
                    return Ok(Err(Refusal {
                        code: "42703",
                        message: format!(
                            "column \"{name}\" of relation \"{}\" does not exist",
                            table.trim_matches('"')
                        ),
                    }))
                }
            }
        }
        Ok(Ok(picked))
    }

    /// The objects a COPY reads: every key under the prefix, or the manifest's entries.
    async fn list_files(&self, from: &str, manifest: bool) -> Result<Vec<String>, Refusal> {
        let s3 = &self.shared.cfg.s3;
        let (bucket, key) = split_s3(from)?;
        if manifest {
            let text = read_object(s3, bucket, key).await.map_err(|e| Refusal {
                code: "XX000",
                message: format!("Problem reading manifest file - S3ServiceException:The specified key does not exist.,Status 404,Error NoSuchKey ({from}: {e})"),
            })?;
            let doc: serde_json::Value = serde_json::from_slice(&text).map_err(|e| Refusal {
                code: "XX000",
                message: format!("Manifest file is not in correct json format: {e}"),
            })?;
            let entries = doc["entries"].as_array().ok_or_else(|| Refusal {
                code: "XX000",
                message: "Manifest file is not in correct json format: no \"entries\" array".into(),
            })?;
            let mut files = Vec::new();
            for entry in entries {
                let url = entry["url"].as_str().ok_or_else(|| Refusal {
                    code: "XX000",
                    message: "Manifest entry without \"url\"".into(),
                })?;
                let mandatory = entry["mandatory"].as_bool().unwrap_or(false);
                let (b, k) = split_s3(url)?;
                let exists = s3.head_object().bucket(b).key(k).send().await.is_ok();
                if exists {
                    files.push(url.to_string());
                } else if mandatory {
                    return Err(Refusal {
                        code: "XX000",
                        message: format!("Manifest file contains a mandatory file that does not exist: {url}. S3ServiceException:The specified key does not exist.,Status 404,Error NoSuchKey"),
                    });
                }
            }
            Ok(files)
        } else {
            let mut files = Vec::new();
            let mut pages = s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(key)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| Refusal {
                    code: "XX000",
                    message: format!(
                        "S3ServiceException: listing {from} failed: {}",
                        aws_error(&e)
                    ),
                })?;
                for o in page.contents() {
                    if let Some(k) = o.key() {
                        files.push(format!("s3://{bucket}/{k}"));
                    }
                }
            }
            if files.is_empty() {
                return Err(Refusal {
                    code: "XX000",
                    message: format!("The specified S3 prefix '{key}' does not exist"),
                });
            }
            files.sort();
            Ok(files)
        }
    }

    /// Streams every file into the backend's COPY; returns rows written, or the first
    /// bad row.
    async fn stream_files(
        &mut self,
        files: &[String],
        cols: &[Column],
        spec: &CopySpec,
        _table: &str,
    ) -> std::result::Result<u64, LoadFailure> {
        let mut rows = 0u64;
        for file in files {
            rows += self.stream_file(file, cols, spec).await?;
        }
        Ok(rows)
    }

    async fn stream_file(
        &mut self,
        file: &str,
        cols: &[Column],
        spec: &CopySpec,
    ) -> std::result::Result<u64, LoadFailure> {
        let failure = |reason: String| LoadFailure {
            filename: file.to_string(),
            line: 0,
            colname: String::new(),
            col_type: String::new(),
            raw_line: String::new(),
            raw_value: String::new(),
            code: 8001,
            reason,
        };
        let (bucket, key) = split_s3(file).map_err(|r| failure(r.message))?;
        let object = self
            .shared
            .cfg
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| failure(format!("S3ServiceException: {}", aws_error(&e))))?;
        let mut body = object.body;
        let mut decoder = Decoder::new(spec.compression);
        let mut reader = CsvReader::new(spec.delimiter, spec.quote);
        let mut out: Vec<u8> = Vec::with_capacity(128 * 1024);
        let mut rows = 0u64;
        let mut skip = spec.ignore_header;
        let mut plain = Vec::new();
        loop {
            let chunk = body
                .try_next()
                .await
                .map_err(|e| failure(format!("S3ServiceException: reading {file}: {e}")))?;
            let last = chunk.is_none();
            plain.clear();
            match &chunk {
                Some(bytes) => decoder.feed(bytes, &mut plain),
                None => decoder.finish(&mut plain),
            }
            .map_err(|e| {
                failure(format!(
                    "{e} ({file} is not valid {:?} data)",
                    spec.compression
                ))
            })?;
            let mut on_record = |rec: Record| -> std::result::Result<(), CsvError> {
                if skip > 0 {
                    skip -= 1;
                    return Ok(());
                }
                encode_record(&rec, cols, spec, &mut out)?;
                rows += 1;
                Ok(())
            };
            let parsed = reader.feed(&plain, &mut on_record);
            let parsed = match parsed {
                Ok(()) if last => reader.finish(&mut on_record),
                other => other,
            };
            parsed.map_err(|e| csv_failure(file, cols, e))?;
            if out.len() >= 64 * 1024 || (last && !out.is_empty()) {
                wire::write(&mut self.backend, &[wire::copy_data(&out)])
                    .await
                    .map_err(|e| failure(format!("backend: {e}")))?;
                out.clear();
            }
            if last {
                return Ok(rows);
            }
        }
    }

    /// Writes the failure into `stl_load_errors` on a connection of its own, so the row
    /// survives the client's rollback.
    async fn record_load_error(&mut self, table: &str, f: &LoadFailure) -> Result<()> {
        let (mut conn, greeting) = backend_session(&self.shared.cfg, &self.database).await?;
        if greeting.iter().any(|m| m.tag == b'E') {
            bail!("cannot open a session to record a load error");
        }
        let cut = |s: &str, n: usize| -> String { s.chars().take(n).collect() };
        let sql = format!(
            "INSERT INTO public.stl_load_errors (userid, slice, tbl, starttime, session, query, filename, line_number, colname, type, col_length, position, raw_line, raw_field_value, err_code, err_reason, is_partial, start_offset) \
             VALUES (100, 0, COALESCE(to_regclass({})::oid::int, 0), localtimestamp, pg_backend_pid(), {}, {}, {}, {}, {}, '', 0, {}, {}, {}, {}, 0, 0)",
            quote_literal(table),
            self.shared.copy_ids.fetch_add(1, Ordering::Relaxed),
            quote_literal(&cut(&f.filename, 256)),
            f.line,
            quote_literal(&cut(&f.colname, 127)),
            quote_literal(&cut(&f.col_type, 10)),
            quote_literal(&cut(&f.raw_line, 1024)),
            quote_literal(&cut(&f.raw_value, 1024)),
            f.code,
            quote_literal(&cut(&f.reason, 100)),
        );
        let out = wire::run(&mut conn, &sql).await?;
        if let Some(e) = out.error {
            return Err(anyhow!(
                "recording a load error failed: {}",
                wire::error_field(&e, b'M').unwrap_or_default()
            ));
        }
        let _ = wire::write(&mut conn, &[Message::new(b'X', Vec::new())]).await;
        Ok(())
    }
}

/// Converts one record to a PostgreSQL CSV line, or says why it cannot load.
fn encode_record(
    rec: &Record,
    cols: &[Column],
    spec: &CopySpec,
    out: &mut Vec<u8>,
) -> std::result::Result<(), CsvError> {
    let raw = || rec.raw.clone();
    if rec.fields.len() != cols.len() {
        return Err(CsvError {
            line: rec.line,
            raw: raw(),
            code: 1214,
            reason: if rec.fields.len() > cols.len() {
                "Extra column(s) found".into()
            } else {
                "Delimiter not found".into()
            },
        });
    }
    let start = out.len();
    for (i, (field, col)) in rec.fields.iter().zip(cols).enumerate() {
        match load::convert(col, field, spec) {
            Ok(v) => {
                if i > 0 {
                    out.push(b',');
                }
                load::push_pg_field(out, v.as_deref());
            }
            Err(e) => {
                out.truncate(start);
                // The column travels in the reason's prefix: "<col>|<type>|<value>|".
                return Err(CsvError {
                    line: rec.line,
                    raw: raw(),
                    code: e.code,
                    reason: format!(
                        "{}\u{1}{}\u{1}{}\u{1}{}",
                        col.name,
                        col.typname,
                        String::from_utf8_lossy(&field.bytes),
                        e.reason
                    ),
                });
            }
        }
    }
    out.push(b'\n');
    Ok(())
}

fn csv_failure(file: &str, _cols: &[Column], e: CsvError) -> LoadFailure {
    let parts: Vec<&str> = e.reason.split('\u{1}').collect();
    let (colname, col_type, raw_value, reason) = match parts.as_slice() {
        [c, t, v, r] => (c.to_string(), t.to_string(), v.to_string(), r.to_string()),
        _ => (
            String::new(),
            String::new(),
            String::new(),
            e.reason.clone(),
        ),
    };
    LoadFailure {
        filename: file.to_string(),
        line: e.line,
        colname,
        col_type,
        raw_line: String::from_utf8_lossy(&e.raw).into_owned(),
        raw_value,
        code: e.code,
        reason,
    }
}

/// A failure the backend found during COPY (its CONTEXT names line and column).
fn backend_failure(e: &Message, files: &[String], _cols: &[Column]) -> LoadFailure {
    let message = wire::error_field(e, b'M').unwrap_or_default();
    let context = wire::error_field(e, b'W').unwrap_or_default();
    // "COPY t, line 3, column c: "value""
    let line = context
        .split("line ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let colname = context
        .split("column ")
        .nth(1)
        .map(|r| r.split(':').next().unwrap_or_default().to_string())
        .unwrap_or_default();
    LoadFailure {
        filename: files.first().cloned().unwrap_or_default(),
        line,
        colname,
        col_type: String::new(),
        raw_line: String::new(),
        raw_value: String::new(),
        code: 1200,
        reason: message,
    }
}

/// Push decompression: compressed bytes in, plain bytes out.
enum Decoder {
    Plain,
    Gzip(Box<flate2::write::MultiGzDecoder<Vec<u8>>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Vec<u8>>>),
}

impl Decoder {
    fn new(c: Compression) -> Decoder {
        match c {
            Compression::None => Decoder::Plain,
            Compression::Gzip => {
                Decoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(Vec::new())))
            }
            Compression::Zstd => Decoder::Zstd(Box::new(
                zstd::stream::write::Decoder::new(Vec::new()).expect("zstd decoder"),
            )),
        }
    }

    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        match self {
            Decoder::Plain => out.extend_from_slice(input),
            Decoder::Gzip(d) => {
                d.write_all(input)?;
                out.append(d.get_mut());
            }
            Decoder::Zstd(d) => {
                d.write_all(input)?;
                d.flush()?;
                out.append(d.get_mut());
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        match self {
            Decoder::Plain => {}
            Decoder::Gzip(d) => {
                d.try_finish()?;
                out.append(d.get_mut());
            }
            Decoder::Zstd(d) => {
                d.flush()?;
                out.append(d.get_mut());
            }
        }
        Ok(())
    }
}

fn split_s3(url: &str) -> std::result::Result<(&str, &str), Refusal> {
    url.strip_prefix("s3://")
        .and_then(|r| r.split_once('/'))
        .ok_or_else(|| Refusal {
            code: "XX000",
            message: format!("Invalid S3 path '{url}': expected s3://bucket/key"),
        })
}

async fn read_object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| anyhow!(aws_error(&e)))?;
    Ok(out.body.collect().await?.into_bytes().to_vec())
}

fn aws_error<E: std::error::Error + 'static>(e: &E) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn is_array_oid(oid: u32) -> bool {
    // int2[], int4[], text[], int8[], varchar[], float4[], float8[], bool[], bytea[],
    // numeric[], timestamptz[], timestamp[], date[], uuid[], json[], jsonb[], char[].
    matches!(
        oid,
        1005 | 1007
            | 1009
            | 1016
            | 1015
            | 1021
            | 1022
            | 1000
            | 1001
            | 1231
            | 1185
            | 1115
            | 1182
            | 2951
            | 199
            | 3807
            | 1014
    )
}

/// A literal for the backend session (`standard_conforming_strings=off`).
fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn unquote_ident(s: &str) -> String {
    match s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => s.to_ascii_lowercase(),
    }
}
