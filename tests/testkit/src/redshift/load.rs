//! PURE: the parts of `COPY ... FROM 's3://...'` that do not touch the network — the
//! options, a streaming CSV reader with Redshift's rules, and per-column validation
//! with Redshift's `stl_load_errors` reasons.

use super::sql::Refusal;
use super::timefmt::{self, TimeFormat};

/// What a COPY statement asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySpec {
    pub manifest: bool,
    pub compression: Compression,
    pub delimiter: u8,
    pub quote: u8,
    pub null_as: String,
    pub ignore_header: u64,
    pub empty_as_null: bool,
    pub blanks_as_null: bool,
    pub truncate_columns: bool,
    pub accept_inv_chars: bool,
    /// `DATEFORMAT` (DATE columns); `YYYY-MM-DD` when absent.
    pub date_format: TimeFormat,
    /// `TIMEFORMAT` (TIMESTAMP and TIMESTAMPTZ columns); `YYYY-MM-DD HH24:MI:SS` when
    /// absent.
    pub time_format: TimeFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// `IAM_ROLE default`, or a role ARN (`arn:aws:iam::<12 digits>:role/<path/name>`;
/// a chain is comma-separated). With `cluster_role`, the (first) role must be that one:
/// a cluster assumes only the roles associated with it.
pub fn check_role(value: &str, cluster_role: Option<&str>) -> Result<(), Refusal> {
    if value == "DEFAULT" {
        return Ok(());
    }
    let chain: Vec<&str> = value.split(',').collect();
    if let Some(bad) = chain.iter().find(|arn| !is_role_arn(arn)) {
        return Err(refuse(
            "XX000",
            format!("Invalid IAM_ROLE ARN '{bad}': expected arn:aws:iam::<12-digit account id>:role/<name>, or IAM_ROLE default"),
        ));
    }
    match cluster_role {
        Some(r) if r != chain[0] => Err(refuse(
            "XX000",
            format!(
                "User arn:aws:redshift:emulator:dbuser:cluster/loader is not authorized to assume IAM Role {}",
                chain[0]
            ),
        )),
        _ => Ok(()),
    }
}

fn is_role_arn(arn: &str) -> bool {
    let Some(rest) = ["arn:aws:iam::", "arn:aws-cn:iam::", "arn:aws-us-gov:iam::"]
        .iter()
        .find_map(|p| arn.strip_prefix(p))
    else {
        return false;
    };
    let Some((account, name)) = rest.split_once(":role/") else {
        return false;
    };
    account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && !name.ends_with('/')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
}

/// Checks and collects the options of a COPY from S3 (`cluster_role`: see
/// [`check_role`]).
pub fn spec(
    options: &[(String, Option<String>)],
    cluster_role: Option<&str>,
) -> Result<CopySpec, Refusal> {
    let mut spec = CopySpec {
        manifest: false,
        compression: Compression::None,
        delimiter: b',',
        quote: b'"',
        null_as: String::new(),
        ignore_header: 0,
        empty_as_null: false,
        blanks_as_null: false,
        truncate_columns: false,
        accept_inv_chars: false,
        date_format: TimeFormat::default_for(false),
        time_format: TimeFormat::default_for(true),
    };
    let mut csv = false;
    let mut role = false;
    let mut null_set = false;
    for (name, value) in options {
        let v = value.as_deref();
        match name.as_str() {
            "IAM_ROLE" => {
                check_role(v.unwrap_or(""), cluster_role)?;
                role = true;
            }
            "ACCESS_KEY_ID" | "SECRET_ACCESS_KEY" | "SESSION_TOKEN" | "CREDENTIALS" | "WITH" => {
                return Err(refuse(
                    "0A000",
                    "COPY with access keys in the statement is refused: they end up in stl_query and in logs; use IAM_ROLE",
                ))
            }
            "CSV" => csv = true,
            "FORMAT" => match v {
                Some("CSV") => csv = true,
                Some(f) => return Err(refuse("0A000", format!("FORMAT {f} is not emulated; the Redshift emulator loads CSV"))),
                None => {}
            },
            "GZIP" => spec.compression = Compression::Gzip,
            "ZSTD" => spec.compression = Compression::Zstd,
            "BZIP2" | "LZOP" => return Err(refuse("0A000", format!("{name} is not emulated; use GZIP or ZSTD"))),
            "MANIFEST" => spec.manifest = true,
            "DELIMITER" => spec.delimiter = one_byte(name, v)?,
            "QUOTE" => spec.quote = one_byte(name, v)?,
            "NULL" => {
                spec.null_as = v.unwrap_or("").to_string();
                null_set = true;
            }
            "IGNOREHEADER" => {
                spec.ignore_header = v
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| refuse("42601", "IGNOREHEADER needs a number of lines"))?
            }
            "TIMEFORMAT" | "DATEFORMAT" => {
                let timestamps = name == "TIMEFORMAT";
                let f = v.ok_or_else(|| refuse("42601", format!("{name} needs a format")))?;
                let f = TimeFormat::parse(f, timestamps).map_err(|e| refuse("22023", e))?;
                if timestamps {
                    spec.time_format = f;
                } else {
                    spec.date_format = f;
                }
            }
            "REGION" => {
                if v.is_none() {
                    return Err(refuse("42601", "REGION needs a region name"));
                }
            }
            "COMPUPDATE" | "STATUPDATE" => match v {
                None | Some("ON" | "OFF" | "TRUE" | "FALSE" | "PRESET") => {}
                Some(o) => return Err(refuse("42601", format!("{name} takes ON or OFF, not {o}"))),
            },
            "EMPTYASNULL" => spec.empty_as_null = true,
            "BLANKSASNULL" => spec.blanks_as_null = true,
            "TRUNCATECOLUMNS" => spec.truncate_columns = true,
            "ACCEPTINVCHARS" => spec.accept_inv_chars = true,
            "MAXERROR" => {
                if v != Some("0") {
                    return Err(refuse("0A000", "MAXERROR other than 0 is not emulated"));
                }
            }
            other => return Err(refuse("42601", format!("syntax error at or near \"{other}\" in COPY"))),
        }
    }
    if !role {
        return Err(refuse(
            "XX000",
            "Missing credentials for COPY from Amazon S3: specify IAM_ROLE 'arn:aws:iam::<account>:role/<name>'",
        ));
    }
    if !csv {
        return Err(refuse(
            "0A000",
            "COPY without CSV is not emulated; the Redshift emulator loads CSV",
        ));
    }
    if !null_set {
        spec.null_as = String::new();
    }
    Ok(spec)
}

