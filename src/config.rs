//! Jobs and tables: the job file, parsed and validated with field-named errors.
//!
//! A job file is YAML or JSON. [`Job::parse`] reads it into a tree of values, then
//! each field on its own, so that a value of the wrong type is one mistake among the
//! others (`tables[2].copy_mode: unknown value "UPSERT", ...`), never the only one
//! reported; unknown fields are mistakes too. [`Job::validate`] then checks what types
//! cannot (names, ranges, duplicates, contradictions). Every problem is reported at
//! once, each with the path of its field.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Rows per chunk when neither the table nor `IMPORT_CHUNK_SIZE` says otherwise.
pub const DEFAULT_CHUNK_SIZE: u64 = 100_000;
/// Rows per run when neither the table nor `IMPORT_ROW_LIMIT` says otherwise.
pub const DEFAULT_ROW_LIMIT: u64 = 5_000_000;
/// EventBridge fires at most once a minute.
pub const MIN_FREQUENCY: u64 = 60;

/// A table name qualified by its schema (`public.orders`). Names are kept exactly as
/// written (PostgreSQL names are case-sensitive); quoting happens only in the SQL
/// builders. Written as `schema.name`, `name` (schema `public`), or with double quotes
/// around a part that holds a dot or a quote: `"my.schema"."Order ""items"""`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableRef {
    pub schema: String,
    pub name: String,
}

impl TableRef {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> TableRef {
        TableRef {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            display_part(&self.schema),
            display_part(&self.name)
        )
    }
}

/// A name part as written in a job file: bare when that parses back the same.
fn display_part(part: &str) -> String {
    if !part.is_empty() && !part.contains(['.', '"']) && part.trim() == part {
        part.to_string()
    } else {
        format!("\"{}\"", part.replace('"', "\"\""))
    }
}

impl FromStr for TableRef {
    type Err = String;

    fn from_str(s: &str) -> Result<TableRef, String> {
        let parts = split_qualified(s)?;
        match parts.as_slice() {
            [name] => Ok(TableRef::new("public", name.clone())),
            [schema, name] => Ok(TableRef::new(schema.clone(), name.clone())),
            _ => Err(format!(
                "expected schema.table (quote a part holding a dot: \"my.schema\".orders), got {s:?}"
            )),
        }
    }
}

/// Splits `a.b` into parts, honouring double-quoted parts with `""` escapes.
fn split_qualified(s: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => return Err(format!("unterminated quote in {s:?}")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if c == '"' {
                    return Err(format!("stray quote in {s:?}"));
                }
                part.push(c);
                chars.next();
            }
        }
        if part.is_empty() {
            return Err(format!("empty name part in {s:?}"));
        }
        parts.push(part);
        match chars.next() {
            None => return Ok(parts),
            Some('.') => continue,
            Some(_) => return Err(format!("expected '.' after a quoted part in {s:?}")),
        }
    }
}

impl Serialize for TableRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TableRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TableRef, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How a table is kept up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CopyMode {
    /// New rows by a sequential key (the primary key).
    InsertOnly,
    /// New and changed rows by the updated key, merged on the primary key.
    InsertAndUpdate,
    /// A full copy every run, swapped in atomically.
    FullDataSync,
}

impl CopyMode {
    pub const ALL: [CopyMode; 3] = [
        CopyMode::InsertOnly,
        CopyMode::InsertAndUpdate,
        CopyMode::FullDataSync,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CopyMode::InsertOnly => "INSERT_ONLY",
            CopyMode::InsertAndUpdate => "INSERT_AND_UPDATE",
            CopyMode::FullDataSync => "FULL_DATA_SYNC",
        }
    }
}

impl fmt::Display for CopyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CopyMode {
    type Err = String;

    fn from_str(s: &str) -> Result<CopyMode, String> {
        CopyMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown value {s:?}, expected INSERT_ONLY, INSERT_AND_UPDATE or FULL_DATA_SYNC"
                )
            })
    }
}

impl Serialize for CopyMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CopyMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CopyMode, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a database URL comes from. Exactly one per endpoint; only references are
/// stored, the URL itself is resolved at run time (see `secrets.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlRef {
    /// A URL written in the job file; it must not hold a password.
    Url(String),
    /// The name of an environment variable holding the URL.
    Env(String),
    /// A Secrets Manager secret (ARN or name): a URL, or RDS-style JSON.
    Secret(String),
    /// An SSM parameter (SecureString) holding the URL.
    Ssm(String),
}

/// The connection fields of `source` and `destination` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_ssm: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_ssm: Option<String>,
    /// The Redshift schema the tables go into.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// The role Redshift assumes to read the staged files (`COPY ... IAM_ROLE`);
    /// `LOADER_COPY_ROLE_ARN` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_role: Option<String>,
}

fn default_schema() -> String {
    "public".into()
}

/// `at` may be one string (`'09:**,10:**'` as the original app stored lists) or a list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct At(pub Vec<String>);

impl Serialize for At {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for At {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<At, D::Error> {
        let items = match d
            .deserialize_any(OneOrManyVisitor("a time such as '12:00' or a list of them"))?
        {
            OneOrMany::One(s) => s.split(',').map(|p| p.trim().to_string()).collect(),
            OneOrMany::Many(v) => v.into_iter().map(|p| p.trim().to_string()).collect(),
        };
        Ok(At(items))
    }
}

/// A string or a list of strings, with a message that says so.
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

struct OneOrManyVisitor(&'static str);

impl<'de> serde::de::Visitor<'de> for OneOrManyVisitor {
    type Value = OneOrMany;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(v.to_string()))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<String>()? {
            items.push(item);
        }
        Ok(OneOrMany::Many(items))
    }
}

/// A key of one or more columns: `id` or `[tenant_id, id]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(pub Vec<String>);

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        Ok(Key(
            match d.deserialize_any(OneOrManyVisitor("a column name or a list of them"))? {
                OneOrMany::One(s) => vec![s],
                OneOrMany::Many(v) => v,
            },
        ))
    }
}

