//! The AWS Lambda front door: builds settings and clients once per container, then
//! serves events (`events/*.json` has one of each):
//!
//! - `{"action":"run","job":"shop","scheduled_time":"...","execution_id":"..."}`: the
//!   schedule's run (EventBridge Scheduler fills in the times); skipped unless the job's
//!   `at` matches the *scheduled* minute (in its `tz`) and each table's frequency has
//!   passed since its last scheduled run; a second delivery of the same scheduled time
//!   does nothing;
//! - `{"action":"run","job":"shop","tables":[...],"from_scratch":true,"force":true}`: a
//!   manual run or backfill;
//! - `{"action":"run","job":"shop","tables":[...],"run_id":"...","hop":3,"owner":"..."}`:
//!   a continuation the function sent itself; it takes over the leases `owner` handed to
//!   it, and a second delivery of the same hop does nothing;
//! - `{"action":"setup","job":"shop"}`;
//! - `{"action":"verify","job":"shop","tables":[...]}`: compares the tables between the
//!   source and Redshift (as `redshift-loader verify` does) and logs the drift found.
//!
//! A run stops starting tables and chunks when the time left falls under a margin, hands
//! the leases of the tables still behind to a continuation, and invokes the function
//! again asynchronously with them, up to a hop cap.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lambda_runtime::{service_fn, LambdaEvent};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::App;
use crate::aws_error::{AwsError, Resource};
use crate::config::{Job, TableRef};
use crate::error::{Error, Result};
use crate::sync::{self, Options, Timing};

/// At most this many invocations in one chain (Lambda's own loop detection stops
/// recursive chains at about 16 unless `RecursiveLoop: Allow`).
pub const HOP_CAP: u32 = 50;

/// Time kept back from the Lambda deadline: no chunk starts later than this before it
/// (`LOADER_DEADLINE_MARGIN_SECONDS`).
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(180);

/// The end of an invocation in which a verify comparison starts no more ranges.
const VERIFY_LAST: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    Run(RunEvent),
    Setup { job: String },
    Verify(VerifyEvent),
    SyncSchedules {},
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyEvent {
    pub job: String,
    /// Default: every enabled table.
    #[serde(default, deserialize_with = "table_list")]
    pub tables: Vec<TableRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunEvent {
    pub job: String,
    #[serde(default, deserialize_with = "table_list")]
    pub tables: Vec<TableRef>,
    #[serde(default)]
    pub from_scratch: bool,
    #[serde(default)]
    pub force: bool,
    /// Set in continuations: the run they continue.
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub hop: u32,
    /// Set in continuations: the invocation whose leases this one takes over.
    #[serde(default)]
    pub owner: Option<String>,
    /// The schedule's time for this run (`<aws.scheduler.scheduled-time>`; continuations
    /// carry their run's).
    #[serde(default)]
    pub scheduled_time: Option<DateTime<Utc>>,
    /// EventBridge Scheduler's id of this attempt (`<aws.scheduler.execution-id>`), for
    /// the logs.
    #[serde(default)]
    pub execution_id: Option<String>,
    /// Set in a fan-out part (and its continuations): its number. The scheduled
    /// invocation of a job with many tables runs part 0 itself and invokes the others.
    #[serde(default)]
    pub part: Option<u32>,
}

/// How a run of a job with many tables spreads over invocations
/// (`LOADER_TABLES_PER_INVOCATION`, `LOADER_FANOUT_LIMIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanOut {
    /// A job with more enabled tables than this is split into parts.
    pub tables_per_invocation: usize,
    /// At most this many invocations run one job at once (the scheduled one included):
    /// size the function's reserved concurrency for it.
    pub limit: usize,
}

impl Default for FanOut {
    fn default() -> FanOut {
        FanOut {
            tables_per_invocation: 16,
            limit: 8,
        }
    }
}

impl FanOut {
    pub(crate) fn from_lookup(
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> std::result::Result<FanOut, String> {
        let d = FanOut::default();
        let get =
            |name: &str, default: usize, max: usize| match lookup(name).as_deref().map(str::trim) {
                None | Some("") => Ok(default),
                Some(v) => v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| format!("{name}: {v:?} is not a whole number from 1 to {max}")),
            };
        Ok(FanOut {
            tables_per_invocation: get(
                "LOADER_TABLES_PER_INVOCATION",
                d.tables_per_invocation,
                10_000,
            )?,
            limit: get("LOADER_FANOUT_LIMIT", d.limit, 1000)?,
        })
    }

