//! PURE: each table's health, from what DynamoDB holds and what the source answered,
//! for `status` and `runs`. The command line reads both (`src/cli/status.rs`); nothing
//! here does I/O, and time comes in as `now`.
//!
//! Lag is the source's newest key against the table's mark: the updated key for
//! INSERT_AND_UPDATE, the primary key for INSERT_ONLY. When rows lie past the mark, a
//! timestamp key gives the lag in seconds (`newest - mark`); any other key falls back to
//! the time since the last success (an upper bound). FULL_DATA_SYNC tables are as old as
//! their last success.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{CopyMode, Job, Table, TableRef};
use crate::setup::{Decisions, DECISIONS, SETUP_ERROR};
use crate::source::query::{typed_literal, KeyColumn};
use crate::state::{Lease, TableItem};
use crate::sync::{parse_source_time, Mark, LAST_RUN, LAST_SUCCESS, MARK, ROWS_TOTAL};

/// Errors are cut to this many characters in `status` and `runs`.
pub const ERROR_CHARS: usize = 400;

/// Exit codes of `status`.
pub const EXIT_FAILING: u8 = 1;
pub const EXIT_LAGGING: u8 = 2;

/// One stored run result (`last_run`, `last_success`, a `RUN#` item).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub table: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub seconds: Option<f64>,
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
    /// `ok`, `failed` or `skipped` (not due yet).
    pub outcome: &'static str,
    /// The error's first line, cut to [`ERROR_CHARS`]; or why it was skipped.
    pub error: Option<String>,
    /// Values the run had to change to load them: text cut to its column's size, JSON or
    /// binary too large for Redshift (loaded as NULL), and values Redshift cannot hold
    /// (infinity, NaN, ...) replaced as setup's decisions say.
    pub values_cut: u64,
    /// Of `values_cut`, those replaced because Redshift cannot hold them.
    pub values_replaced: u64,
    /// Rows deleted from Redshift because the source no longer has them
    /// (`deletes: reconcile`).
    pub rows_deleted: u64,
}

impl RunRecord {
    /// Reads a stored run document; `None` when it is not one.
    pub fn from_json(doc: &serde_json::Value) -> Option<RunRecord> {
        let time = |key: &str| {
            doc[key]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        let ok = doc["ok"].as_bool()?;
        let report = &doc["report"];
        let skipped = report["skipped"].as_str();
        Some(RunRecord {
            run_id: doc["run_id"].as_str().unwrap_or_default().to_string(),
            table: doc["table"].as_str().unwrap_or_default().to_string(),
            started_at: time("started_at"),
            finished_at: time("at"),
            seconds: doc["seconds"].as_f64(),
            rows: report["rows"].as_u64(),
            bytes: report["bytes_staged"].as_u64(),
            outcome: match (ok, skipped) {
                (false, _) => "failed",
                (true, Some(_)) => "skipped",
                (true, None) => "ok",
            },
            error: doc["error"].as_str().or(skipped).map(error_line),
            values_cut: report["values_truncated"].as_u64().unwrap_or(0)
                + report["values_nulled"].as_u64().unwrap_or(0)
                + report["values_replaced"].as_u64().unwrap_or(0),
            values_replaced: report["values_replaced"].as_u64().unwrap_or(0),
            rows_deleted: report["rows_deleted"].as_u64().unwrap_or(0),
        })
    }
}

/// The first line of an error, cut to [`ERROR_CHARS`] characters (with `…`).
pub fn error_line(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default().trim_end();
    if first.chars().count() <= ERROR_CHARS {
        first.to_string()
    } else {
        let cut: String = first.chars().take(ERROR_CHARS - 1).collect();
        format!("{cut}…")
    }
}

/// What DynamoDB holds about one table of a job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stored {
    pub decisions: Option<Decisions>,
    pub mark: Option<Mark>,
    pub last_run: Option<RunRecord>,
    pub last_success: Option<RunRecord>,
    pub setup_error: Option<String>,
    pub rows_total: u64,
    pub lease: Option<Lease>,
}