/// One table of a job, as written. Fields left out are filled in by `setup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub source: TableRef,
    /// The table's name in the destination schema; the source name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_mode: Option<CopyMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<Key>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_key: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    /// Source columns not copied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_columns: Vec<String>,
    /// Column → PostgreSQL type the source casts it to before copying (`meta: text`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub column_casts: BTreeMap<String, String>,
    /// Column → Redshift type to create instead of the mapped one (`amount: DECIMAL(20,4)`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub column_types: BTreeMap<String, String>,
    /// Column → what its values Redshift cannot hold become (`valid_until: extreme`);
    /// NULL for every column not named.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refused_values: BTreeMap<String, Replace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_row_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_chunk_size: Option<u64>,
    /// Rows deleted at the source: kept in Redshift, or reconciled (the job's
    /// `deletes` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletes: Option<Deletes>,
    /// Seconds between reconciles (0: every run; the job's, else an hour, when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_every: Option<u64>,
}

/// What becomes of a row deleted at the source, in the incremental copy modes
/// (FULL_DATA_SYNC replaces every row, deletes included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deletes {
    /// It stays in Redshift (the default).
    #[default]
    Keep,
    /// After the table's run (at most every `reconcile_every` seconds), the keys no
    /// longer at the source are deleted from Redshift.
    Reconcile,
}

/// Seconds between reconciles when neither the table nor the job says.
pub const DEFAULT_RECONCILE_EVERY: u64 = 3600;

impl Table {
    /// The table's `deletes`, else the job's, else keep.
    pub fn deletes(&self, job: &Job) -> Deletes {
        self.deletes.or(job.deletes).unwrap_or_default()
    }

    /// The table's `reconcile_every`, else the job's, else an hour.
    pub fn reconcile_every(&self, job: &Job) -> u64 {
        self.reconcile_every
            .or(job.reconcile_every)
            .unwrap_or(DEFAULT_RECONCILE_EVERY)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What the extract puts in place of a value Redshift cannot hold (`infinity` dates and
/// timestamps, years after 294276, `NaN` and infinite numbers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Replace {
    /// NULL (the default).
    #[default]
    Null,
    /// The type's largest or smallest value, where it has one (`infinity` →
    /// 294276-12-31; `-infinity` → 4713-01-01 BC); NULL where it has none (`NaN`).
    Extreme,
}

impl<'de> Deserialize<'de> for Replace {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Replace, D::Error> {
        // YAML's `null` arrives as a null, not as the word.
        match Option::<String>::deserialize(d)?.as_deref() {
            None | Some("null") => Ok(Replace::Null),
            Some("extreme") => Ok(Replace::Extreme),
            Some(other) => Err(serde::de::Error::custom(format!(
                "expected null or extreme, got {other:?}"
            ))),
        }
    }
}

/// A job: one source, one destination, a schedule, and tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub name: String,
    pub source: Source,
    pub destination: Destination,
    /// Seconds: the job never runs more often than this since its last success.
    pub frequency: u64,
    /// Clockwork-style times the job may run at (`'12:**'`, `'Monday 12:00'`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<At>,
    /// IANA time zone for `at` (`Europe/London`); UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    /// The default of the tables' `deletes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletes: Option<Deletes>,
    /// The default of the tables' `reconcile_every`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_every: Option<u64>,
    /// Clockwork-style times (in `tz`) at which `verify` runs on its own schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_at: Option<At>,
    pub tables: Vec<Table>,
}

/// One problem with a job file, with the path of the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `tables[2].copy_mode`; empty for the file as a whole.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Every problem found in a job file, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

fn err(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// The format of a job file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// By file name: `.json` is JSON, anything else YAML.
    pub fn from_path(path: &std::path::Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Yaml,
        }
    }
}