fn one_byte(name: &str, v: Option<&str>) -> Result<u8, Refusal> {
    match v.map(str::as_bytes) {
        Some([b]) => Ok(*b),
        _ => Err(refuse(
            "42601",
            format!("{name} must be a single character"),
        )),
    }
}

/// One CSV field: its bytes and whether it was quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub bytes: Vec<u8>,
    pub quoted: bool,
}

/// One record with the line it started on and its raw text (first 1024 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub line: u64,
    pub fields: Vec<Field>,
    pub raw: Vec<u8>,
}

/// A line that cannot load, with what Redshift says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvError {
    pub line: u64,
    pub raw: Vec<u8>,
    pub code: i32,
    pub reason: String,
    /// The field at fault, when one is (malformed lines have none).
    pub field: Option<Box<BadField>>,
}

/// The column and raw value of a field that cannot load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadField {
    pub column: Column,
    pub value: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Start,
    Unquoted,
    Quoted,
    QuoteInQuoted,
    Cr,
}

/// A push CSV reader: feed bytes in any pieces, get whole records.
#[derive(Debug)]
pub struct CsvReader {
    delim: u8,
    quote: u8,
    st: St,
    field: Field,
    fields: Vec<Field>,
    raw: Vec<u8>,
    line: u64,
    record_line: u64,
    /// Bytes of the current record read so far (a location in load errors).
    pos: usize,
}

const RAW_MAX: usize = 1024;

impl CsvReader {
    pub fn new(delim: u8, quote: u8) -> CsvReader {
        CsvReader {
            delim,
            quote,
            st: St::Start,
            field: Field {
                bytes: Vec::new(),
                quoted: false,
            },
            fields: Vec::new(),
            raw: Vec::new(),
            line: 1,
            record_line: 1,
            pos: 0,
        }
    }

    pub fn feed(
        &mut self,
        input: &[u8],
        mut on_record: impl FnMut(Record) -> Result<(), CsvError>,
    ) -> Result<(), CsvError> {
        for &b in input {
            if self.raw.len() < RAW_MAX && b != b'\n' && b != b'\r' {
                self.raw.push(b);
            }
            self.pos += 1;
            match self.st {
                St::Start | St::Unquoted => {
                    if b == self.quote && self.st == St::Start {
                        self.field.quoted = true;
                        self.st = St::Quoted;
                    } else if b == self.delim {
                        self.end_field();
                        self.st = St::Start;
                    } else if b == b'\n' {
                        self.end_record(&mut on_record)?;
                    } else if b == b'\r' {
                        self.st = St::Cr;
                    } else if b == self.quote {
                        return Err(self.error(1214, "Invalid quote formatting for CSV"));
                    } else {
                        self.field.bytes.push(b);
                        self.st = St::Unquoted;
                    }
                }
                St::Quoted => {
                    if b == self.quote {
                        self.st = St::QuoteInQuoted;
                    } else {
                        if b == b'\n' {
                            self.line += 1;
                        }
                        self.field.bytes.push(b);
                    }
                }
                St::QuoteInQuoted => {
                    if b == self.quote {
                        self.field.bytes.push(b);
                        self.st = St::Quoted;
                    } else if b == self.delim {
                        self.end_field();
                        self.st = St::Start;
                    } else if b == b'\n' {
                        self.end_record(&mut on_record)?;
                    } else if b == b'\r' {
                        self.st = St::Cr;
                    } else {
                        let reason = format!(
                            "Missing newline: Unexpected character 0x{b:02x} found at location {}",
                            self.pos
                        );
                        return Err(self.error(1216, &reason));
                    }
                }
                St::Cr => {
                    if b == b'\n' {
                        self.end_record(&mut on_record)?;
                    } else {
                        return Err(self.error(1214, "Invalid quote formatting for CSV"));
                    }
                }
            }
        }
        Ok(())
    }