    /// PURE: `tables` (least recently run first) dealt into parts, part 0 first. One part
    /// when they fit one invocation.
    pub fn parts<T: Clone>(&self, tables: &[T]) -> Vec<Vec<T>> {
        let wanted = tables.len().div_ceil(self.tables_per_invocation.max(1));
        let n = wanted.clamp(1, self.limit.max(1));
        let mut parts = vec![Vec::new(); n];
        for (i, t) in tables.iter().enumerate() {
            parts[i % n].push(t.clone());
        }
        parts
    }
}

/// `LOADER_DEADLINE_MARGIN_SECONDS`: a duration (`90s`, `3m` or seconds) under Lambda's
/// longest timeout.
pub(crate) fn deadline_margin(
    lookup: &impl Fn(&str) -> Option<String>,
) -> std::result::Result<Duration, String> {
    const NAME: &str = "LOADER_DEADLINE_MARGIN_SECONDS";
    match lookup(NAME).as_deref().map(str::trim) {
        None | Some("") => Ok(DEFAULT_MARGIN),
        Some(v) => match crate::status::parse_duration(v).map_err(|e| format!("{NAME}: {e}"))? {
            n if n >= 900 => Err(format!(
                "{NAME}: {v:?} is as long as Lambda's longest timeout (15m); keep it well under the function's timeout"
            )),
            n => Ok(Duration::from_secs(n)),
        },
    }
}

/// How long a delivered event is remembered, to recognise it when it comes again.
pub const DELIVERY_MEMORY: chrono::Duration = chrono::Duration::days(2);

/// Parses an event, naming the field that is wrong (`tables: invalid type: ...,
/// expected a list of "schema.table"`). The action is read first, then the rest as
/// that action's fields, so that a mistake's path survives (serde's tagged enums lose
/// it).
pub fn parse_event(payload: &Value) -> Result<Event> {
    let bad = |m: String| Error::Event(m);
    let Value::Object(fields) = payload else {
        return Err(bad(format!(
            "expected a JSON object with an action, got {payload}"
        )));
    };
    let mut rest = fields.clone();
    let action = match rest.remove("action") {
        None => return Err(bad("missing field `action`".into())),
        Some(Value::String(a)) => a,
        Some(other) => {
            return Err(bad(format!(
                "action: expected one of `run`, `setup`, `verify`, `sync_schedules`, got {other}"
            )))
        }
    };
    let rest = Value::Object(rest);
    fn fields_of<T: serde::de::DeserializeOwned>(rest: &Value) -> Result<T> {
        serde_path_to_error::deserialize(rest).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            Error::Event(match path.as_str() {
                "." | "" | "?" => message,
                _ => format!("{path}: {message}"),
            })
        })
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SetupFields {
        job: String,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NoFields {}
    match action.as_str() {
        "run" => fields_of::<RunEvent>(&rest).map(Event::Run),
        "setup" => fields_of::<SetupFields>(&rest).map(|f| Event::Setup { job: f.job }),
        "verify" => fields_of::<VerifyEvent>(&rest).map(Event::Verify),
        "sync_schedules" => fields_of::<NoFields>(&rest).map(|NoFields {}| Event::SyncSchedules {}),
        other => Err(bad(format!(
            "unknown variant `{other}`, expected one of `run`, `setup`, `verify`, `sync_schedules`"
        ))),
    }
}

/// `tables`: a list of `schema.table`, said so when it is not one.
fn table_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<TableRef>, D::Error> {
    struct List;
    impl<'de> serde::de::Visitor<'de> for List {
        type Value = Vec<TableRef>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of \"schema.table\"")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> std::result::Result<Vec<TableRef>, A::Error> {
            let mut tables = Vec::new();
            while let Some(t) = seq.next_element()? {
                tables.push(t);
            }
            Ok(tables)
        }
    }
    d.deserialize_seq(List)
}

/// What a handler needs beyond the event: built once per container.
#[derive(Debug, Clone)]
pub struct Handler {
    pub app: App,
    pub timing: Timing,
    pub fan_out: FanOut,
    pub margin: Duration,
    /// Print a CloudWatch EMF line per table run (inside Lambda, where CloudWatch Logs
    /// reads stdout: `AWS_LAMBDA_FUNCTION_NAME` is set).
    pub emit_metrics: bool,
}