impl Job {
    /// Parses and validates a job file. Every mistake is reported, each with its
    /// field: a value of the wrong type does not hide the others, nor what
    /// [`Job::validate`] finds in the rest of the file.
    pub fn parse(text: &str, format: Format) -> Result<Job, ConfigErrors> {
        let value = document(text, format)?;
        let mut found = Found {
            lenient_scalars: format == Format::Yaml,
            ..Found::default()
        };
        let job = read_job(value, &mut found);
        let mut errors = found.errors;
        if let Err(ConfigErrors(more)) = job.validate() {
            // What a bad field was replaced with is not the user's mistake.
            errors.extend(
                more.into_iter()
                    .filter(|e| !found.bad.iter().any(|b| within(&e.field, b))),
            );
        }
        if errors.is_empty() {
            Ok(job)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Checks what the types cannot; every problem is reported.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        if let Err(m) = check_job_name(&self.name) {
            errors.push(err("name", m));
        }
        check_endpoint(
            "source",
            &[
                ("url", &self.source.url),
                ("url_env", &self.source.url_env),
                ("url_secret", &self.source.url_secret),
                ("url_ssm", &self.source.url_ssm),
            ],
            &mut errors,
        );
        let d = &self.destination;
        check_endpoint(
            "destination",
            &[
                ("url", &d.url),
                ("url_env", &d.url_env),
                ("url_secret", &d.url_secret),
                ("url_ssm", &d.url_ssm),
            ],
            &mut errors,
        );
        if d.schema.is_empty() {
            errors.push(err("destination.schema", "must not be empty"));
        }
        if let Some(role) = &d.iam_role {
            if !is_role_arn(role) {
                errors.push(err(
                    "destination.iam_role",
                    format!("expected an IAM role ARN (arn:aws:iam::123456789012:role/name), got {role:?}"),
                ));
            }
        }
        if self.frequency < MIN_FREQUENCY {
            errors.push(err(
                "frequency",
                format!(
                    "must be at least {MIN_FREQUENCY} seconds (schedules fire at most once a minute), got {}",
                    self.frequency
                ),
            ));
        }
        for (field, at) in [("at", &self.at), ("verify_at", &self.verify_at)] {
            let Some(at) = at else { continue };
            if at.0.is_empty() || at.0.iter().any(|a| a.is_empty()) {
                errors.push(err(field, "must not hold empty entries"));
            }
            for (i, entry) in at.0.iter().enumerate().filter(|(_, a)| !a.is_empty()) {
                if let Err(e) = crate::schedule::AtEntry::parse(entry) {
                    errors.push(err(format!("{field}[{i}]"), e.to_string()));
                }
            }
        }
        if let Some(tz) = &self.tz {
            if tz.parse::<chrono_tz::Tz>().is_err() {
                errors.push(err(
                    "tz",
                    format!("{tz:?} is not an IANA time zone (e.g. Europe/London, America/New_York, UTC)"),
                ));
            }
        }
        if self.tables.is_empty() {
            errors.push(err("tables", "list at least one table"));
        }
        let mut sources: BTreeMap<&TableRef, usize> = BTreeMap::new();
        let mut destinations: BTreeMap<String, usize> = BTreeMap::new();
        for (i, table) in self.tables.iter().enumerate() {
            let at = format!("tables[{i}]");
            if let Some(first) = sources.insert(&table.source, i) {
                errors.push(err(
                    format!("{at}.source"),
                    format!("{} is listed twice (also tables[{first}])", table.source),
                ));
            } else if let Some(first) =
                destinations.insert(table.destination_name().to_ascii_lowercase(), i)
            {
                let dest = table.destination_name().to_ascii_lowercase();
                errors.push(err(
                    format!("{at}.destination"),
                    format!(
                        "{}.{dest} is also the destination of tables[{first}] (Redshift folds names to lower case); set `destination` to tell them apart",
                        d.schema
                    ),
                ));
            }
            table.validate(&at, &mut errors);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The table with this source name, if the job lists it.
    pub fn table(&self, source: &TableRef) -> Option<&Table> {
        self.tables.iter().find(|t| &t.source == source)
    }

    /// How to reach the source database.
    pub fn source_url(&self) -> UrlRef {
        url_ref(
            &self.source.url,
            &self.source.url_env,
            &self.source.url_secret,
            &self.source.url_ssm,
        )
    }

    /// How to reach the destination database.
    pub fn destination_url(&self) -> UrlRef {
        let d = &self.destination;
        url_ref(&d.url, &d.url_env, &d.url_secret, &d.url_ssm)
    }
}

impl Table {
    /// The table's name in the destination schema.
    pub fn destination_name(&self) -> &str {
        self.destination.as_deref().unwrap_or(&self.source.name)
    }

    fn validate(&self, at: &str, errors: &mut Vec<ConfigError>) {
        if let Some(dest) = &self.destination {
            if dest.is_empty() {
                errors.push(err(format!("{at}.destination"), "must not be empty"));
            }
        }
        if let Some(pk) = &self.primary_key {
            if pk.0.is_empty() || pk.0.iter().any(|c| c.is_empty()) {
                errors.push(err(format!("{at}.primary_key"), "name one or more columns"));
            }
            let unique: BTreeSet<&String> = pk.0.iter().collect();
            if unique.len() != pk.0.len() {
                errors.push(err(format!("{at}.primary_key"), "names a column twice"));
            }
        }
        if self.copy_mode == Some(CopyMode::FullDataSync) && self.updated_key.is_some() {
            errors.push(err(
                format!("{at}.updated_key"),
                "FULL_DATA_SYNC copies the whole table and uses no updated key; remove it or choose INSERT_AND_UPDATE",
            ));
        }
        if self.copy_mode == Some(CopyMode::InsertOnly) && self.updated_key.is_some() {
            errors.push(err(
                format!("{at}.updated_key"),
                "INSERT_ONLY follows the primary key and uses no updated key; remove it or choose INSERT_AND_UPDATE",
            ));
        }
        let mut keys: Vec<&String> = self.primary_key.iter().flat_map(|k| &k.0).collect();
        keys.extend(&self.updated_key);
        for (j, col) in self.exclude_columns.iter().enumerate() {
            if keys.contains(&col) {
                errors.push(err(
                    format!("{at}.exclude_columns[{j}]"),
                    format!("{col:?} is a key column and cannot be excluded"),
                ));
            }
        }
        for (col, cast) in &self.column_casts {
            if !is_cast_type(cast) {
                errors.push(err(
                    format!("{at}.column_casts.{col}"),
                    format!("expected a PostgreSQL type name such as text, numeric(20,4) or varchar(100), got {cast:?}"),
                ));
            }
        }
        for (field, value) in [
            ("import_row_limit", self.import_row_limit),
            ("import_chunk_size", self.import_chunk_size),
        ] {
            if value == Some(0) {
                errors.push(err(format!("{at}.{field}"), "must be at least 1"));
            }
        }
    }
}

/// The file as a tree of values: a syntax error or a key given twice (with its line
/// and column) stops here; everything else is judged field by field.
fn document(text: &str, format: Format) -> Result<serde_json::Value, ConfigErrors> {
    match format {
        Format::Json => {
            let at = |e: &serde_json::Error| format!(" at line {} column {}", e.line(), e.column());
            let de = &mut serde_json::Deserializer::from_str(text);
            let tree = serde_path_to_error::deserialize::<_, Tree>(&mut *de).map_err(|e| {
                // A syntax error has its position only; a key given twice, its map too.
                let field = match e.inner().classify() {
                    serde_json::error::Category::Data => e.path().to_string(),
                    _ => String::new(),
                };
                let inner = e.into_inner();
                one(&field, strip_position(&inner.to_string()) + &at(&inner))
            })?;
            de.end()
                .map_err(|e| one("", strip_position(&e.to_string()) + &at(&e)))?;
            Ok(tree.0)
        }
        Format::Yaml => {
            let de = serde_yaml_ng::Deserializer::from_str(text);
            serde_path_to_error::deserialize::<_, Tree>(de)
                .map(|t| t.0)
                .map_err(|e| {
                    let field = e.path().to_string();
                    let message = e.into_inner().to_string();
                    // The YAML error names the enclosing path itself; ours is finer.
                    let message = match message.split_once(": ") {
                        Some((p, rest)) if p == "." || field.starts_with(p) => rest.to_string(),
                        _ => message,
                    };
                    one(&field, message)
                })
        }
    }
}

/// A document as JSON values, refusing a key given twice in one map (which a struct
/// would refuse, and a plain `serde_json::Value` would silently overwrite).
struct Tree(serde_json::Value);

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tree, D::Error> {
        d.deserialize_any(TreeVisitor).map(Tree)
    }
}

struct TreeVisitor;

impl<'de> serde::de::Visitor<'de> for TreeVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        // YAML's .inf and .nan have no JSON number; as text they fail where a number is
        // expected, with the value in the message.
        Ok(serde_json::Number::from_f64(v)
            .map(serde_json::Value::Number)
            .unwrap_or_else(|| v.to_string().into()))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(TreeVisitor)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Tree(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(items.into())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "`{key}` is given twice"
                )));
            }
            let Tree(value) = map.next_value()?;
            out.insert(key, value);
        }
        Ok(out.into())
    }
}

/// What reading the fields found: the mistakes, and the fields they concern.
#[derive(Default)]
struct Found {
    errors: Vec<ConfigError>,
    /// Fields that were missing or of the wrong type; a placeholder stands in for each.
    bad: Vec<String>,
    /// YAML: a number or `true` where text is expected is read as its text (as YAML
    /// readers do: `name: 2024`).
    lenient_scalars: bool,
}