    /// The end of one file: a last line without a newline is a record too.
    pub fn finish(
        &mut self,
        mut on_record: impl FnMut(Record) -> Result<(), CsvError>,
    ) -> Result<(), CsvError> {
        match self.st {
            St::Quoted => Err(self.error(1214, "Unterminated quoted field at end of file")),
            St::Start
                if self.fields.is_empty() && self.field.bytes.is_empty() && !self.field.quoted =>
            {
                Ok(())
            }
            _ => self.end_record(&mut on_record),
        }
    }

    fn error(&self, code: i32, reason: &str) -> CsvError {
        CsvError {
            line: self.record_line,
            raw: self.raw.clone(),
            code,
            reason: reason.to_string(),
            field: None,
        }
    }

    fn end_field(&mut self) {
        let f = std::mem::replace(
            &mut self.field,
            Field {
                bytes: Vec::new(),
                quoted: false,
            },
        );
        self.fields.push(f);
    }

    fn end_record(
        &mut self,
        on_record: &mut impl FnMut(Record) -> Result<(), CsvError>,
    ) -> Result<(), CsvError> {
        self.end_field();
        let record = Record {
            line: self.record_line,
            fields: std::mem::take(&mut self.fields),
            raw: std::mem::take(&mut self.raw),
        };
        self.line += 1;
        self.record_line = self.line;
        self.pos = 0;
        self.st = St::Start;
        on_record(record)
    }
}

/// A target column as the backend describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// `pg_type.typname`: `varchar`, `bpchar`, `int4`, `numeric`, `jsonb`, ...
    pub typname: String,
    pub typmod: i32,
    pub not_null: bool,
}

/// Why a field cannot load: Redshift's error code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub code: i32,
    pub reason: String,
}

fn ferr(code: i32, reason: impl Into<String>) -> FieldError {
    FieldError {
        code,
        reason: reason.into(),
    }
}