impl Handler {
    /// Reads the settings; a bad one is refused with its name.
    pub fn from_lookup(app: App, lookup: impl Fn(&str) -> Option<String>) -> Result<Handler> {
        let bad = |e: String| Error::BadSettings(crate::aws::BadSettings(vec![e]));
        Ok(Handler {
            margin: deadline_margin(&lookup).map_err(bad)?,
            timing: Timing::from_lookup(&lookup).map_err(bad)?,
            fan_out: FanOut::from_lookup(&lookup).map_err(bad)?,
            app,
            emit_metrics: lookup("AWS_LAMBDA_FUNCTION_NAME").is_some(),
        })
    }

    /// Handles one event with `remaining` time before the invocation's deadline, as a
    /// new invocation (its own request id).
    pub async fn handle(&self, payload: Value, remaining: Duration) -> Result<Value> {
        let request_id = uuid::Uuid::new_v4().to_string();
        self.handle_request(payload, remaining, &request_id).await
    }

    /// Handles one event of the Lambda request `request_id` (Lambda's own retries of an
    /// event keep it).
    pub async fn handle_request(
        &self,
        payload: Value,
        remaining: Duration,
        request_id: &str,
    ) -> Result<Value> {
        match parse_event(&payload)? {
            Event::Run(run) => self.run(run, remaining, request_id).await,
            Event::Setup { job } => self.setup(&job).await,
            Event::Verify(event) => self.verify(event, remaining).await,
            Event::SyncSchedules {} => self.sync_schedules().await,
        }
    }

    async fn sync_schedules(&self) -> Result<Value> {
        let changes = crate::scheduler::Scheduler::sync_stored(&self.app).await?;
        let list: Vec<Value> = changes.iter().map(change_json).collect();
        let summary = Value::Array(list.clone());
        tracing::info!(changes = %summary, "schedules synced");
        Ok(json!({"action": "sync_schedules", "changes": list}))
    }

    /// Compares the job's tables; drift is a result (logged as a warning), a table that
    /// could not be compared an error. Tables are compared one after another while the
    /// time left (less the margin) exceeds the longest one so far; the rest go to a
    /// continuation, a verify event naming them. The first table always starts.
    async fn verify(&self, event: VerifyEvent, remaining: Duration) -> Result<Value> {
        let job = self.app.store.require_job(&event.job).await?.job;
        let deadline = Instant::now() + remaining.saturating_sub(self.margin);
        // A comparison starts no batch of ranges in the invocation's last minute (or its
        // margin, if shorter): it ends `unfinished` rather than being ended by Lambda.
        let stop_at = Instant::now() + remaining.saturating_sub(self.margin.min(VERIFY_LAST));
        let tables = crate::verify::check::tables_of(&job, &event.tables)?;
        let dbs = crate::verify::check::Databases::of(&self.app, &job).await?;
        let (mut verdicts, mut longest, mut rest) = (Vec::new(), Duration::ZERO, Vec::new());
        for (i, table) in tables.iter().enumerate() {
            if i > 0 && Instant::now() + longest >= deadline {
                rest = tables[i..].iter().map(|t| t.source.clone()).collect();
                break;
            }
            let started = Instant::now();
            verdicts.push(
                crate::verify::check::verify_one(&self.app, &job, table, &dbs, 10, Some(stop_at))
                    .await,
            );
            longest = longest.max(started.elapsed());
        }
        let continued: Vec<String> = rest.iter().map(TableRef::to_string).collect();
        if !rest.is_empty() {
            self.invoke_self(&json!({"action": "verify", "job": job.name, "tables": continued}))
                .await?;
        }
        let tables: Vec<Value> = verdicts
            .iter()
            .map(crate::verify::check::outcome_json)
            .collect();
        let drift = verdicts
            .iter()
            .any(|v| v.as_ref().is_ok_and(crate::verify::check::Verdict::drift));
        let unfinished: Vec<&str> = verdicts
            .iter()
            .filter_map(|v| v.as_ref().ok().filter(|v| v.unfinished))
            .map(|v| v.table.as_str())
            .collect();
        if !unfinished.is_empty() {
            tracing::warn!(job = %job.name, tables = ?unfinished, "verify stopped at the deadline: these tables are not known to be equal; verify them from the CLI");
        }
        let summary = json!({"action": "verify", "job": job.name, "drift": drift,
                             "tables": tables, "continued": continued,
                             "unfinished": unfinished});
        // Keys are row data: the log carries the counts, the result the example keys.
        let counts: Vec<Value> = verdicts
            .iter()
            .filter_map(|v| v.as_ref().ok())
            .map(|v| {
                json!({"table": v.table, "only_source": v.only_source.count,
                       "only_redshift": v.only_redshift.count, "differ": v.differ.count,
                       "duplicated": v.duplicated.count,
                       "pending": v.pending, "keys_transferred": v.keys_transferred})
            })
            .collect();
        let logged = json!(counts).to_string();
        if drift {
            tracing::warn!(job = %job.name, tables = %logged, "verify found drift");
        } else {
            tracing::info!(job = %job.name, tables = %logged, "verify finished");
        }
        let failed: Vec<String> = verdicts
            .iter()
            .filter_map(|v| v.as_ref().err().map(ToString::to_string))
            .collect();
        if !failed.is_empty() {
            return Err(Error::Failed(format!(
                "verify of job {}: {}",
                job.name,
                failed.join("; ")
            )));
        }
        Ok(summary)
    }