/// Whether `field` is `parent` or inside it.
fn within(field: &str, parent: &str) -> bool {
    parent.is_empty()
        || field
            .strip_prefix(parent)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

fn join(parent: &str, child: &str) -> String {
    match (parent, child) {
        ("", c) => c.to_string(),
        (p, "") => p.to_string(),
        (p, c) if c.starts_with('[') => format!("{p}{c}"),
        (p, c) => format!("{p}.{c}"),
    }
}

/// One map of the file (the job, `source`, a table, ...), its fields taken one at a
/// time; what is left at the end is unknown.
struct Fields<'a> {
    path: String,
    map: serde_json::Map<String, serde_json::Value>,
    names: &'static [&'static str],
    found: &'a mut Found,
}

impl<'a> Fields<'a> {
    /// `None` (and the mistake recorded) when `value` is not a map.
    fn open(
        path: String,
        value: serde_json::Value,
        names: &'static [&'static str],
        what: &str,
        found: &'a mut Found,
    ) -> Option<Fields<'a>> {
        match value {
            serde_json::Value::Object(map) => Some(Fields {
                path,
                map,
                names,
                found,
            }),
            other => {
                found.errors.push(err(
                    path.clone(),
                    format!("expected {what}, got {}", kind_of(&other)),
                ));
                found.bad.push(path);
                None
            }
        }
    }

    fn bad(&mut self, field: &str, message: String) {
        let path = join(&self.path, field);
        self.found.errors.push(err(path.clone(), message));
        self.found.bad.push(path);
    }

    /// The field's value: `Ok(None)` when absent, `Err` (recorded) when it does not
    /// read as a `T`.
    fn take<T: serde::de::DeserializeOwned>(&mut self, name: &str) -> Result<Option<T>, ()> {
        let Some(value) = self.map.remove(name) else {
            return Ok(None);
        };
        let path = join(&self.path, name);
        match value_as::<T>(&value, self.found.lenient_scalars) {
            Ok(v) => Ok(Some(v)),
            Err((inner, message)) => {
                self.found.errors.push(err(join(&path, &inner), message));
                self.found.bad.push(path);
                Err(())
            }
        }
    }

    /// An optional field, `None` when absent or bad.
    fn optional<T: serde::de::DeserializeOwned>(&mut self, name: &str) -> Option<T> {
        self.take(name).ok().flatten()
    }

    /// An optional field of text: a bad one counts as given (empty), so that checks
    /// that count what is given do not also complain.
    fn text(&mut self, name: &str) -> Option<String> {
        self.take(name).unwrap_or(Some(String::new()))
    }

    fn required<T: serde::de::DeserializeOwned>(&mut self, name: &str) -> Option<T> {
        match self.take(name) {
            Ok(Some(v)) => Some(v),
            Ok(None) => {
                self.bad(name, format!("missing field `{name}`"));
                None
            }
            Err(()) => None,
        }
    }

    /// The raw value of a field read by another `Fields` (a nested map or list).
    fn raw(&mut self, name: &str) -> Option<serde_json::Value> {
        self.map.remove(name)
    }

    /// Records every field left over as unknown.
    fn finish(self) {
        let expected = self
            .names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        for (name, _) in self.map {
            let path = join(&self.path, &name);
            self.found.errors.push(err(
                path.clone(),
                format!("unknown field `{name}`, expected one of {expected}"),
            ));
        }
    }
}

/// `value` as a `T`, or the path inside it and the message.
fn value_as<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
    lenient_scalars: bool,
) -> Result<T, (String, String)> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Ok(v),
        Err(e) => {
            if lenient_scalars {
                if let Ok(v) = T::deserialize(&as_text(value)) {
                    return Ok(v);
                }
            }
            let inner = e.path().to_string();
            let inner = if inner == "." { String::new() } else { inner };
            Err((inner, e.into_inner().to_string()))
        }
    }
}

/// Numbers and booleans as their text, at every depth.
fn as_text(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Array(items) => Value::Array(items.iter().map(as_text).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), as_text(v))).collect())
        }
        other => other.clone(),
    }
}

fn kind_of(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the text {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a map".into(),
    }
}

const JOB_FIELDS: &[&str] = &[
    "name",
    "source",
    "destination",
    "frequency",
    "at",
    "tz",
    "disabled",
    "deletes",
    "reconcile_every",
    "verify_at",
    "tables",
];
const SOURCE_FIELDS: &[&str] = &["url", "url_env", "url_secret", "url_ssm"];
const DESTINATION_FIELDS: &[&str] = &[
    "url",
    "url_env",
    "url_secret",
    "url_ssm",
    "schema",
    "iam_role",
];
const TABLE_FIELDS: &[&str] = &[
    "source",
    "destination",
    "copy_mode",
    "primary_key",
    "updated_key",
    "disabled",
    "exclude_columns",
    "column_casts",
    "column_types",
    "refused_values",
    "import_row_limit",
    "import_chunk_size",
    "deletes",
    "reconcile_every",
];

/// The job as written, each field read on its own; a field that is missing or bad
/// leaves a placeholder (and its mistake in `found`).
fn read_job(value: serde_json::Value, found: &mut Found) -> Job {
    let mut job = Job {
        name: String::new(),
        source: Source::default(),
        destination: Destination {
            url: None,
            url_env: None,
            url_secret: None,
            url_ssm: None,
            schema: default_schema(),
            iam_role: None,
        },
        frequency: MIN_FREQUENCY,
        at: None,
        tz: None,
        disabled: false,
        deletes: None,
        reconcile_every: None,
        verify_at: None,
        tables: Vec::new(),
    };
    let Some(mut f) = Fields::open(
        String::new(),
        value,
        JOB_FIELDS,
        "a job (a map with name, source, destination, frequency and tables)",
        found,
    ) else {
        return job;
    };
    job.name = f.required("name").unwrap_or_default();
    match f.raw("source") {
        Some(v) => job.source = read_source(v, f.found),
        None => f.bad("source", "missing field `source`".into()),
    }
    match f.raw("destination") {
        Some(v) => job.destination = read_destination(v, f.found),
        None => f.bad("destination", "missing field `destination`".into()),
    }
    job.frequency = f.required("frequency").unwrap_or(MIN_FREQUENCY);
    job.at = f.optional("at");
    job.tz = f.text("tz");
    job.disabled = f.optional("disabled").unwrap_or(false);
    job.deletes = f.optional("deletes");
    job.reconcile_every = f.optional("reconcile_every");
    job.verify_at = f.optional("verify_at");
    match f.raw("tables") {
        Some(serde_json::Value::Array(items)) => {
            job.tables = items
                .into_iter()
                .enumerate()
                .map(|(i, v)| read_table(format!("tables[{i}]"), v, i, f.found))
                .collect();
        }
        Some(other) => f.bad(
            "tables",
            format!(
                "expected a list of tables (each a map with source, copy_mode, ...), got {}",
                kind_of(&other)
            ),
        ),
        None => f.bad("tables", "missing field `tables`".into()),
    }
    f.finish();
    job
}