/// Converts one field for the backend's `COPY ... FROM STDIN (FORMAT csv)`: `None` is
/// NULL, else the value's text. Applies Redshift's rules where PostgreSQL's differ.
pub fn convert(
    col: &Column,
    field: &Field,
    spec: &CopySpec,
) -> Result<Option<Vec<u8>>, FieldError> {
    let is_text = matches!(col.typname.as_str(), "varchar" | "bpchar" | "text");
    let mut bytes = field.bytes.clone();
    let mut null = !field.quoted && bytes == spec.null_as.as_bytes();
    if !null && bytes.is_empty() && (!is_text || spec.empty_as_null) {
        null = true;
    }
    if !null && spec.blanks_as_null && !bytes.is_empty() && bytes.iter().all(|b| *b == b' ') {
        null = true;
    }
    if null {
        if col.not_null {
            return Err(ferr(1213, "Missing data for not-null field"));
        }
        return Ok(None);
    }
    if std::str::from_utf8(&bytes).is_err() {
        if spec.accept_inv_chars {
            bytes = String::from_utf8_lossy(&bytes)
                .replace('\u{FFFD}', "?")
                .into_bytes();
        } else {
            return Err(ferr(
                1220,
                "String contains invalid or unsupported UTF8 codepoints",
            ));
        }
    }
    let text = String::from_utf8(bytes).expect("checked above");
    let value = text.as_str();
    match col.typname.as_str() {
        "varchar" => {
            let limit = (col.typmod - 4).max(0) as usize;
            if col.typmod > 4 && value.len() > limit {
                if spec.truncate_columns {
                    return Ok(Some(cut(value, limit).as_bytes().to_vec()));
                }
                return Err(ferr(1204, "String length exceeds DDL length"));
            }
        }
        "bpchar" => {
            if value.len() != value.chars().count() {
                return Err(ferr(
                    1220,
                    "Multibyte character not supported for CHAR (Hint: try using VARCHAR)",
                ));
            }
            let limit = (col.typmod - 4).max(0) as usize;
            if col.typmod > 4 && value.trim_end_matches(' ').len() > limit {
                if spec.truncate_columns {
                    return Ok(Some(value.as_bytes()[..limit].to_vec()));
                }
                return Err(ferr(1204, "String length exceeds DDL length"));
            }
        }
        "int2" | "int4" | "int8" => {
            let (min, max, name) = match col.typname.as_str() {
                "int2" => (i16::MIN as i128, i16::MAX as i128, "Short"),
                "int4" => (i32::MIN as i128, i32::MAX as i128, "Integer"),
                _ => (i64::MIN as i128, i64::MAX as i128, "Long"),
            };
            let t = value.trim();
            if let Some(pos) = t
                .char_indices()
                .position(|(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+'))))
                .or(if t.is_empty() || t == "-" || t == "+" {
                    Some(0)
                } else {
                    None
                })
            {
                return Err(ferr(
                    1207,
                    format!(
                        "Invalid digit, Value '{}', Pos {pos}, Type: {name}",
                        t.chars().nth(pos).unwrap_or(' ')
                    ),
                ));
            }
            match t.parse::<i128>() {
                Ok(n) if (min..=max).contains(&n) => {}
                _ => {
                    return Err(ferr(
                        1222,
                        format!("Overflow ({name} valid range {min} to {max})"),
                    ))
                }
            }
        }
        "numeric" => {
            let t = value.trim();
            let digits = t.trim_start_matches(['-', '+']);
            let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
            if digits.is_empty() || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
                return Err(ferr(
                    1207,
                    format!("Invalid digit, Value '{t}', Pos 0, Type: Decimal"),
                ));
            }
            if col.typmod > 4 {
                let m = col.typmod - 4;
                let (p, s) = ((m >> 16) & 0xffff, m & 0xffff);
                let int_digits = int.trim_start_matches('0').len() as i32;
                if int_digits > p - s {
                    return Err(ferr(1204, format!("Numeric data overflow (result precision), Value '{t}', Type: DECIMAL({p},{s})")));
                }
            }
        }
        "bool" => {
            let t = value.trim().to_ascii_lowercase();
            if !matches!(
                t.as_str(),
                "t" | "f" | "true" | "false" | "1" | "0" | "y" | "n" | "yes" | "no"
            ) {
                return Err(ferr(1210, format!("Invalid boolean value '{value}'")));
            }
        }
        "float4" | "float8" => {
            // Assumed: Redshift's docs do not say REAL/DOUBLE PRECISION take NaN or
            // infinities from COPY, so the emulator refuses them.
            let t = value.trim().to_ascii_lowercase();
            if matches!(t.trim_start_matches(['-', '+']), "nan" | "infinity" | "inf") {
                let name = if col.typname == "float4" {
                    "Real"
                } else {
                    "Double"
                };
                return Err(ferr(
                    1207,
                    format!(
                        "Invalid digit, Value '{}', Pos 0, Type: {name}",
                        value.trim()
                    ),
                ));
            }
            float(col, value)?;
        }
        "date" | "timestamp" | "timestamptz" => return date_time(col, value, spec),
        "time" | "timetz" => {
            // PostgreSQL's special words are not times to Redshift.
            let t = value.trim().to_ascii_lowercase();
            if matches!(t.as_str(), "allballs" | "now")
                || !t.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(ferr(
                    1206,
                    format!("Invalid time format or value '{value}'"),
                ));
            }
        }
        "jsonb" => {
            if serde_json::from_str::<serde_json::Value>(value).is_err() {
                return Err(ferr(1224, "Invalid JSON value for a SUPER column"));
            }
            if value.len() > 16 * 1024 * 1024 {
                return Err(ferr(1224, "SUPER value exceeds 16 MB"));
            }
        }
        "bytea" => {
            let hex = value.trim();
            if hex.len() % 2 != 0 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(ferr(1207, "Invalid hex value for a VARBYTE column"));
            }
            // The column's VARBYTE(n), kept by the emulator as typmod n + 4.
            if col.typmod > 4 && hex.len() / 2 > (col.typmod - 4) as usize {
                return Err(ferr(1204, "Value length exceeds VARBYTE DDL length"));
            }
            return Ok(Some(format!("\\x{hex}").into_bytes()));
        }
        _ => {}
    }
    Ok(Some(text.into_bytes()))
}