    async fn setup(&self, name: &str) -> Result<Value> {
        let job = self.app.store.require_job(name).await?.job;
        let outcomes = crate::setup::run(
            &self.app,
            &job,
            &crate::setup::Options::default(),
            Utc::now(),
        )
        .await?;
        let tables: Vec<Value> = outcomes
            .iter()
            .map(|o| match &o.result {
                Ok(plan) => json!({"table": o.table, "ok": true, "changes": plan.changes, "warnings": plan.decisions.warnings}),
                Err(e) => json!({"table": o.table, "ok": false, "error": e.to_string()}),
            })
            .collect();
        let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
        let summary = json!({"action": "setup", "job": name, "tables": tables});
        tracing::info!(job = name, failed, summary = %summary, "setup finished");
        if failed > 0 {
            return Err(Error::Failed(format!(
                "setup of job {name}: {failed} table(s) failed: {}",
                first_errors(&summary)
            )));
        }
        Ok(summary)
    }

    async fn run(&self, event: RunEvent, remaining: Duration, request_id: &str) -> Result<Value> {
        let job = self.app.store.require_job(&event.job).await?.job;
        // A fan-out part is a fresh start on its tables (its frequency guard applies); a
        // continuation goes on where its previous hop stopped.
        let continuation = event.run_id.is_some() && event.hop > 0;
        // EventBridge Scheduler delivers at least once, and so does an asynchronous
        // invoke: the same scheduled time, or the same hop of a part's chain, runs once.
        let delivery = match (&event.run_id, &event.scheduled_time) {
            (Some(run_id), _) => Some(format!(
                "hop#{run_id}#{}#{}",
                event.part.unwrap_or(0),
                event.hop
            )),
            (None, Some(t)) => Some(format!("schedule#{}", t.to_rfc3339())),
            (None, None) => None,
        };
        if let Some(key) = &delivery {
            let first = self
                .app
                .store
                .claim_delivery(&job.name, key, request_id, Utc::now(), DELIVERY_MEMORY)
                .await?;
            if !first {
                tracing::info!(job = %job.name, delivery = %key, execution_id = event.execution_id.as_deref().unwrap_or(""), "skipped: delivered before");
                return Ok(
                    json!({"action": "run", "job": job.name, "skipped": format!("{key} was delivered before")}),
                );
            }
        }
        if job.disabled && !event.force {
            tracing::info!(job = %job.name, "skipped: the job is disabled");
            return Ok(json!({"action": "run", "job": job.name, "skipped": "the job is disabled"}));
        }
        if !event.force && event.run_id.is_none() {
            // `at` is judged by the minute the schedule fired for, not by when the
            // invocation got to run (a cold start, a throttle, a retry).
            let at = event.scheduled_time.unwrap_or_else(Utc::now);
            if let Some(reason) = not_at_time(&job, at) {
                tracing::info!(job = %job.name, %reason, "skipped");
                return Ok(json!({"action": "run", "job": job.name, "skipped": reason}));
            }
        }
        if event.hop > HOP_CAP {
            return Err(Error::Failed(format!(
                "job {}: run {} reached the cap of {HOP_CAP} invocations; it stops here and the next scheduled run continues",
                job.name,
                event.run_id.as_deref().unwrap_or("?")
            )));
        }
        let run_id = event
            .run_id
            .clone()
            .unwrap_or_else(|| sync::new_run_id("lambda"));
        let owner = sync::new_owner(&run_id);
        // A job with more tables than one invocation carries is split: the other parts
        // go to invocations of their own, which run at the same time as this one.
        let mut tables = event.tables.clone();
        let mut parts_sent = Vec::new();
        if event.run_id.is_none() && tables.is_empty() {
            let order = sync::table_order(&self.app, &job).await?;
            let mut parts = self.fan_out.parts(&order).into_iter();
            tables = parts.next().unwrap_or_default();
            for (k, part) in parts.enumerate() {
                let mut payload = json!({
                    "action": "run", "job": job.name, "tables": part, "run_id": run_id,
                    "part": k + 1, "force": event.force, "from_scratch": event.from_scratch,
                });
                if let Some(t) = event.scheduled_time {
                    payload["scheduled_time"] = t.to_rfc3339().into();
                }
                self.invoke_self(&payload).await?;
                parts_sent.push(payload);
            }
        }
        let options = Options {
            tables,
            from_scratch: event.from_scratch,
            force: event.force || continuation,
            run_id: run_id.clone(),
            owner: Some(owner.clone()),
            take_over: event.owner.clone(),
            hand_over: event.hop < HOP_CAP,
            scheduled_time: event.scheduled_time,
            deadline: Some(Instant::now() + remaining.saturating_sub(self.margin)),
            continuation,
            observer: None,
        };
        let outcomes = sync::run(&self.app, &job, &options, self.timing).await?;
        let behind: Vec<TableRef> = outcomes
            .iter()
            .filter(|o| matches!(&o.result, Ok(r) if r.behind()))
            .map(|o| o.table.clone())
            .collect();
        let mut continued = Value::Null;
        if !behind.is_empty() {
            let mut next = json!({
                "action": "run", "job": job.name, "tables": behind,
                "run_id": run_id, "hop": event.hop + 1, "owner": owner,
            });
            if let Some(part) = event.part {
                next["part"] = part.into();
            }
            if let Some(t) = event.scheduled_time {
                next["scheduled_time"] = t.to_rfc3339().into();
            }
            if event.hop + 1 > HOP_CAP {
                tracing::error!(job = %job.name, run_id, "hop cap reached with tables still behind");
            } else if let Err(e) = self.invoke_self(&next).await {
                // Nobody will take the leases over: give them back.
                for t in &behind {
                    let _ = self.app.store.release_lease(&job.name, t, &owner).await;
                }
                return Err(e);
            } else {
                continued = next;
            }
        }
        let tables: Vec<Value> = outcomes
            .iter()
            .map(|o| match &o.result {
                Ok(r) => json!({"table": o.table, "ok": true, "report": r}),
                Err(e) => json!({"table": o.table, "ok": false, "error": e.to_string()}),
            })
            .collect();
        let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
        let summary = json!({
            "action": "run", "job": job.name, "run_id": run_id, "hop": event.hop,
            "tables": tables, "continuation": continued, "parts": parts_sent,
        });
        for o in &outcomes {
            let m = o.measured(&job.name, &run_id);
            match &o.result {
                Ok(r) => {
                    tracing::info!(job = %job.name, table = %o.table, run_id, rows = m.rows, bytes = m.bytes, seconds = m.seconds, rows_per_second = m.rows_per_second(), lag_seconds = m.lag_seconds, chunks = r.chunks, caught_up = r.caught_up, rows_deleted = r.rows_deleted, "table run")
                }
                Err(e) => {
                    tracing::error!(job = %job.name, table = %o.table, run_id, seconds = m.seconds, error = %e, "table run failed")
                }
            }
            if self.emit_metrics {
                // Its own stdout line: CloudWatch Logs reads EMF only from a whole event.
                println!("{}", m.emf(Utc::now().timestamp_millis()));
            }
        }
        if failed > 0 {
            return Err(Error::Failed(format!(
                "job {}: {failed} table(s) failed: {}",
                job.name,
                first_errors(&summary)
            )));
        }
        Ok(summary)
    }