fn read_source(value: serde_json::Value, found: &mut Found) -> Source {
    let Some(mut f) = Fields::open(
        "source".into(),
        value,
        SOURCE_FIELDS,
        "a map with one of url, url_env, url_secret or url_ssm",
        found,
    ) else {
        return Source::default();
    };
    let source = Source {
        url: f.text("url"),
        url_env: f.text("url_env"),
        url_secret: f.text("url_secret"),
        url_ssm: f.text("url_ssm"),
    };
    f.finish();
    source
}

fn read_destination(value: serde_json::Value, found: &mut Found) -> Destination {
    let placeholder = Destination {
        url: None,
        url_env: None,
        url_secret: None,
        url_ssm: None,
        schema: default_schema(),
        iam_role: None,
    };
    let Some(mut f) = Fields::open(
        "destination".into(),
        value,
        DESTINATION_FIELDS,
        "a map with one of url, url_env, url_secret or url_ssm, and schema",
        found,
    ) else {
        return placeholder;
    };
    let destination = Destination {
        url: f.text("url"),
        url_env: f.text("url_env"),
        url_secret: f.text("url_secret"),
        url_ssm: f.text("url_ssm"),
        schema: f.text("schema").unwrap_or_else(default_schema),
        iam_role: f.text("iam_role"),
    };
    f.finish();
    destination
}

fn read_table(path: String, value: serde_json::Value, i: usize, found: &mut Found) -> Table {
    // A source no other table can have, for a table whose source is missing or bad.
    let placeholder = TableRef::new("", format!("\u{0}tables[{i}]"));
    let mut table = Table {
        source: placeholder.clone(),
        destination: None,
        copy_mode: None,
        primary_key: None,
        updated_key: None,
        disabled: false,
        exclude_columns: Vec::new(),
        column_casts: BTreeMap::new(),
        column_types: BTreeMap::new(),
        refused_values: BTreeMap::new(),
        import_row_limit: None,
        import_chunk_size: None,
        deletes: None,
        reconcile_every: None,
    };
    let Some(mut f) = Fields::open(
        path,
        value,
        TABLE_FIELDS,
        "a table (a map with source, copy_mode, ...)",
        found,
    ) else {
        return table;
    };
    table.source = f.required("source").unwrap_or(placeholder);
    table.destination = f.text("destination");
    table.copy_mode = f.optional("copy_mode");
    table.primary_key = f.optional("primary_key");
    table.updated_key = f.text("updated_key");
    table.disabled = f.optional("disabled").unwrap_or(false);
    table.exclude_columns = f.optional("exclude_columns").unwrap_or_default();
    table.column_casts = f.optional("column_casts").unwrap_or_default();
    table.column_types = f.optional("column_types").unwrap_or_default();
    table.refused_values = f.optional("refused_values").unwrap_or_default();
    table.import_row_limit = f.optional("import_row_limit");
    table.import_chunk_size = f.optional("import_chunk_size");
    table.deletes = f.optional("deletes");
    table.reconcile_every = f.optional("reconcile_every");
    f.finish();
    table
}

fn one(field: &str, message: String) -> ConfigErrors {
    // serde_path_to_error says "." for the root.
    let field = if field == "." { "" } else { field };
    ConfigErrors(vec![err(field, message)])
}

/// serde_json appends " at line L column C"; we put the position after our own text.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn url_ref(
    url: &Option<String>,
    env: &Option<String>,
    secret: &Option<String>,
    ssm: &Option<String>,
) -> UrlRef {
    // validate() guarantees exactly one.
    if let Some(u) = url {
        UrlRef::Url(u.clone())
    } else if let Some(e) = env {
        UrlRef::Env(e.clone())
    } else if let Some(s) = secret {
        UrlRef::Secret(s.clone())
    } else {
        UrlRef::Ssm(ssm.clone().unwrap_or_default())
    }
}

fn check_endpoint(at: &str, fields: &[(&str, &Option<String>)], errors: &mut Vec<ConfigError>) {
    let given: Vec<&str> = fields
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| *k)
        .collect();
    match given.as_slice() {
        [] => errors.push(err(
            at,
            "give one of url, url_env, url_secret (Secrets Manager) or url_ssm (SSM parameter)",
        )),
        [_] => {}
        many => errors.push(err(
            at,
            format!(
                "give only one of url, url_env, url_secret, url_ssm (got {})",
                many.join(", ")
            ),
        )),
    }
    for (k, v) in fields {
        match v {
            Some(v) if v.trim().is_empty() => {
                errors.push(err(format!("{at}.{k}"), "must not be empty"))
            }
            Some(v) if *k == "url" => {
                if let Err(m) = check_plain_url(v) {
                    errors.push(err(format!("{at}.url"), m));
                }
            }
            _ => {}
        }
    }
}

/// A URL written into the job file is stored as written, so it must not carry a
/// password: that belongs in Secrets Manager, SSM or the environment.
fn check_plain_url(url: &str) -> Result<(), String> {
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .or_else(|| url.strip_prefix("redshift://"))
    else {
        return Err("expected a postgres:// URL".into());
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let has_password = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    let query_password = url
        .split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|kv| kv.starts_with("password=")));
    if has_password || query_password {
        return Err(
            "holds a password, which would be stored in plain text; put the URL in Secrets Manager (url_secret), an SSM SecureString (url_ssm) or an environment variable (url_env)"
                .into(),
        );
    }
    Ok(())
}

/// Job names appear in schedule names, S3 keys and DynamoDB keys.
fn check_job_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "use 1 to 48 letters, digits, '-' or '_', starting with a letter or digit; got {name:?}"
        ))
    }
}

pub(crate) fn is_role_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if partition.starts_with("aws")
            && account.len() == 12
            && account.chars().all(|c| c.is_ascii_digit())
            && resource.strip_prefix("role/").is_some_and(|r| !r.is_empty()))
}

