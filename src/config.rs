//! Jobs and tables: the job file, parsed and validated with field-named errors.
//!
//! A job file is YAML or JSON. Parsing rejects unknown fields and names the path of
//! whatever is wrong (`tables[2].copy_mode: expected one of ...`); [`Job::validate`]
//! then checks what types cannot (names, ranges, duplicates, contradictions) and
//! reports every problem at once.

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
                format!("expected one of INSERT_ONLY, INSERT_AND_UPDATE, FULL_DATA_SYNC, got {s:?}")
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
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let items = match Raw::deserialize(d)? {
            Raw::One(s) => s.split(',').map(|p| p.trim().to_string()).collect(),
            Raw::Many(v) => v.into_iter().map(|p| p.trim().to_string()).collect(),
        };
        Ok(At(items))
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
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        Ok(Key(match Raw::deserialize(d)? {
            Raw::One(s) => vec![s],
            Raw::Many(v) => v,
        }))
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_row_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_chunk_size: Option<u64>,
}

fn is_false(b: &bool) -> bool {
    !*b
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
    /// Parses and validates a job file.
    pub fn parse(text: &str, format: Format) -> Result<Job, ConfigErrors> {
        let job: Job = match format {
            Format::Json => {
                let de = &mut serde_json::Deserializer::from_str(text);
                serde_path_to_error::deserialize(de).map_err(|e| {
                    let field = e.path().to_string();
                    let inner = e.into_inner();
                    let at = format!(" at line {} column {}", inner.line(), inner.column());
                    one(&field, strip_position(&inner.to_string()) + &at)
                })?
            }
            Format::Yaml => {
                let de = serde_yaml_ng::Deserializer::from_str(text);
                serde_path_to_error::deserialize(de).map_err(|e| {
                    let field = e.path().to_string();
                    let message = e.into_inner().to_string();
                    // The YAML error names the enclosing path itself; ours is finer.
                    let message = match message.split_once(": ") {
                        Some((p, rest)) if p == "." || field.starts_with(p) => rest.to_string(),
                        _ => message,
                    };
                    one(&field, message)
                })?
            }
        };
        job.validate()?;
        Ok(job)
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
        if let Some(at) = &self.at {
            if at.0.is_empty() || at.0.iter().any(|a| a.is_empty()) {
                errors.push(err("at", "must not hold empty entries"));
            }
            for (i, entry) in at.0.iter().enumerate().filter(|(_, a)| !a.is_empty()) {
                if let Err(e) = crate::schedule::AtEntry::parse(entry) {
                    errors.push(err(format!("at[{i}]"), e.to_string()));
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
            ["tables[2].copy_mode: expected one of INSERT_ONLY, INSERT_AND_UPDATE, FULL_DATA_SYNC, got \"UPSERT\" at line 11 column 5"]
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
    fn json_errors_name_the_field_and_position() {
        let text = r#"{"name": "shop", "source": {"url_env": "X"}, "destination": {"url_env": "Y"}, "frequency": 300, "tables": [{"source": "t", "copy_mode": "NOPE"}]}"#;
        let errors: Vec<String> = Job::parse(text, Format::Json)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with(
                "tables[0].copy_mode: expected one of INSERT_ONLY, INSERT_AND_UPDATE, FULL_DATA_SYNC, got \"NOPE\" at line 1"
            ),
            "{errors:?}"
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
}