    async fn invoke_self(&self, payload: &Value) -> Result<()> {
        let function = self.app.settings.function_name.clone().ok_or(
            crate::aws::MissingSetting {
                name: "LOADER_FUNCTION_NAME",
                what: "name the function continuations invoke (set by the SAM template; AWS_LAMBDA_FUNCTION_NAME inside Lambda)",
            },
        )?;
        self.app
            .clients
            .lambda
            .invoke()
            .function_name(&function)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload.to_string()))
            .send()
            .await
            .map_err(|e| {
                let e = AwsError::of("Invoke", Resource::Function(&function), &e);
                Error::Failed(format!("sending the continuation failed: {e}"))
            })?;
        tracing::info!(function, payload = %payload, "continuation sent");
        Ok(())
    }
}

/// `None` when the job's `at` allows the minute of `time` (or it has no `at`), else why
/// not.
fn not_at_time(job: &Job, time: DateTime<Utc>) -> Option<String> {
    let entries = job.at.as_ref()?;
    let at = crate::schedule::At::parse(&entries.0).ok()?;
    let tz: chrono_tz::Tz = job
        .tz
        .as_deref()
        .and_then(|t| t.parse().ok())
        .unwrap_or(chrono_tz::UTC);
    let now = time.with_timezone(&tz);
    (!at.matches(&now)).then(|| {
        format!(
            "{} is not a time the job's `at` ({}) allows",
            now.format("%A %H:%M %Z"),
            entries.0.join(", ")
        )
    })
}