/// REAL and DOUBLE PRECISION: plain (`12.123`) or exponent (`1.0E4`) notation within
/// the type's range. NaN and the infinities are left to the backend.
fn float(col: &Column, value: &str) -> Result<(), FieldError> {
    let t = value.trim();
    let bare = t.trim_start_matches(['+', '-']).to_ascii_lowercase();
    if matches!(bare.as_str(), "nan" | "inf" | "infinity") {
        return Ok(());
    }
    let name = if col.typname == "float4" {
        "Float"
    } else {
        "Double"
    };
    let (mantissa, exponent) = match bare.split_once('e') {
        Some((m, e)) => (m, Some(e.strip_prefix(['+', '-']).unwrap_or(e))),
        None => (bare.as_str(), None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    let well_formed = (!int.is_empty() || !frac.is_empty())
        && digits(int)
        && digits(frac)
        && exponent.is_none_or(|e| !e.is_empty() && digits(e))
        && t.len() - bare.len() <= 1;
    if !well_formed {
        return Err(ferr(
            1207,
            format!("Invalid digit, Value '{t}', Pos 0, Type: {name}"),
        ));
    }
    // Read as the column's own type: a REAL literal that rounds to f32::MAX (PostgreSQL
    // prints it as 3.4028235e+38) is in range; one that rounds to infinity is not.
    let finite = if col.typname == "float4" {
        t.parse::<f32>().is_ok_and(f32::is_finite)
    } else {
        t.parse::<f64>().is_ok_and(f64::is_finite)
    };
    if finite {
        Ok(())
    } else {
        Err(ferr(1207, format!("Overflow for {name}, Value '{t}'")))
    }
}

/// DATE, TIMESTAMP and TIMESTAMPTZ by `DATEFORMAT` / `TIMEFORMAT`.
fn date_time(col: &Column, value: &str, spec: &CopySpec) -> Result<Option<Vec<u8>>, FieldError> {
    let date = col.typname == "date";
    let format = if date {
        &spec.date_format
    } else {
        &spec.time_format
    };
    let fail = || Err(date_time_error(date, spec));
    let civil = match format {
        TimeFormat::Auto => {
            // PostgreSQL reads what 'auto' reads, and more: refuse its extras here.
            let t = value.trim().to_ascii_lowercase();
            if t.contains("infinity")
                || matches!(
                    t.as_str(),
                    "epoch" | "now" | "today" | "tomorrow" | "yesterday" | "allballs"
                )
            {
                return fail();
            }
            return Ok(Some(value.as_bytes().to_vec()));
        }
        TimeFormat::EpochSecs => timefmt::read_epoch(value, false),
        TimeFormat::EpochMillis => timefmt::read_epoch(value, true),
        TimeFormat::Pattern { parts, .. } => {
            timefmt::read(parts, value, col.typname == "timestamptz")
        }
    };
    match civil {
        Some(c) => Ok(Some(c.iso(!date).into_bytes())),
        None => fail(),
    }
}

/// Redshift's load error for a date (or timestamp) its format does not read.
pub fn date_time_error(date: bool, spec: &CopySpec) -> FieldError {
    let format = if date {
        &spec.date_format
    } else {
        &spec.time_format
    };
    let label = match format {
        TimeFormat::Auto if date => timefmt::DEFAULT_DATE,
        TimeFormat::Auto => timefmt::DEFAULT_TIME,
        f => f.label(),
    };
    // Redshift's DATE errors share the timestamp wording (the loader matches on it).
    let reason = format!("Invalid timestamp format or value [{label}]");
    ferr(if date { 1205 } else { 1206 }, reason)
}

fn cut(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// "The maximum size of a single input row from any source is 4 MB" (COPY data sources).
pub const MAX_ROW_BYTES: usize = 4 * 1024 * 1024;

/// Converts one record to a line of PostgreSQL CSV for `cols`, or says why it cannot
/// load. Nothing is appended on failure.
pub fn encode_record(
    rec: &Record,
    cols: &[Column],
    spec: &CopySpec,
    out: &mut Vec<u8>,
) -> Result<(), CsvError> {
    // The row's values and delimiters (quotes not counted).
    let size: usize = rec.fields.iter().map(|f| f.bytes.len() + 1).sum();
    if size > MAX_ROW_BYTES {
        return Err(CsvError {
            line: rec.line,
            raw: rec.raw.clone(),
            code: 1204,
            reason: format!(
                "Input row of {size} bytes exceeds the maximum of 4 MB for a single input row"
            ),
            field: None,
        });
    }
    if rec.fields.len() != cols.len() {
        let (code, reason) = if rec.fields.len() > cols.len() {
            (1202, "Extra column(s) found")
        } else {
            (1214, "Delimiter not found")
        };
        return Err(CsvError {
            line: rec.line,
            raw: rec.raw.clone(),
            code,
            reason: reason.into(),
            field: None,
        });
    }
    let start = out.len();
    for (i, (field, col)) in rec.fields.iter().zip(cols).enumerate() {
        match convert(col, field, spec) {
            Ok(v) => {
                if i > 0 {
                    out.push(b',');
                }
                push_pg_field(out, v.as_deref());
            }
            Err(e) => {
                out.truncate(start);
                return Err(CsvError {
                    line: rec.line,
                    raw: rec.raw.clone(),
                    code: e.code,
                    reason: e.reason,
                    field: Some(Box::new(BadField {
                        column: col.clone(),
                        value: field.bytes.clone(),
                    })),
                });
            }
        }
    }
    out.push(b'\n');
    Ok(())
}

/// Appends one PostgreSQL CSV field (NULL as the unquoted `\N`, values quoted).
pub fn push_pg_field(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => out.extend_from_slice(b"\\N"),
        Some(v) => {
            out.push(b'"');
            for &b in v {
                if b == b'"' {
                    out.push(b'"');
                }
                out.push(b);
            }
            out.push(b'"');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    }

    fn spec_any(options: &[(String, Option<String>)]) -> Result<CopySpec, Refusal> {
        spec(options, None)
    }

    #[test]
    fn iam_role_is_an_arn_or_default_and_the_cluster_role_when_set() {
        for ok in [
            "DEFAULT",
            "arn:aws:iam::123456789012:role/redshift-copy",
            "arn:aws:iam::123456789012:role/service-role/a.b@c",
            "arn:aws:iam::123456789012:role/a,arn:aws:iam::210987654321:role/b",
        ] {
            assert_eq!(check_role(ok, None), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "redshift-copy",
            "arn:aws:iam::1:role/r",
            "arn:aws:iam::123456789012:user/r",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:s3:::123456789012:role/r",
            "arn:aws:iam::123456789012:role/a b",
        ] {
            let r = check_role(bad, None).unwrap_err();
            assert_eq!(r.code, "XX000");
            assert!(
                r.message.starts_with("Invalid IAM_ROLE ARN"),
                "{bad}: {r:?}"
            );
        }
        let mine = "arn:aws:iam::123456789012:role/copy";
        assert_eq!(check_role(mine, Some(mine)), Ok(()));
        assert_eq!(check_role("DEFAULT", Some(mine)), Ok(()));
        let r = check_role("arn:aws:iam::123456789012:role/other", Some(mine)).unwrap_err();
        assert!(
            r.message.contains(
                "is not authorized to assume IAM Role arn:aws:iam::123456789012:role/other"
            ),
            "{r:?}"
        );
    }

    fn csv_spec() -> CopySpec {
        spec_any(&opts(&[
            ("IAM_ROLE", Some("arn:aws:iam::123456789012:role/r")),
            ("CSV", None),
            ("NULL", Some("\\N")),
        ]))
        .unwrap()
    }

    #[test]
    fn options_need_a_role_and_csv_and_refuse_keys() {
        assert!(spec_any(&opts(&[("CSV", None)]))
            .unwrap_err()
            .message
            .contains("IAM_ROLE"));
        assert!(
            spec_any(&opts(&[("CSV", None), ("ACCESS_KEY_ID", Some("AKIA"))]))
                .unwrap_err()
                .message
                .contains("use IAM_ROLE")
        );
        assert!(spec_any(&opts(&[(
            "IAM_ROLE",
            Some("arn:aws:iam::123456789012:role/r")
        )]))
        .unwrap_err()
        .message
        .contains("CSV"));
        let s = spec_any(&opts(&[
            ("IAM_ROLE", Some("arn:aws:iam::123456789012:role/r")),
            ("FORMAT", Some("CSV")),
            ("GZIP", None),
            ("MANIFEST", None),
            ("DELIMITER", Some("|")),
            ("IGNOREHEADER", Some("2")),
            ("TIMEFORMAT", Some("auto")),
            ("COMPUPDATE", Some("OFF")),
        ]))
        .unwrap();
        assert_eq!(
            (s.compression, s.manifest, s.delimiter, s.ignore_header),
            (Compression::Gzip, true, b'|', 2)
        );
        assert!(spec_any(&opts(&[
            ("IAM_ROLE", Some("arn:aws:iam::123456789012:role/r")),
            ("CSV", None),
            ("BOGUS", None)
        ]))
        .is_err());
    }

    fn records(input: &[u8], pieces: usize) -> Vec<Record> {
        let mut r = CsvReader::new(b',', b'"');
        let mut out = Vec::new();
        for chunk in input.chunks(pieces) {
            r.feed(chunk, |rec| {
                out.push(rec);
                Ok(())
            })
            .unwrap();
        }
        r.finish(|rec| {
            out.push(rec);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn csv_reader_handles_quotes_newlines_and_any_split() {
        let input = b"1,\"a,b\",\\N\n2,\"x\"\"y\nz\",\"\"\r\n3,plain,";
        for pieces in [1, 2, 3, 100] {
            let recs = records(input, pieces);
            assert_eq!(recs.len(), 3);
            assert_eq!(recs[0].fields[1].bytes, b"a,b");
            assert!(!recs[0].fields[2].quoted);
            assert_eq!(recs[1].fields[1].bytes, b"x\"y\nz");
            assert_eq!(
                recs[1].fields[2],
                Field {
                    bytes: vec![],
                    quoted: true
                }
            );
            assert_eq!(
                (recs[1].line, recs[2].line),
                (2, 4),
                "a quoted newline is a line too"
            );
            assert_eq!(recs[2].fields[2].bytes, b"");
        }
    }

    fn col(typname: &str, typmod: i32, not_null: bool) -> Column {
        Column {
            name: "c".into(),
            typname: typname.into(),
            typmod,
            not_null,
        }
    }

    fn conv(c: &Column, bytes: &str, quoted: bool) -> Result<Option<String>, FieldError> {
        convert(
            c,
            &Field {
                bytes: bytes.as_bytes().to_vec(),
                quoted,
            },
            &csv_spec(),
        )
        .map(|v| v.map(|b| String::from_utf8(b).unwrap()))
    }

    #[test]
    fn nulls_and_empties_follow_redshift() {
        let v = col("varchar", 14, false);
        assert_eq!(conv(&v, "\\N", false), Ok(None));
        assert_eq!(
            conv(&v, "\\N", true),
            Ok(Some("\\N".into())),
            "a quoted \\N is text"
        );
        assert_eq!(conv(&v, "", true), Ok(Some(String::new())));
        assert_eq!(
            conv(&col("int4", -1, false), "", false),
            Ok(None),
            "empty loads as NULL into non-text"
        );
        assert_eq!(
            conv(&col("int4", -1, true), "\\N", false).unwrap_err().code,
            1213
        );
    }

    #[test]
    fn dates_and_timestamps_follow_dateformat_and_timeformat() {
        let with = |extra: &[(&str, Option<&str>)]| {
            let mut o = vec![
                ("IAM_ROLE", Some("arn:aws:iam::123456789012:role/r")),
                ("CSV", None),
            ];
            o.extend_from_slice(extra);
            spec_any(&opts(&o)).unwrap()
        };
        let ts = col("timestamp", -1, false);
        let tz = col("timestamptz", -1, false);
        let date = col("date", -1, false);
        let field = |v: &str| Field {
            bytes: v.as_bytes().to_vec(),
            quoted: false,
        };
        let run = |c: &Column, v: &str, s: &CopySpec| {
            convert(c, &field(v), s).map(|v| String::from_utf8(v.unwrap()).unwrap())
        };
        // No option: Redshift's default formats, strictly.
        let none = with(&[]);
        assert_eq!(
            run(&ts, "2024-01-02 03:04:05", &none).unwrap(),
            "2024-01-02 03:04:05"
        );
        assert_eq!(
            run(&tz, "2024-01-02 03:04:05+02", &none).unwrap(),
            "2024-01-02 03:04:05+02:00"
        );
        assert_eq!(
            run(&ts, "2024-01-02T03:04:05", &none).unwrap_err().code,
            1206
        );
        assert_eq!(run(&date, "2024-01-02", &none).unwrap(), "2024-01-02");
        assert_eq!(
            run(&date, "01/02/2024", &none).unwrap_err(),
            FieldError {
                code: 1205,
                reason: "Invalid timestamp format or value [YYYY-MM-DD]".into()
            }
        );
        // 'auto': the backend reads it, except what Redshift refuses.
        let auto = with(&[("TIMEFORMAT", Some("auto")), ("DATEFORMAT", Some("auto"))]);
        assert_eq!(
            run(&ts, "2024-01-02T03:04:05", &auto).unwrap(),
            "2024-01-02T03:04:05"
        );
        assert_eq!(run(&date, "01/02/2024", &auto).unwrap(), "01/02/2024");
        assert_eq!(run(&ts, "infinity", &auto).unwrap_err().code, 1206);
        // Epochs and format strings become ISO text.
        let epoch = with(&[("TIMEFORMAT", Some("epochsecs"))]);
        assert_eq!(run(&tz, "86400", &epoch).unwrap(), "1970-01-02 00:00:00");
        assert_eq!(
            run(&ts, "x", &epoch).unwrap_err().reason,
            "Invalid timestamp format or value [epochsecs]"
        );
        let us = with(&[
            ("TIMEFORMAT", Some("MM/DD/YYYY HH12:MI:SS AM")),
            ("DATEFORMAT", Some("MON DD YYYY")),
        ]);
        assert_eq!(
            run(&ts, "12/31/2023 11:59:58 PM", &us).unwrap(),
            "2023-12-31 23:59:58"
        );
        assert_eq!(run(&date, "Feb 29 2024", &us).unwrap(), "2024-02-29");
        assert_eq!(run(&date, "Feb 30 2024", &us).unwrap_err().code, 1205);
        assert!(
            spec_any(&opts(&[
                ("IAM_ROLE", Some("arn:aws:iam::123456789012:role/r")),
                ("CSV", None),
                ("DATEFORMAT", Some("epochsecs")),
            ]))
            .is_err(),
            "epochs are for TIMEFORMAT only"
        );
    }

    #[test]
    fn floats_times_numeric_nan_and_row_size_are_checked() {
        let real = col("float4", -1, false);
        let double = col("float8", -1, false);
        for ok in ["12.123", "-1.0E4", "+.5", "3e-2", "7", "1e38"] {
            assert_eq!(conv(&real, ok, false), Ok(Some(ok.into())), "{ok}");
        }
        for bad in ["1,5", "abc", "1e", "--1", "0x10", "1.2.3", "."] {
            assert_eq!(conv(&double, bad, false).unwrap_err().code, 1207, "{bad}");
        }
        // f32::MAX as PostgreSQL prints it (the `extreme` for REAL's Infinity) is a REAL.
        assert_eq!(
            conv(&real, "3.4028235e+38", false),
            Ok(Some("3.4028235e+38".into()))
        );
        assert!(conv(&real, "1e39", false)
            .unwrap_err()
            .reason
            .contains("Overflow"));
        assert_eq!(conv(&double, "1e39", false), Ok(Some("1e39".into())));
        let time = col("time", -1, false);
        assert_eq!(
            conv(&time, "04:05:06.5", false),
            Ok(Some("04:05:06.5".into()))
        );
        assert_eq!(conv(&time, "allballs", false).unwrap_err().code, 1206);
        assert_eq!(
            conv(&col("timetz", -1, false), "now", false)
                .unwrap_err()
                .code,
            1206
        );
        // No NaN in DECIMAL.
        assert_eq!(
            conv(&col("numeric", -1, false), "NaN", false)
                .unwrap_err()
                .code,
            1207
        );
        // A row over 4 MB.
        let big = Record {
            line: 1,
            raw: vec![b'a'; 1024],
            fields: vec![Field {
                bytes: vec![b'a'; MAX_ROW_BYTES],
                quoted: false,
            }],
        };
        let e = encode_record(
            &big,
            &[col("varchar", -1, false)],
            &csv_spec(),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(e.reason.contains("4 MB"), "{e:?}");
    }

    #[test]
    fn values_are_checked_as_redshift_checks_them() {
        assert_eq!(
            conv(&col("varchar", 4 + 4, false), "ééé", true)
                .unwrap_err()
                .reason,
            "String length exceeds DDL length"
        );
        assert_eq!(
            conv(&col("varchar", 4 + 6, false), "ééé", true),
            Ok(Some("ééé".into()))
        );
        assert_eq!(
            conv(&col("bpchar", 4 + 3, false), "é", true)
                .unwrap_err()
                .code,
            1220
        );
        assert_eq!(
            conv(&col("int4", -1, false), "12x", false)
                .unwrap_err()
                .reason,
            "Invalid digit, Value 'x', Pos 2, Type: Integer"
        );
        assert_eq!(
            conv(&col("int2", -1, false), "40000", false).unwrap_err(),
            FieldError {
                code: 1222,
                reason: "Overflow (Short valid range -32768 to 32767)".into()
            }
        );
        assert_eq!(
            conv(&col("int8", -1, false), "-9223372036854775808", false),
            Ok(Some("-9223372036854775808".into()))
        );
        let dec = col("numeric", ((5 << 16) | 2) + 4, false);
        assert_eq!(conv(&dec, "999.99", false), Ok(Some("999.99".into())));
        assert_eq!(conv(&dec, "1000.5", false).unwrap_err().code, 1204);
        assert_eq!(
            conv(&col("bool", -1, false), "maybe", false)
                .unwrap_err()
                .code,
            1210
        );
        assert_eq!(
            conv(&col("timestamptz", -1, false), "infinity", false)
                .unwrap_err()
                .code,
            1206
        );
        assert_eq!(
            conv(&col("jsonb", -1, false), "{\"a\":", true)
                .unwrap_err()
                .code,
            1224
        );
        assert_eq!(
            conv(&col("bytea", -1, false), "0aff", true),
            Ok(Some("\\x0aff".into()))
        );
        assert_eq!(
            conv(&col("bytea", -1, false), "0g", true).unwrap_err().code,
            1207
        );
    }
}