/// A PostgreSQL type name for `column_casts`: words, an optional `(n)` or `(p,s)`, an
/// optional `[]`. Nothing else reaches the SQL text.
pub fn is_cast_type(s: &str) -> bool {
    let s = s.trim();
    let (base, rest) = match s.find('(') {
        Some(i) => (&s[..i], &s[i..]),
        None => match s.find('[') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        },
    };
    let base = base.trim_end();
    let base_ok = !base.is_empty()
        && base.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ' ' || c == '.');
    let rest = rest.strip_suffix("[]").unwrap_or(rest);
    let rest_ok = rest.is_empty()
        || rest
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .is_some_and(|args| {
                let args: Vec<&str> = args.split(',').map(str::trim).collect();
                args.len() <= 2
                    && args
                        .iter()
                        .all(|a| !a.is_empty() && a.chars().all(|c| c.is_ascii_digit()))
            });
    base_ok && rest_ok
}

/// A number of rows (`IMPORT_ROW_LIMIT`, `IMPORT_CHUNK_SIZE`): a whole number of at
/// least 1; `_` may group digits (`1_000_000`).
pub fn parse_rows(v: &str) -> Result<u64, String> {
    match v.trim().replace('_', "").parse::<u64>() {
        Ok(0) | Err(_) => Err(format!(
            "expected a whole number of rows of at least 1, got {v:?}"
        )),
        Ok(n) => Ok(n),
    }
}

/// Rows per chunk and per run for one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub chunk_size: u64,
    pub row_limit: u64,
}