/// One schedule change as JSON (the CLI prints the same).
pub fn change_json(c: &crate::scheduler::Change) -> Value {
    use crate::scheduler::Change;
    match c {
        Change::Created(d) | Change::Updated(d) | Change::Unchanged(d) => json!({
            "change": match c { Change::Created(_) => "created", Change::Updated(_) => "updated", _ => "unchanged" },
            "schedule": d.name, "expression": d.expression, "timezone": d.timezone, "note": d.note,
        }),
        Change::Deleted(name) => json!({"change": "deleted", "schedule": name}),
    }
}

fn first_errors(summary: &Value) -> String {
    summary["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["error"].as_str())
        .take(3)
        .collect::<Vec<_>>()
        .join("; ")
}

/// How long each step of the function's init took, logged once before the first poll
/// so a slow cold start says what dominated it (BENCHMARKS.md, "Cold start").
struct InitTimes {
    started: Instant,
    last: Instant,
    steps: Vec<(&'static str, Duration)>,
}

impl InitTimes {
    /// `started` is when `main` began; the runtime and the log set-up before it count
    /// as the first step.
    fn new(started: Instant) -> InitTimes {
        let mut times = InitTimes {
            started,
            last: started,
            steps: Vec::new(),
        };
        times.lap("runtime");
        times
    }

    fn lap(&mut self, step: &'static str) {
        let now = Instant::now();
        self.steps.push((step, now - self.last));
        self.last = now;
    }

    /// `init finished total_ms=.. runtime_ms=.. settings_ms=..`: one line, milliseconds.
    fn log(&self) {
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|(name, d)| format!("{name}={:.1}", d.as_secs_f64() * 1000.0))
            .collect();
        tracing::info!(
            total_ms = ((self.last - self.started).as_secs_f64() * 10_000.0).round() / 10.0,
            steps_ms = steps.join(" "),
            "init finished"
        );
    }
}

/// Runs the Lambda runtime loop until the container is shut down.
pub fn main() -> ExitCode {
    let started = Instant::now();
    crate::logging::init(true);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let handler = match runtime.block_on(init(started)) {
        Ok(handler) => handler,
        Err(e) => {
            tracing::error!(error = %e, "init failed");
            runtime.block_on(report_init_error(&e.to_string()));
            return ExitCode::FAILURE;
        }
    };
    let handler = &handler;
    let result = runtime.block_on(async {
        lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
            let deadline_ms = event.context.deadline as i64;
            let remaining =
                Duration::from_millis((deadline_ms - Utc::now().timestamp_millis()).max(0) as u64);
            handler
                .handle_request(event.payload, remaining, &event.context.request_id)
                .await
        }))
        .await
        .map_err(|e| Error::Failed(format!("the Lambda runtime stopped: {e}")))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}

/// Settings, AWS clients and the handler, each step timed.
async fn init(started: Instant) -> Result<Handler> {
    let mut init = InitTimes::new(started);
    let settings = crate::aws::Settings::from_env()?;
    init.lap("settings");
    let sdk = crate::aws::sdk_config().await;
    init.lap("aws_config");
    let clients = crate::aws::Clients::new(&sdk, &settings);
    init.lap("clients");
    let app = App::new(settings, clients)?;
    let handler = Handler::from_lookup(app, |k| std::env::var(k).ok())?;
    init.lap("handler");
    init.log();
    Ok(handler)
}