impl Stored {
    /// From the table's `TABLE#` item (absent before setup) and the job's live leases.
    pub fn from_item(table: &TableRef, item: Option<&TableItem>, leases: &[Lease]) -> Stored {
        let key = table.to_string();
        let lease = leases.iter().find(|l| l.table == key).cloned();
        let Some(item) = item else {
            return Stored {
                lease,
                ..Stored::default()
            };
        };
        let doc = |name: &str| item.documents.get(name);
        Stored {
            decisions: doc(DECISIONS).and_then(|d| serde_json::from_value(d.clone()).ok()),
            mark: doc(MARK).and_then(|d| serde_json::from_value(d.clone()).ok()),
            last_run: doc(LAST_RUN).and_then(RunRecord::from_json),
            last_success: doc(LAST_SUCCESS).and_then(RunRecord::from_json),
            setup_error: doc(SETUP_ERROR)
                .and_then(|d| d["message"].as_str())
                .map(error_line),
            rows_total: item.counters.get(ROWS_TOTAL).copied().unwrap_or(0),
            lease,
        }
    }

    /// The copy mode setup decided (else the job's, when it names one).
    fn mode(&self, table: &Table) -> Option<CopyMode> {
        self.decisions
            .as_ref()
            .map(|d| d.copy_mode.value)
            .or(table.copy_mode)
    }

    /// The cursor columns with their source types, as a run uses them; empty for
    /// FULL_DATA_SYNC and before setup.
    fn keys(&self) -> Vec<KeyColumn> {
        let Some(d) = &self.decisions else {
            return Vec::new();
        };
        let mut names: Vec<String> = Vec::new();
        match d.copy_mode.value {
            CopyMode::FullDataSync => return Vec::new(),
            CopyMode::InsertAndUpdate => names.extend(d.updated_key.value.clone()),
            CopyMode::InsertOnly => {}
        }
        names.extend(d.primary_key.value.iter().cloned());
        names
            .iter()
            .filter_map(|n| {
                d.columns
                    .iter()
                    .find(|c| &c.source == n && !c.dropped)
                    .map(|c| KeyColumn {
                        name: n.clone(),
                        pg_type: c.source_type.clone(),
                    })
            })
            .collect()
    }

    /// The mark's cursor, when it was made with these keys.
    fn cursor(&self, keys: &[KeyColumn]) -> Option<&[String]> {
        let m = self.mark.as_ref()?;
        let same = m.keys.len() == keys.len() && m.keys.iter().zip(keys).all(|(a, b)| a == &b.name);
        (same && m.cursor.len() == keys.len()).then_some(m.cursor.as_slice())
    }
}

/// The question `status` asks the source about one table: its newest key, and whether
/// any row lies past the mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeQuery {
    pub key: String,
    pub sql: String,
}

/// `SELECT (SELECT max(k) FROM t)::text, EXISTS (SELECT 1 FROM t WHERE k IS NOT NULL
/// AND (k, pk) > (mark))`; `None` when there is no key to compare (FULL_DATA_SYNC,
/// not set up).
pub fn probe_query(table: &TableRef, stored: &Stored) -> Option<ProbeQuery> {
    let keys = stored.keys();
    let first = keys.first()?;
    let t = crate::quote::qualified(&table.schema, &table.name);
    let k = crate::quote::ident(&first.name);
    let mut past = format!("{k} IS NOT NULL");
    if let Some(cursor) = stored.cursor(&keys) {
        let cols: Vec<String> = keys.iter().map(|c| crate::quote::ident(&c.name)).collect();
        let vals: Vec<String> = keys
            .iter()
            .zip(cursor)
            .map(|(c, v)| typed_literal(v, &c.pg_type))
            .collect();
        past.push_str(&format!(
            " AND ({}) > ({})",
            cols.join(", "),
            vals.join(", ")
        ));
    }
    Some(ProbeQuery {
        key: first.name.clone(),
        sql: format!(
            "SELECT (SELECT max({k}) FROM {t})::text, EXISTS (SELECT 1 FROM {t} WHERE {past})"
        ),
    })
}

/// What the source answered for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The source's newest key value (as text) and whether rows lie past the mark.
    Read {
        newest: Option<String>,
        past_mark: bool,
    },
    /// Nothing was asked (no key to compare, or the table is disabled).
    NotAsked,
    /// The source could not say; the reason, one line.
    Unknown(String),
}