impl Limits {
    /// The table's own values, else `IMPORT_CHUNK_SIZE`/`IMPORT_ROW_LIMIT` (read by the
    /// caller and passed in), else the defaults.
    pub fn resolve(
        table: &Table,
        env_chunk_size: Option<&str>,
        env_row_limit: Option<&str>,
    ) -> Result<Limits, ConfigError> {
        let parse = |name: &str, v: Option<&str>| -> Result<Option<u64>, ConfigError> {
            match v.map(str::trim) {
                None | Some("") => Ok(None),
                Some(v) => parse_rows(v).map(Some).map_err(|m| err(name, m)),
            }
        };
        let chunk_size = table
            .import_chunk_size
            .or(parse("IMPORT_CHUNK_SIZE", env_chunk_size)?)
            .unwrap_or(DEFAULT_CHUNK_SIZE);
        let row_limit = table
            .import_row_limit
            .or(parse("IMPORT_ROW_LIMIT", env_row_limit)?)
            .unwrap_or(DEFAULT_ROW_LIMIT);
        Ok(Limits {
            chunk_size: chunk_size.min(row_limit),
            row_limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name: shop
source: { url_secret: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop-ro" }
destination: { url_env: WAREHOUSE_URL, schema: shop, iam_role: "arn:aws:iam::123456789012:role/redshift-copy" }
frequency: 300
at: "09:**,10:**"
tz: Europe/London
tables:
  - { source: public.orders, copy_mode: INSERT_AND_UPDATE, primary_key: id, updated_key: updated_at }
  - { source: events, copy_mode: INSERT_ONLY, primary_key: [tenant_id, id] }
  - { source: '"Odd.Schema"."Country ""codes"""', copy_mode: FULL_DATA_SYNC, destination: countries }
"#;

    fn errors_of(text: &str) -> Vec<String> {
        Job::parse(text, Format::Yaml)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn good_job_parses_with_every_shape() {
        let job = Job::parse(GOOD, Format::Yaml).unwrap();
        assert_eq!(job.name, "shop");
        assert_eq!(job.at, Some(At(vec!["09:**".into(), "10:**".into()])));
        assert_eq!(job.tables[0].source, TableRef::new("public", "orders"));
        assert_eq!(job.tables[1].source, TableRef::new("public", "events"));
        assert_eq!(
            job.tables[1].primary_key,
            Some(Key(vec!["tenant_id".into(), "id".into()]))
        );
        assert_eq!(
            job.tables[2].source,
            TableRef::new("Odd.Schema", "Country \"codes\"")
        );
        assert_eq!(job.tables[2].destination_name(), "countries");
        assert_eq!(
            job.source_url(),
            UrlRef::Secret("arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop-ro".into())
        );
        assert_eq!(job.destination_url(), UrlRef::Env("WAREHOUSE_URL".into()));
    }

    #[test]
    fn bad_at_and_tz_are_named_and_quoted() {
        let text = GOOD
            .replace("at: \"09:**,10:**\"", "at: [\"09:**\", \"25:00\"]")
            .replace("tz: Europe/London", "tz: Europe/Londres");
        let errors = errors_of(&text);
        assert!(
            errors
                .iter()
                .any(|e| e
                    .starts_with("at[1]: \"25:00\" is not a Clockwork time: the hour is over 23")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("tz: \"Europe/Londres\" is not an IANA time zone")),
            "{errors:?}"
        );
    }

    #[test]
    fn json_round_trip_is_identity() {
        let job = Job::parse(GOOD, Format::Yaml).unwrap();
        let json = serde_json::to_string(&job).unwrap();
        assert_eq!(Job::parse(&json, Format::Json).unwrap(), job);
    }

    #[test]
    fn table_ref_display_parses_back() {
        for (text, schema, name) in [
            ("public.orders", "public", "orders"),
            ("orders", "public", "orders"),
            ("\"a.b\".c", "a.b", "c"),
            ("s.\"Mixed Case\"", "s", "Mixed Case"),
            ("s.\"q\"\"uote\"", "s", "q\"uote"),
            ("\"日本\".\"表\"", "日本", "表"),
        ] {
            let t: TableRef = text.parse().unwrap();
            assert_eq!(t, TableRef::new(schema, name), "{text}");
            assert_eq!(t.to_string().parse::<TableRef>().unwrap(), t, "{text}");
        }
        for bad in ["", "a.", ".b", "a.b.c", "\"open", "a\"b"] {
            assert!(bad.parse::<TableRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_copy_mode_names_field_and_choices() {
        let text = GOOD.replace("copy_mode: FULL_DATA_SYNC", "copy_mode: UPSERT");
        assert_eq!(
            errors_of(&text),
            ["tables[2].copy_mode: unknown value \"UPSERT\", expected INSERT_ONLY, INSERT_AND_UPDATE or FULL_DATA_SYNC"]
        );
    }

    /// The README's promise: a value of the wrong type hides nothing else.
    #[test]
    fn type_errors_and_validation_errors_are_reported_together() {
        let text = GOOD
            .replace("copy_mode: FULL_DATA_SYNC", "copy_mode: UPSERT")
            .replace("at: \"09:**,10:**\"", "at: '25:00'")
            .replace("frequency: 300", "frequency: often")
            .replace(
                "primary_key: [tenant_id, id]",
                "primary_key: [tenant_id, id], import_row_limit: lots, disabled: maybe",
            )
            .replace("tz: Europe/London", "tz: Europe/Londres");
        assert_eq!(
            errors_of(&text),
            [
                "frequency: invalid type: string \"often\", expected u64",
                "tables[1].disabled: invalid type: string \"maybe\", expected a boolean",
                "tables[1].import_row_limit: invalid type: string \"lots\", expected u64",
                "tables[2].copy_mode: unknown value \"UPSERT\", expected INSERT_ONLY, INSERT_AND_UPDATE or FULL_DATA_SYNC",
                "at[0]: \"25:00\" is not a Clockwork time: the hour is over 23 (write 'HH:MM', '**:MM', 'HH:**', optionally after a weekday: 'Monday 12:00')",
                "tz: \"Europe/Londres\" is not an IANA time zone (e.g. Europe/London, America/New_York, UTC)",
            ]
        );
    }

    #[test]
    fn missing_fields_and_bad_shapes_are_each_named() {
        let text = r#"
source: { url_env: X, password: x, url_secret: [a] }
destination: postgres://db/x
tables:
  - public.orders
  - { copy_mode: INSERT_ONLY, primary_key: {a: 1} }
  - { source: public.items, column_casts: [text] }
"#;
        assert_eq!(
            errors_of(text),
            [
                "name: missing field `name`",
                "source.url_secret: invalid type: sequence, expected a string",
                "source.password: unknown field `password`, expected one of `url`, `url_env`, `url_secret`, `url_ssm`",
                "destination: expected a map with one of url, url_env, url_secret or url_ssm, and schema, got the text \"postgres://db/x\"",
                "frequency: missing field `frequency`",
                "tables[0]: expected a table (a map with source, copy_mode, ...), got the text \"public.orders\"",
                "tables[1].source: missing field `source`",
                "tables[1].primary_key: invalid type: map, expected a column name or a list of them",
                "tables[2].column_casts: invalid type: sequence, expected a map",
                "source: give only one of url, url_env, url_secret, url_ssm (got url_env, url_secret)",
            ]
        );
        assert_eq!(
            errors_of("name: x\nsource: {url_env: X}\ndestination: {url_env: Y}\nfrequency: 60\ntables: public.orders\n"),
            ["tables: expected a list of tables (each a map with source, copy_mode, ...), got the text \"public.orders\""]
        );
        assert_eq!(
            errors_of(""),
            ["expected a job (a map with name, source, destination, frequency and tables), got nothing"]
        );
    }

    #[test]
    fn yaml_reads_numbers_as_text_where_text_is_expected() {
        let text = GOOD
            .replace("name: shop", "name: 2024")
            .replace("destination: countries", "destination: 1999");
        let job = Job::parse(&text, Format::Yaml).unwrap();
        assert_eq!(job.name, "2024");
        assert_eq!(job.tables[2].destination.as_deref(), Some("1999"));
        let json = r#"{"name": 2024, "source": {"url_env": "X"}, "destination": {"url_env": "Y"}, "frequency": 300, "tables": [{"source": "t"}]}"#;
        assert_eq!(
            Job::parse(json, Format::Json).unwrap_err().to_string(),
            "name: invalid type: integer `2024`, expected a string"
        );
    }

    #[test]
    fn a_key_given_twice_is_refused_with_its_place() {
        let text = GOOD.replace("frequency: 300", "frequency: 300\nfrequency: 600");
        let errors = errors_of(&text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("`frequency` is given twice at line"),
            "{errors:?}"
        );
        let json = r#"{"name": "a", "name": "b"}"#;
        assert_eq!(
            Job::parse(json, Format::Json).unwrap_err().to_string(),
            "`name` is given twice at line 1 column 20"
        );
    }

    #[test]
    fn unknown_field_is_an_error_with_its_path() {
        let text = GOOD.replace("primary_key: id,", "primary_key: id, primary_keys: id,");
        let errors = errors_of(&text);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("tables[0].primary_keys: unknown field `primary_keys`"),
            "{errors:?}"
        );
        let text = GOOD.replace("frequency: 300", "frequency: 300\nfrequncy: 5");
        assert!(
            errors_of(&text)[0].starts_with("frequncy: unknown field `frequncy`"),
            "{:?}",
            errors_of(&text)
        );
    }

    #[test]
    fn missing_and_mistyped_fields_are_named() {
        let text = GOOD.replace("frequency: 300\n", "");
        assert!(errors_of(&text)[0].contains("missing field `frequency`"));
        let text = GOOD.replace("frequency: 300", "frequency: often");
        assert!(
            errors_of(&text)[0].starts_with("frequency: invalid type"),
            "{:?}",
            errors_of(&text)
        );
    }

    #[test]
    fn semantic_errors_are_all_reported_with_fields() {
        let text = r#"
name: "bad name!"
source: { url: "postgres://app:hunter2@db/shop", url_env: X }
destination: { schema: "", iam_role: "role/redshift" }
frequency: 30
tables:
  - { source: public.orders, copy_mode: FULL_DATA_SYNC, updated_key: updated_at }
  - { source: public.orders, copy_mode: INSERT_ONLY, updated_key: u, primary_key: [id, id] }
  - { source: public.items, exclude_columns: [id], primary_key: id, column_casts: { meta: "text; drop table x" }, import_chunk_size: 0 }
"#;
        assert_eq!(
            errors_of(text),
            [
                "name: use 1 to 48 letters, digits, '-' or '_', starting with a letter or digit; got \"bad name!\"",
                "source: give only one of url, url_env, url_secret, url_ssm (got url, url_env)",
                "source.url: holds a password, which would be stored in plain text; put the URL in Secrets Manager (url_secret), an SSM SecureString (url_ssm) or an environment variable (url_env)",
                "destination: give one of url, url_env, url_secret (Secrets Manager) or url_ssm (SSM parameter)",
                "destination.schema: must not be empty",
                "destination.iam_role: expected an IAM role ARN (arn:aws:iam::123456789012:role/name), got \"role/redshift\"",
                "frequency: must be at least 60 seconds (schedules fire at most once a minute), got 30",
                "tables[0].updated_key: FULL_DATA_SYNC copies the whole table and uses no updated key; remove it or choose INSERT_AND_UPDATE",
                "tables[1].source: public.orders is listed twice (also tables[0])",
                "tables[1].primary_key: names a column twice",
                "tables[1].updated_key: INSERT_ONLY follows the primary key and uses no updated key; remove it or choose INSERT_AND_UPDATE",
                "tables[2].exclude_columns[0]: \"id\" is a key column and cannot be excluded",
                "tables[2].column_casts.meta: expected a PostgreSQL type name such as text, numeric(20,4) or varchar(100), got \"text; drop table x\"",
                "tables[2].import_chunk_size: must be at least 1",
            ]
        );
    }

    #[test]
    fn password_in_url_is_refused_but_passwordless_url_is_fine() {
        for (url, ok) in [
            (
                "postgres://loader@db.internal:5432/shop?sslmode=require",
                true,
            ),
            ("postgres://db/shop", true),
            ("postgres://u:p@db/shop", false),
            ("postgresql://u:p%40ss@db/shop", false),
            ("postgres://u@db/shop?password=x", false),
            ("mysql://u@db/shop", false),
        ] {
            assert_eq!(check_plain_url(url).is_ok(), ok, "{url}");
        }
    }

    #[test]
    fn json_errors_name_the_field_or_the_position() {
        let text = r#"{"name": "shop", "source": {"url_env": "X"}, "destination": {"url_env": "Y"}, "frequency": 300, "tables": [{"source": "t", "copy_mode": "NOPE"}]}"#;
        assert_eq!(
            Job::parse(text, Format::Json).unwrap_err().to_string(),
            "tables[0].copy_mode: unknown value \"NOPE\", expected INSERT_ONLY, INSERT_AND_UPDATE or FULL_DATA_SYNC"
        );
        assert_eq!(
            Job::parse("{\"name\": \"shop\",\n \"frequency\": 300,,}", Format::Json)
                .unwrap_err()
                .to_string(),
            "key must be a string at line 2 column 19"
        );
        assert_eq!(
            Job::parse("{\"name\": \"shop\"} []", Format::Json)
                .unwrap_err()
                .to_string(),
            "trailing characters at line 1 column 18"
        );
    }

    #[test]
    fn cast_types_are_a_closed_grammar() {
        for ok in [
            "text",
            "numeric(20,4)",
            "varchar(100)",
            "double precision",
            "int[]",
            "pg_catalog.text",
        ] {
            assert!(is_cast_type(ok), "{ok}");
        }
        for bad in [
            "",
            "text;",
            "text)",
            "numeric(1,2,3)",
            "x(a)",
            "1abc",
            "text --",
            "varchar(10",
        ] {
            assert!(!is_cast_type(bad), "{bad}");
        }
    }

    #[test]
    fn limits_come_from_table_then_env_then_defaults() {
        let job = Job::parse(GOOD, Format::Yaml).unwrap();
        let mut t = job.tables[0].clone();
        assert_eq!(
            Limits::resolve(&t, None, None).unwrap(),
            Limits {
                chunk_size: DEFAULT_CHUNK_SIZE,
                row_limit: DEFAULT_ROW_LIMIT
            }
        );
        assert_eq!(
            Limits::resolve(&t, Some("7"), Some("1_000")).unwrap(),
            Limits {
                chunk_size: 7,
                row_limit: 1000
            }
        );
        t.import_chunk_size = Some(50);
        t.import_row_limit = Some(20);
        assert_eq!(
            Limits::resolve(&t, Some("7"), Some("1000")).unwrap(),
            Limits {
                chunk_size: 20,
                row_limit: 20
            }
        );
        assert_eq!(
            Limits::resolve(&job.tables[0], Some("lots"), None)
                .unwrap_err()
                .to_string(),
            "IMPORT_CHUNK_SIZE: expected a whole number of rows of at least 1, got \"lots\""
        );
    }

    #[test]
    fn refused_values_are_null_or_extreme_by_column() {
        let job = |values: &str| {
            Job::parse(
                &format!(
                    "name: j\nsource: {{ url: \"postgres://h/d\" }}\ndestination: {{ url: \"postgres://h/w\", schema: s }}\nfrequency: 60\n\
                     tables:\n  - {{ source: public.t, refused_values: {values} }}\n"
                ),
                Format::Yaml,
            )
        };
        let t = &job("{ a: null, b: extreme, c: \"null\" }").unwrap().tables[0];
        assert_eq!(
            t.refused_values,
            BTreeMap::from([
                ("a".to_string(), Replace::Null),
                ("b".to_string(), Replace::Extreme),
                ("c".to_string(), Replace::Null),
            ])
        );
        let e = job("{ a: biggest }").unwrap_err().to_string();
        assert!(e.starts_with("tables[0].refused_values"), "{e}");
        assert!(
            e.contains("expected null or extreme, got \"biggest\""),
            "{e}"
        );
    }

    #[test]
    fn deletes_default_from_the_job_and_name_the_field_when_bad() {
        let job = |job_level: &str, table: &str| {
            Job::parse(
                &format!(
                    "name: j\nsource: {{ url: \"postgres://h/d\" }}\ndestination: {{ url: \"postgres://h/w\", schema: s }}\nfrequency: 60\n{job_level}\
                     tables:\n  - {{ source: public.t{table} }}\n  - {{ source: public.u }}\n"
                ),
                Format::Yaml,
            )
        };
        let j = job("", "").unwrap();
        assert_eq!(j.tables[0].deletes(&j), Deletes::Keep);
        assert_eq!(j.tables[0].reconcile_every(&j), DEFAULT_RECONCILE_EVERY);
        let j = job(
            "deletes: reconcile\nreconcile_every: 600\n",
            ", deletes: keep, reconcile_every: 0",
        )
        .unwrap();
        assert_eq!(
            (j.tables[0].deletes(&j), j.tables[0].reconcile_every(&j)),
            (Deletes::Keep, 0)
        );
        assert_eq!(
            (j.tables[1].deletes(&j), j.tables[1].reconcile_every(&j)),
            (Deletes::Reconcile, 600)
        );
        let e = job("", ", deletes: hard").unwrap_err().to_string();
        assert!(e.starts_with("tables[0].deletes"), "{e}");
        assert!(e.contains("keep") && e.contains("reconcile"), "{e}");
        let e = job("reconcile_every: hourly\n", "")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("reconcile_every"), "{e}");
    }
}