/// Tells Lambda why the init failed (`/runtime/init/error`), so the invocation fails
/// with the reason (`LOADER_LEASE_SECONDS: ...`) rather than a bare `Runtime.ExitError`.
/// `lambda_runtime` reports only its own init errors; this uses its API client.
async fn report_init_error(message: &str) {
    let body = serde_json::json!({"errorType": "Runtime.InitError", "errorMessage": message});
    let request = lambda_runtime_api_client::build_request()
        .method("POST")
        .uri("/2018-06-01/runtime/init/error")
        .header("lambda-runtime-function-error-type", "Runtime.InitError")
        .header("content-type", "application/json")
        .body(lambda_runtime_api_client::body::Body::from(
            body.to_string(),
        ));
    let sent = match request {
        Ok(request) => lambda_runtime_api_client::PooledClient::builder()
            .build()
            .call(request)
            .await
            .map(|_| ()),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "could not report the init error to the Lambda runtime API");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_and_name_what_is_wrong() {
        assert_eq!(
            parse_event(&json!({"action": "run", "job": "shop"})).unwrap(),
            Event::Run(RunEvent {
                job: "shop".into(),
                tables: vec![],
                from_scratch: false,
                force: false,
                run_id: None,
                hop: 0,
                owner: None,
                scheduled_time: None,
                execution_id: None,
                part: None,
            })
        );
        // What EventBridge Scheduler delivers from the schedule's input.
        let Event::Run(scheduled) = parse_event(&json!({"action": "run", "job": "shop",
            "scheduled_time": "2026-11-25T07:00:00Z", "execution_id": "d32c5kddcf5bb8c3"}))
        .unwrap() else {
            panic!("a run event")
        };
        assert_eq!(
            scheduled.scheduled_time.map(|t| t.to_rfc3339()),
            Some("2026-11-25T07:00:00+00:00".to_string())
        );
        let e = parse_event(&json!({"job": "shop"}))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "invalid event: missing field `action`");
        let e = parse_event(&json!({"action": "dance"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `dance`"), "{e}");
        let e = parse_event(&json!({"action": "run", "job": "x", "tabels": []}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `tabels`"), "{e}");
        // A value of the wrong type names its field and what it should be.
        for (event, message) in [
            (
                json!({"action": "run", "job": "x", "tables": "public.orders"}),
                "invalid event: tables: invalid type: string \"public.orders\", expected a list of \"schema.table\"",
            ),
            (
                json!({"action": "run", "job": "x", "tables": ["a.b.c"]}),
                "invalid event: tables[0]: expected schema.table (quote a part holding a dot: \"my.schema\".orders), got \"a.b.c\"",
            ),
            (
                json!({"action": "run", "job": "x", "hop": "3"}),
                "invalid event: hop: invalid type: string \"3\", expected u32",
            ),
            (
                json!({"action": "run", "job": 7}),
                "invalid event: job: invalid type: integer `7`, expected a string",
            ),
            (
                json!({"action": "run", "job": "x", "scheduled_time": "7am"}),
                "invalid event: scheduled_time: input contains invalid characters",
            ),
        ] {
            assert_eq!(parse_event(&event).unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn a_job_with_many_tables_is_dealt_into_parts() {
        let fan = FanOut {
            tables_per_invocation: 2,
            limit: 3,
        };
        let tables: Vec<u32> = (1..=7).collect();
        assert_eq!(
            fan.parts(&tables),
            vec![vec![1, 4, 7], vec![2, 5], vec![3, 6]],
            "4 parts wanted, 3 allowed"
        );
        assert_eq!(
            fan.parts(&tables[..2]),
            vec![vec![1, 2]],
            "fits one invocation"
        );
        assert_eq!(fan.parts::<u32>(&[]), vec![Vec::<u32>::new()]);
        let roomy = FanOut {
            tables_per_invocation: 3,
            limit: 8,
        };
        assert_eq!(
            roomy.parts(&tables),
            vec![vec![1, 4, 7], vec![2, 5], vec![3, 6]]
        );
        let e = FanOut::from_lookup(&|k: &str| (k == "LOADER_FANOUT_LIMIT").then(|| "0".into()))
            .unwrap_err();
        assert_eq!(
            e,
            "LOADER_FANOUT_LIMIT: \"0\" is not a whole number from 1 to 1000"
        );
    }
}