/// A table's state, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Its last run (or setup) failed.
    Failing,
    /// Its lag exceeds `--max-lag`.
    Lagging,
    /// Its last run loaded, but had to cut values to fit their columns.
    Warning,
    /// A run holds its lease now.
    Running,
    /// Setup has not run for it.
    NotSetUp,
    /// Set up, never run.
    NeverRun,
    Ok,
    /// `disabled: true` in the job; not run, not counted.
    Disabled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Failing => "failing",
            State::Lagging => "lagging",
            State::Warning => "warning",
            State::Running => "running",
            State::NotSetUp => "not set up",
            State::NeverRun => "never run",
            State::Ok => "ok",
            State::Disabled => "disabled",
        }
    }
}

/// What a lag in seconds measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LagBasis {
    /// No row lies past the mark: 0.
    CaughtUp,
    /// The source's newest timestamp key minus the mark's.
    Key,
    /// Rows lie past a key that is not a timestamp: the time since the last success,
    /// an upper bound.
    SinceSuccess,
    /// FULL_DATA_SYNC: the age of the last full copy.
    FullCopy,
}

/// One line of `status` (the JSON field names are documented in the README).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub job: String,
    pub table: String,
    pub mode: Option<CopyMode>,
    pub disabled: bool,
    pub state: State,
    pub last_success_at: Option<DateTime<Utc>>,
    pub since_success_seconds: Option<i64>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_run_ok: Option<bool>,
    /// The key the lag is measured on, the source's newest value and the mark's.
    pub lag_key: Option<String>,
    pub source_newest: Option<String>,
    pub mark: Option<String>,
    /// Whether the source has rows past the mark (`None`: not known).
    pub behind: Option<bool>,
    pub lag_seconds: Option<i64>,
    /// What `lag_seconds` measures.
    pub lag_basis: Option<LagBasis>,
    /// Why the lag is not known, when it is not.
    pub lag_unknown: Option<String>,
    pub rows_last_run: Option<u64>,
    pub rows_total: u64,
    pub error: Option<String>,
    /// Why the state is `warning`.
    pub warning: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
}

