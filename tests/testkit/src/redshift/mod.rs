//! The Redshift emulator: a PostgreSQL wire-protocol proxy in front of a PostgreSQL
//! server that answers like Redshift for what the loader sends.
//!
//! Each client connection gets its own backend session (the client's database and user
//! — the configured backend user when the client names none —, `TimeZone=UTC`, `standard_conforming_strings=off` as in
//! Redshift). Messages are relayed as they are, except:
//! - simple `Query` and extended `Parse` statements go through [`sql::plan`]: Redshift
//!   DDL is rewritten into PostgreSQL DDL, PostgreSQL-only features are refused, and
//!   session values (`pg_last_copy_count()`) are substituted;
//! - `Bind` of a statement with array parameters is refused;
//! - `COPY ... FROM 's3://...'` and `ALTER TABLE ... APPEND FROM` (simple protocol) are
//!   carried out here ([`copy`], [`Sess::append`]).
//!
//! Errors and transactions: every refusal is raised *by the backend*, so its
//! transaction state is always PostgreSQL's own and needs no bookkeeping here. In a
//! simple query a `DO` block raises the SQLSTATE and message. In the extended protocol
//! the refused `Parse` (or `Bind`) is replaced by one the backend rejects with a marker
//! in its error (see [`Sess::refusal_marker`]); the proxy swaps that ErrorResponse for
//! the Redshift one on its way to the client. The backend then skips to `Sync` and
//! reports the transaction state itself.
//!
//! Shim objects (`stl_load_errors`, `getdate()`, ...) are described in [`shims`].

pub mod copy;
pub mod load;
pub mod shims;
pub mod sql;
pub mod timefmt;
pub mod wire;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tokio::net::{TcpListener, TcpStream};

use sql::{Action, Refusal, Session};
use wire::Message;

#[derive(Debug)]
pub struct EmulatorConfig {
    pub backend_host: String,
    pub backend_port: u16,
    pub backend_user: String,
    pub s3: aws_sdk_s3::Client,
    /// Act as Redshift Serverless: load errors go to `sys_load_error_detail` (its
    /// documented columns; no raw value) and there is no `stl_load_errors`.
    pub serverless: bool,
    /// The role the cluster may assume (the stack's COPY role): a COPY naming another
    /// role fails as on a cluster the role is not associated with. `None`: any role
    /// ARN of the right form is accepted.
    pub iam_role: Option<String>,
    /// The slices `stv_slices` lists (one row each); `None`: no `stv_slices`, as on
    /// Redshift Serverless, which has no STV tables.
    pub slices: Option<u32>,
    /// Answer TLS requests with this server configuration (Redshift accepts TLS and,
    /// unless `require_ssl` is set, plain connections too). `None`: plain only.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Refuse plain connections, as a cluster whose parameter group sets `require_ssl`.
    pub require_ssl: bool,
}

/// The slices of the stack's provisioned emulator: two, the smallest cluster's
/// (`ra3.xlplus` or `dc2.large`, one node), so a loader staging a file per slice
/// writes more than one.
pub const DEFAULT_SLICES: u32 = 2;

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
    installed: shims::Installed,
    /// Query ids for `pg_last_copy_id()` and `stl_load_errors.query`.
    query_ids: AtomicI64,
}