/// The row of one table.
pub fn row(
    job: &Job,
    table: &Table,
    stored: &Stored,
    probe: &Probe,
    now: DateTime<Utc>,
    max_lag: Option<u64>,
) -> Row {
    let mode = stored.mode(table);
    let keys = stored.keys();
    let cursor = stored.cursor(&keys);
    let success_at = stored.last_success.as_ref().and_then(|r| r.finished_at);
    let since_success = success_at.map(|t| (now - t).num_seconds().max(0));
    let last_run = stored.last_run.as_ref();
    let failed_run = last_run.filter(|r| r.outcome == "failed");
    let error = failed_run
        .and_then(|r| r.error.clone())
        .or_else(|| stored.setup_error.clone());

    let (behind, newest, lag, unknown) = match (mode, probe) {
        (Some(CopyMode::FullDataSync), _) => (
            None,
            None,
            since_success.map(|s| (s, LagBasis::FullCopy)),
            since_success.is_none().then(|| "never loaded".to_string()),
        ),
        (_, Probe::Unknown(reason)) => (None, None, None, Some(reason.clone())),
        (_, Probe::NotAsked) => (None, None, None, None),
        (_, Probe::Read { newest, past_mark }) => {
            let lag = match (*past_mark, cursor) {
                (false, _) => Some((0, LagBasis::CaughtUp)),
                (true, Some(mark)) => {
                    let is_time = keys
                        .first()
                        .is_some_and(|k| k.pg_type.starts_with("timestamp"));
                    let gap = match (is_time, newest.as_deref()) {
                        (true, Some(n)) => parse_source_time(n)
                            .zip(parse_source_time(&mark[0]))
                            .map(|(n, m)| ((n - m).num_seconds().max(0), LagBasis::Key)),
                        _ => None,
                    };
                    gap.or(since_success.map(|s| (s, LagBasis::SinceSuccess)))
                }
                (true, None) => None,
            };
            let unknown = (lag.is_none()).then(|| "nothing loaded yet".to_string());
            (Some(*past_mark), newest.clone(), lag, unknown)
        }
    };
    let (lag, lag_basis) = (lag.map(|(l, _)| l), lag.map(|(_, b)| b));

    let lease = stored.lease.as_ref();
    let warning = last_run
        .filter(|r| r.outcome == "ok" && r.values_cut > 0)
        .map(|r| {
            let cut = r.values_cut - r.values_replaced;
            let mut said = Vec::new();
            if cut > 0 {
                said.push(format!(
                    "the last run cut {cut} value(s) to fit their columns; widen them with column_types and run setup, or exclude them"
                ));
            }
            if r.values_replaced > 0 {
                said.push(format!(
                    "the last run replaced {} value(s) Redshift cannot hold (infinity, NaN, years after 294276) as setup's decisions say; choose null or extreme per column with refused_values",
                    r.values_replaced
                ));
            }
            said.join("; ")
        });
    let over = |limit: u64| lag.or(since_success).is_some_and(|l| l > limit as i64);
    let state = if table.disabled {
        State::Disabled
    } else if error.is_some() {
        State::Failing
    } else if max_lag.is_some_and(over) {
        State::Lagging
    } else if warning.is_some() {
        State::Warning
    } else if lease.is_some() {
        State::Running
    } else if stored.decisions.is_none() {
        State::NotSetUp
    } else if last_run.is_none() {
        State::NeverRun
    } else {
        State::Ok
    };
    Row {
        job: job.name.clone(),
        table: table.source.to_string(),
        mode,
        disabled: table.disabled,
        state,
        last_success_at: success_at,
        since_success_seconds: since_success,
        last_run_at: last_run.and_then(|r| r.finished_at),
        last_run_ok: last_run.map(|r| r.outcome != "failed"),
        lag_key: keys.first().map(|k| k.name.clone()),
        source_newest: newest,
        mark: cursor.map(|c| c.join(", ")),
        behind,
        lag_seconds: lag,
        lag_basis,
        lag_unknown: unknown,
        rows_last_run: last_run.and_then(|r| r.rows),
        rows_total: stored.rows_total,
        error,
        warning,
        lease_owner: lease.map(|l| l.owner.clone()),
        lease_expires_at: lease.map(|l| l.expires_at),
    }
}

/// The exit code for these rows: [`EXIT_FAILING`] when any table is failing, else
/// [`EXIT_LAGGING`] when any lags more than `--max-lag`, else 0.
pub fn exit_code(rows: &[Row]) -> u8 {
    if rows.iter().any(|r| r.state == State::Failing) {
        EXIT_FAILING
    } else if rows.iter().any(|r| r.state == State::Lagging) {
        EXIT_LAGGING
    } else {
        0
    }
}

/// Every table of the job, in the job's order. `items` are the job's `TABLE#` items;
/// `probes` the source's answers by table (missing: not asked).
pub fn rows(
    job: &Job,
    items: &[TableItem],
    leases: &[Lease],
    probes: &BTreeMap<String, Probe>,
    now: DateTime<Utc>,
    max_lag: Option<u64>,
) -> Vec<Row> {
    job.tables
        .iter()
        .map(|t| {
            let key = t.source.to_string();
            let item = items.iter().find(|i| i.table == key);
            let stored = Stored::from_item(&t.source, item, leases);
            let probe = probes.get(&key).unwrap_or(&Probe::NotAsked);
            row(job, t, &stored, probe, now, max_lag)
        })
        .collect()
}

/// `90s`, `15m`, `2h`, `1d` or plain seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; write 90s, 15m, 2h, 1d or seconds"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?}; write 90s, 15m, 2h, 1d or seconds"
            ))
        }
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// `0s`, `45s`, `1m30s`, `2h5m`, `3d4h`: two units at most.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m, sec) = (s / 86400, s % 86400 / 3600, s % 3600 / 60, s % 60);
    let parts = [(d, "d"), (h, "h"), (m, "m"), (sec, "s")];
    let first = parts.iter().position(|(v, _)| *v > 0);
    match first {
        None => "0s".into(),
        Some(i) => parts[i..]
            .iter()
            .take(2)
            .filter(|(v, _)| *v > 0)
            .map(|(v, u)| format!("{v}{u}"))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Format;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    const NOW: &str = "2024-01-01T01:00:00Z";

    fn job() -> Job {
        Job::parse(
            "name: shop\n\
             source: { url: 'postgres://u@127.0.0.1/shop' }\n\
             destination: { url: 'postgres://u@127.0.0.1/dw', iam_role: 'arn:aws:iam::123456789012:role/r' }\n\
             frequency: 300\n\
             tables:\n\
             - { source: public.orders }\n\
             - { source: public.events }\n\
             - { source: public.countries }\n\
             - { source: public.old, disabled: true }\n",
            Format::Yaml,
        )
        .unwrap()
    }

    fn column(name: &str, source_type: &str) -> serde_json::Value {
        serde_json::json!({"name": name, "source": name, "source_type": source_type,
            "redshift_type": "BIGINT", "load": {"kind": "plain"}, "select": name, "not_null": false})
    }

    fn decisions(table: &str, mode: &str, pk: &[&str], updated: Option<&str>) -> serde_json::Value {
        serde_json::json!({
            "source": table, "destination": table.replace("public", "analytics"),
            "copy_mode": {"value": mode, "why": "test"},
            "primary_key": {"value": pk, "why": "test"},
            "updated_key": {"value": updated, "why": "test"},
            "dist_key": null, "sort_key": [],
            "columns": [column("id", "bigint"), column("updated_at", "timestamp with time zone")],
            "warnings": [],
        })
    }

    fn run_doc(ok: bool, at: &str, rows: u64) -> serde_json::Value {
        if ok {
            serde_json::json!({"table": "t", "run_id": "cli-1", "at": at, "ok": true,
                "started_at": at, "seconds": 1.5,
                "report": {"rows": rows, "chunks": 1, "bytes_staged": 100, "caught_up": true,
                           "values_truncated": 0, "values_nulled": 0, "empty_reads": 1}})
        } else {
            serde_json::json!({"table": "t", "run_id": "cli-2", "at": at, "ok": false,
                "error": "table public.t: source database 127.0.0.1:5432/shop: relation \"public.t\" does not exist\nsecond line"})
        }
    }

    fn item(table: &str, docs: &[(&str, serde_json::Value)], total: u64) -> TableItem {
        TableItem {
            table: table.into(),
            documents: docs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            counters: [(ROWS_TOTAL.to_string(), total)].into_iter().collect(),
        }
    }

    fn orders_item(last_run_ok: bool) -> TableItem {
        let mut docs = vec![
            (
                DECISIONS,
                decisions(
                    "public.orders",
                    "INSERT_AND_UPDATE",
                    &["id"],
                    Some("updated_at"),
                ),
            ),
            (
                MARK,
                serde_json::json!({"mode": "INSERT_AND_UPDATE", "keys": ["updated_at", "id"],
                                   "cursor": ["2024-01-01 00:00:20+00", "520"]}),
            ),
            (LAST_SUCCESS, run_doc(true, "2024-01-01T00:59:00Z", 520)),
        ];
        docs.push((
            LAST_RUN,
            if last_run_ok {
                run_doc(true, "2024-01-01T00:59:00Z", 520)
            } else {
                run_doc(false, "2024-01-01T00:59:30Z", 0)
            },
        ));
        item("public.orders", &docs, 1040)
    }

    #[test]
    fn probe_query_compares_the_whole_cursor_with_typed_literals() {
        let stored = Stored::from_item(
            &TableRef::new("public", "orders"),
            Some(&orders_item(true)),
            &[],
        );
        let q = probe_query(&TableRef::new("public", "orders"), &stored).unwrap();
        assert_eq!(q.key, "updated_at");
        assert_eq!(
            q.sql,
            "SELECT (SELECT max(\"updated_at\") FROM \"public\".\"orders\")::text, \
             EXISTS (SELECT 1 FROM \"public\".\"orders\" WHERE \"updated_at\" IS NOT NULL \
             AND (\"updated_at\", \"id\") > ('2024-01-01 00:00:20+00'::timestamp with time zone, '520'::bigint))"
        );
        // No mark yet: any row is past it.
        let mut fresh = stored.clone();
        fresh.mark = None;
        assert!(probe_query(&TableRef::new("public", "orders"), &fresh)
            .unwrap()
            .sql
            .ends_with("WHERE \"updated_at\" IS NOT NULL)"));
        // A full copy has nothing to compare.
        let full = Stored::from_item(
            &TableRef::new("public", "countries"),
            Some(&item(
                "public.countries",
                &[(
                    DECISIONS,
                    decisions("public.countries", "FULL_DATA_SYNC", &[], None),
                )],
                0,
            )),
            &[],
        );
        assert_eq!(
            probe_query(&TableRef::new("public", "countries"), &full),
            None
        );
    }

    #[test]
    fn healthy_lagging_failing_and_unknown_tables() {
        let job = job();
        let now = at(NOW);
        let t = |i: usize| &job.tables[i];
        let orders = Stored::from_item(&t(0).source, Some(&orders_item(true)), &[]);

        // Healthy: nothing past the mark.
        let caught_up = Probe::Read {
            newest: Some("2024-01-01 00:00:20+00".into()),
            past_mark: false,
        };
        let r = row(&job, t(0), &orders, &caught_up, now, Some(900));
        assert_eq!(r.state, State::Ok);
        assert_eq!(r.mode, Some(CopyMode::InsertAndUpdate));
        assert_eq!(r.lag_seconds, Some(0));
        assert_eq!(r.lag_basis, Some(LagBasis::CaughtUp));
        assert_eq!(r.behind, Some(false));
        assert_eq!(r.since_success_seconds, Some(60));
        assert_eq!(r.rows_last_run, Some(520));
        assert_eq!(r.rows_total, 1040);
        assert_eq!(r.mark.as_deref(), Some("2024-01-01 00:00:20+00, 520"));
        assert_eq!(r.lag_key.as_deref(), Some("updated_at"));
        assert_eq!(r.error, None);

        // Lagging: the source's newest updated key is 30 minutes past the mark.
        let behind = Probe::Read {
            newest: Some("2024-01-01 00:30:20+00".into()),
            past_mark: true,
        };
        let r = row(&job, t(0), &orders, &behind, now, Some(900));
        assert_eq!((r.state, r.lag_seconds), (State::Lagging, Some(1800)));
        assert_eq!(r.lag_basis, Some(LagBasis::Key));
        let r = row(&job, t(0), &orders, &behind, now, Some(3600));
        assert_eq!((r.state, r.lag_seconds), (State::Ok, Some(1800)));
        let r = row(&job, t(0), &orders, &behind, now, None);
        assert_eq!(r.state, State::Ok, "no --max-lag: lag alone is not a state");

        // Failing: the last run failed; its error's first line is shown.
        let failing = Stored::from_item(&t(0).source, Some(&orders_item(false)), &[]);
        let r = row(&job, t(0), &failing, &caught_up, now, Some(900));
        assert_eq!(r.state, State::Failing);
        assert_eq!(r.last_run_ok, Some(false));
        assert_eq!(
            r.error.as_deref(),
            Some("table public.t: source database 127.0.0.1:5432/shop: relation \"public.t\" does not exist")
        );

        // The source could not be read: the reason, and --max-lag falls back to the
        // time since the last success.
        let unknown = Probe::Unknown("source database 127.0.0.1:1/shop: connection refused".into());
        let r = row(&job, t(0), &orders, &unknown, now, Some(30));
        assert_eq!((r.lag_seconds, r.lag_basis), (None, None));
        assert_eq!(
            r.lag_unknown.as_deref(),
            Some("source database 127.0.0.1:1/shop: connection refused")
        );
        assert_eq!(
            r.state,
            State::Lagging,
            "60 s since the last success > 30 s"
        );
        assert_eq!(
            row(&job, t(0), &orders, &unknown, now, Some(90)).state,
            State::Ok
        );
    }

    #[test]
    fn other_keys_modes_and_states() {
        let job = job();
        let now = at(NOW);
        // INSERT_ONLY on an integer key: behind → the time since the last success.
        let events = item(
            "public.events",
            &[
                (
                    DECISIONS,
                    decisions("public.events", "INSERT_ONLY", &["id"], None),
                ),
                (
                    MARK,
                    serde_json::json!({"mode": "INSERT_ONLY", "keys": ["id"], "cursor": ["50"]}),
                ),
                (LAST_SUCCESS, run_doc(true, "2024-01-01T00:50:00Z", 50)),
                (LAST_RUN, run_doc(true, "2024-01-01T00:50:00Z", 50)),
            ],
            50,
        );
        let stored = Stored::from_item(&job.tables[1].source, Some(&events), &[]);
        let probe = Probe::Read {
            newest: Some("60".into()),
            past_mark: true,
        };
        let r = row(&job, &job.tables[1], &stored, &probe, now, Some(300));
        assert_eq!(r.lag_key.as_deref(), Some("id"));
        assert_eq!(
            (r.source_newest.as_deref(), r.mark.as_deref()),
            (Some("60"), Some("50"))
        );
        assert_eq!((r.lag_seconds, r.state), (Some(600), State::Lagging));
        assert_eq!(r.lag_basis, Some(LagBasis::SinceSuccess));

        // FULL_DATA_SYNC: as old as its last success; nothing asked.
        let countries = item(
            "public.countries",
            &[
                (
                    DECISIONS,
                    decisions("public.countries", "FULL_DATA_SYNC", &[], None),
                ),
                (LAST_SUCCESS, run_doc(true, "2024-01-01T00:55:00Z", 30)),
                (LAST_RUN, run_doc(true, "2024-01-01T00:55:00Z", 30)),
            ],
            30,
        );
        let stored = Stored::from_item(&job.tables[2].source, Some(&countries), &[]);
        let r = row(&job, &job.tables[2], &stored, &Probe::NotAsked, now, None);
        assert_eq!((r.lag_seconds, r.state), (Some(300), State::Ok));
        assert_eq!(r.lag_basis, Some(LagBasis::FullCopy));
        assert_eq!(r.mode, Some(CopyMode::FullDataSync));

        // A lease: running, with holder and expiry.
        let lease = Lease {
            table: "public.countries".into(),
            owner: "cli-20240101T005959-1a2b3c4d".into(),
            expires_at: at("2024-01-01T01:20:00Z"),
        };
        let stored = Stored::from_item(
            &job.tables[2].source,
            Some(&countries),
            std::slice::from_ref(&lease),
        );
        let r = row(&job, &job.tables[2], &stored, &Probe::NotAsked, now, None);
        assert_eq!(r.state, State::Running);
        assert_eq!(r.lease_owner.as_deref(), Some(lease.owner.as_str()));
        assert_eq!(r.lease_expires_at, Some(lease.expires_at));

        // Nothing stored: not set up; a setup error: failing; disabled: disabled.
        let none = Stored::from_item(&job.tables[1].source, None, &[]);
        let r = row(&job, &job.tables[1], &none, &Probe::NotAsked, now, Some(1));
        assert_eq!((r.state, r.mode, r.rows_total), (State::NotSetUp, None, 0));
        let broken = item(
            "public.events",
            &[(
                SETUP_ERROR,
                serde_json::json!({"at": NOW, "message": "table public.events: column \"x\" has type xml"}),
            )],
            0,
        );
        let stored = Stored::from_item(&job.tables[1].source, Some(&broken), &[]);
        let r = row(&job, &job.tables[1], &stored, &Probe::NotAsked, now, None);
        assert_eq!(r.state, State::Failing);
        assert_eq!(
            r.error.as_deref(),
            Some("table public.events: column \"x\" has type xml")
        );
        let r = row(&job, &job.tables[3], &stored, &Probe::NotAsked, now, None);
        assert_eq!((r.state, r.disabled), (State::Disabled, true));

        // rows() keeps the job's order and finds each table's item.
        let all = rows(&job, &[countries, events], &[], &BTreeMap::new(), now, None);
        let names: Vec<_> = all.iter().map(|r| (r.table.as_str(), r.state)).collect();
        assert_eq!(
            names,
            [
                ("public.orders", State::NotSetUp),
                ("public.events", State::Ok),
                ("public.countries", State::Ok),
                ("public.old", State::Disabled),
            ]
        );
    }

    #[test]
    fn exit_codes_say_failing_before_lagging() {
        let job = job();
        let now = at(NOW);
        let orders = Stored::from_item(&job.tables[0].source, Some(&orders_item(true)), &[]);
        let failing = Stored::from_item(&job.tables[0].source, Some(&orders_item(false)), &[]);
        let behind = Probe::Read {
            newest: Some("2024-01-01 00:30:20+00".into()),
            past_mark: true,
        };
        let ok = row(&job, &job.tables[0], &orders, &behind, now, None);
        let lagging = row(&job, &job.tables[0], &orders, &behind, now, Some(60));
        let failed = row(&job, &job.tables[0], &failing, &behind, now, Some(60));
        assert_eq!(exit_code(&[]), 0);
        assert_eq!(exit_code(std::slice::from_ref(&ok)), 0);
        assert_eq!(exit_code(&[ok.clone(), lagging.clone()]), EXIT_LAGGING);
        assert_eq!(exit_code(&[lagging, failed, ok]), EXIT_FAILING);
    }

    #[test]
    fn a_last_run_that_cut_values_is_a_warning() {
        let mut cut = run_doc(true, "2024-01-01T00:59:00Z", 7);
        cut["report"]["values_truncated"] = serde_json::json!(2);
        cut["report"]["values_nulled"] = serde_json::json!(1);
        let record = RunRecord::from_json(&cut).unwrap();
        assert_eq!(record.values_cut, 3);
        cut["report"]["values_replaced"] = serde_json::json!(4);
        let record = RunRecord::from_json(&cut).unwrap();
        assert_eq!((record.values_cut, record.values_replaced), (7, 4));
    }

    #[test]
    fn run_records_read_every_outcome() {
        let ok = RunRecord::from_json(&run_doc(true, "2024-01-01T00:59:00Z", 7)).unwrap();
        assert_eq!(
            ok,
            RunRecord {
                run_id: "cli-1".into(),
                table: "t".into(),
                started_at: Some(at("2024-01-01T00:59:00Z")),
                finished_at: Some(at("2024-01-01T00:59:00Z")),
                seconds: Some(1.5),
                rows: Some(7),
                bytes: Some(100),
                outcome: "ok",
                error: None,
                values_cut: 0,
                values_replaced: 0,
                rows_deleted: 0,
            }
        );
        let failed = RunRecord::from_json(&run_doc(false, "2024-01-01T00:59:30Z", 0)).unwrap();
        assert_eq!((failed.outcome, failed.rows), ("failed", None));
        assert!(!failed.error.unwrap().contains('\n'));
        let skipped = RunRecord::from_json(&serde_json::json!({
            "table": "t", "run_id": "r", "at": NOW, "ok": true,
            "report": {"rows": 0, "skipped": "not due until 01:05"}}))
        .unwrap();
        assert_eq!(
            (skipped.outcome, skipped.error.as_deref()),
            ("skipped", Some("not due until 01:05"))
        );
        assert_eq!(RunRecord::from_json(&serde_json::json!({"x": 1})), None);
    }

    #[test]
    fn error_lines_are_one_line_and_cut() {
        assert_eq!(error_line("a\nb"), "a");
        assert_eq!(error_line(""), "");
        let long = "é".repeat(ERROR_CHARS + 5);
        let cut = error_line(&long);
        assert_eq!(cut.chars().count(), ERROR_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(
            error_line(&"x".repeat(ERROR_CHARS)),
            "x".repeat(ERROR_CHARS)
        );
    }

    #[test]
    fn durations_parse_and_print() {
        for (text, seconds) in [
            ("90s", 90),
            ("15m", 900),
            ("2h", 7200),
            ("1d", 86400),
            ("45", 45),
            (" 0 ", 0),
        ] {
            assert_eq!(parse_duration(text), Ok(seconds), "{text}");
        }
        for bad in [
            "",
            "m",
            "15 m",
            "1w",
            "-5s",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for (seconds, text) in [
            (0, "0s"),
            (-3, "0s"),
            (45, "45s"),
            (90, "1m30s"),
            (3600, "1h"),
            (7500, "2h5m"),
            (7505, "2h5m"),
            (90061, "1d1h"),
            (86400 + 60, "1d"),
        ] {
            assert_eq!(human_duration(seconds), text, "{seconds}");
        }
    }
}