impl RedshiftEmulator {
    /// Binds 127.0.0.1 on a free port and serves on the current runtime.
    pub async fn start(cfg: EmulatorConfig) -> Result<RedshiftEmulator> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            cfg,
            installed: shims::Installed::default(),
            query_ids: AtomicI64::new(1000),
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

/// Opens a backend session for `database` as `user` and reads it up to ReadyForQuery
/// (or the error that ends it). The backend trusts loopback: no password is asked.
async fn backend_session(
    cfg: &EmulatorConfig,
    database: &str,
    user: &str,
) -> Result<(TcpStream, Vec<Message>)> {
    let mut backend = TcpStream::connect((cfg.backend_host.as_str(), cfg.backend_port))
        .await
        .context("connecting to the backend PostgreSQL")?;
    backend.set_nodelay(true)?;
    let params = [
        ("user", user),
        ("database", database),
        (
            "options",
            "-c TimeZone=UTC -c standard_conforming_strings=off -c escape_string_warning=off -c DateStyle=ISO,MDY",
        ),
        ("application_name", "redshift-emulator"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
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

/// One client connection.
async fn serve(tcp: TcpStream, shared: Arc<Shared>) -> Result<()> {
    tcp.set_nodelay(true)?;
    let mut client: Box<dyn ClientIo> = Box::new(tcp);
    let mut tls_in_use = false;
    let (mut code, mut body) = wire::read_startup(&mut client).await?;
    while code == wire::SSL_REQUEST || code == wire::GSSENC_REQUEST {
        match (&shared.cfg.tls, code) {
            (Some(tls), wire::SSL_REQUEST) => {
                tokio::io::AsyncWriteExt::write_all(&mut client, b"S").await?;
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.clone());
                client = Box::new(acceptor.accept(client).await.context("TLS handshake")?);
                tls_in_use = true;
            }
            _ => tokio::io::AsyncWriteExt::write_all(&mut client, b"N").await?,
        }
        (code, body) = wire::read_startup(&mut client).await?;
    }
    if code == wire::CANCEL_REQUEST {
        // The key data is the backend's own (its BackendKeyData was relayed).
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
    if shared.cfg.require_ssl && !tls_in_use {
        // What PostgreSQL (and so Redshift) says when no hba line admits a plain session.
        wire::write(
            &mut client,
            &[wire::error_response(
                "28000",
                "no pg_hba.conf entry for host, SSL off (require_ssl is set)",
            )],
        )
        .await?;
        return Ok(());
    }
    let params = wire::startup_params(&body);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let database = get("database")
        .or_else(|| get("user"))
        .unwrap_or_else(|| "postgres".into());
    if let Err(e) = shared.installed.ensure(&shared.cfg, &database).await {
        wire::write(
            &mut client,
            &[wire::error_response("XX000", &format!("{e:#}"))],
        )
        .await?;
        return Ok(());
    }
    // The client's user, so privileges behave as in Redshift (tests of "permission
    // denied" connect as a user without them).
    let user = get("user").unwrap_or_else(|| shared.cfg.backend_user.clone());
    let (backend, greeting) = backend_session(&shared.cfg, &database, &user).await?;
    wire::write(&mut client, &greeting).await?;
    let pid = greeting
        .iter()
        .find(|m| m.tag == b'K')
        .and_then(|m| m.body.get(..4))
        .map_or(0, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let mut session = Sess {
        client,
        backend,
        shared,
        database,
        pid,
        status: b'I',
        values: Session::default(),
        described: VecDeque::new(),
        array_statements: HashSet::new(),
        refusals: HashMap::new(),
        next_refusal: 0,
    };
    session.run().await
}

/// A client's stream: TCP, or TLS over it.
trait ClientIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync> ClientIo for T {}

/// One client session and its backend session.
struct Sess {
    client: Box<dyn ClientIo>,
    backend: TcpStream,
    shared: Arc<Shared>,
    database: String,
    /// The backend's process id: `stl_load_errors.session`.
    pid: i32,
    /// The transaction status of the last ReadyForQuery (`I`, `T`, `E`).
    status: u8,
    values: Session,
    /// Statements the client asked the backend to describe, oldest first: the next
    /// ParameterDescription belongs to the front one.
    described: VecDeque<String>,
    /// Prepared statements whose parameters include an array type.
    array_statements: HashSet<String>,
    /// Extended-protocol refusals waiting for the backend's marker error, by marker.
    refusals: HashMap<u64, Refusal>,
    next_refusal: u64,
}

/// The prefix of the names the backend rejects in place of a refused statement.
const MARKER: &str = "rs_emulator_refusal_";

impl Sess {
    async fn run(&mut self) -> Result<()> {
        while let Some(m) = wire::read_message(&mut self.client).await? {
            match m.tag {
                b'Q' => self.simple_query(&wire::query_text(&m)).await?,
                b'P' => self.parse(m).await?,
                b'B' => {
                    let m = self.bind(m);
                    wire::write(&mut self.backend, &[m]).await?;
                }
                b'D' => {
                    if let Some((b'S', name)) = wire::describe_target(&m) {
                        self.described.push_back(name);
                    }
                    wire::write(&mut self.backend, &[m]).await?;
                }
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

    /// Relays backend messages to the client up to and including ReadyForQuery,
    /// swapping marker errors for their refusals.
    async fn relay_until_ready(&mut self) -> Result<()> {
        let mut batch = Vec::new();
        loop {
            let mut m = wire::read_message(&mut self.backend)
                .await?
                .context("the backend closed the connection")?;
            match m.tag {
                b'Z' => self.status = m.body.first().copied().unwrap_or(b'I'),
                b't' => self.note_parameters(&m),
                b'E' => {
                    if let Some(r) = self.refusal_for(&m) {
                        m = wire::error_response(r.code, &r.message);
                    }
                }
                _ => {}
            }
            m.encode_into(&mut batch);
            if m.tag == b'Z' {
                self.refusals.clear();
                self.described.clear();
                tokio::io::AsyncWriteExt::write_all(&mut self.client, &batch).await?;
                tokio::io::AsyncWriteExt::flush(&mut self.client).await?;
                return Ok(());
            }
            if batch.len() > 64 * 1024 {
                tokio::io::AsyncWriteExt::write_all(&mut self.client, &batch).await?;
                batch.clear();
            }
        }
    }

    /// A ParameterDescription: remembers whether the described statement takes arrays.
    fn note_parameters(&mut self, m: &Message) {
        let types = wire::parameter_types(m);
        if let Some(name) = self.described.pop_front() {
            if types.iter().copied().any(is_array_oid) {
                self.array_statements.insert(name);
            } else {
                self.array_statements.remove(&name);
            }
        }
    }

    /// The refusal an ErrorResponse stands for, if it carries one of our markers.
    fn refusal_for(&mut self, e: &Message) -> Option<Refusal> {
        let message = wire::error_field(e, b'M')?;
        let at = message.find(MARKER)? + MARKER.len();
        let n: u64 = message[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()?;
        self.refusals.remove(&n)
    }

    /// Registers an extended-protocol refusal and returns the name to put in its place:
    /// as SQL it is a syntax error, as a statement name it does not exist; either way
    /// the backend's error message quotes it.
    fn refusal_marker(&mut self, r: Refusal) -> String {
        let n = self.next_refusal;
        self.next_refusal += 1;
        self.refusals.insert(n, r);
        format!("{MARKER}{n}_")
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
                .filter_map(|a| match a {
                    Action::Forward(s) => Some(s.as_str()),
                    _ => None,
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
                Action::NoTransactionBlock(s, r) => {
                    if self.status != b'I' {
                        self.raise(&r).await?
                    } else {
                        wire::write(&mut self.backend, &[wire::query(&s)]).await?;
                        self.relay_without_ready().await?
                    }
                }
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
        self.array_statements.remove(&p.name);
        let refusal = if p.param_types.iter().copied().any(is_array_oid) {
            Some(array_parameters())
        } else {
            match sql::plan(&p.sql, &self.values) {
                Action::Forward(s) => {
                    p.sql = s;
                    None
                }
                Action::Refuse(r) => Some(r),
                Action::NoTransactionBlock(_, r) if self.status != b'I' => Some(r),
                Action::NoTransactionBlock(s, _) => {
                    p.sql = s;
                    None
                }
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
            p.sql = self.refusal_marker(r);
            p.param_types.clear();
        }
        wire::write(&mut self.backend, &[wire::build_parse(&p)]).await
    }

    /// A Bind of a statement that takes arrays is refused: Redshift has no array types.
    fn bind(&mut self, m: Message) -> Message {
        match wire::bind_statement(&m) {
            Some(name) if self.array_statements.contains(&name) => {
                let marker = self.refusal_marker(array_parameters());
                wire::bind_with_statement(&m, &marker).unwrap_or(m)
            }
            _ => m,
        }
    }

    /// `ALTER TABLE target APPEND FROM source`: refused in a transaction block; moves
    /// the rows otherwise, if both tables have the same columns.
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
}

fn array_parameters() -> Refusal {
    Refusal {
        code: "0A000",
        message: "array parameters are not supported by Amazon Redshift; bind scalar values".into(),
    }
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
