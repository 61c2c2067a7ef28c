//! PURE: reading statements the way the emulator needs to — tokens with byte spans,
//! statement splitting, classification, and the rewrites that turn Redshift DDL into
//! PostgreSQL DDL (or refuse what Redshift would refuse).

/// Token kinds; comments and whitespace are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Word,
    QuotedIdent,
    Str,
    Number,
    Param,
    Punct,
    Op,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tok {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

/// Splits SQL into tokens. Strings follow Redshift: a backslash escapes the next
/// character (the backend session runs with `standard_conforming_strings=off`).
pub fn tokenize(sql: &str) -> Vec<Tok> {
    let b = sql.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            continue;
        }
        let kind;
        if c == b'\'' || ((c == b'E' || c == b'e') && b.get(i + 1) == Some(&b'\'')) {
            if c != b'\'' {
                i += 1;
            }
            i += 1;
            while i < b.len() {
                match b[i] {
                    b'\\' => i += 2,
                    b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
                    b'\'' => {
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
            kind = Kind::Str;
        } else if c == b'"' {
            i += 1;
            while i < b.len() {
                if b[i] == b'"' {
                    if b.get(i + 1) == Some(&b'"') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            kind = Kind::QuotedIdent;
        } else if c == b'$' {
            // $1 parameter, or $tag$ ... $tag$ string.
            let mut j = i + 1;
            if b.get(j).is_some_and(|d| d.is_ascii_digit()) {
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                i = j;
                kind = Kind::Param;
            } else {
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                if b.get(j) == Some(&b'$') {
                    let tag = &sql[i..=j];
                    let body = j + 1;
                    i = match sql[body..].find(tag) {
                        Some(k) => body + k + tag.len(),
                        None => b.len(),
                    };
                    kind = Kind::Str;
                } else {
                    i += 1;
                    kind = Kind::Op;
                }
            }
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            kind = Kind::Word;
        } else if c.is_ascii_digit()
            || (c == b'.' && b.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                i += 1;
                if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                    i += 1;
                }
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            kind = Kind::Number;
        } else if b"(),;.[]".contains(&c) {
            i += 1;
            kind = Kind::Punct;
        } else if c == b':' && b.get(i + 1) == Some(&b':') {
            i += 2;
            kind = Kind::Op;
        } else {
            while i < b.len() && b"+-*/<>=~!@#%^&|`?:".contains(&b[i]) {
                if b[i] == b'-' && b.get(i + 1) == Some(&b'-') && i > start {
                    break;
                }
                i += 1;
            }
            if i == start {
                i += 1;
            }
            kind = Kind::Op;
        }
        toks.push(Tok {
            kind,
            start,
            end: i.min(b.len()),
        });
    }
    toks
}

/// The statements of a query string, as byte ranges (empty ones dropped).
pub fn split_statements(sql: &str) -> Vec<&str> {
    let toks = tokenize(sql);
    let mut out = Vec::new();
    let mut from = 0;
    for t in &toks {
        if t.kind == Kind::Punct && &sql[t.start..t.end] == ";" {
            let s = sql[from..t.start].trim();
            if !s.is_empty() {
                out.push(s);
            }
            from = t.end;
        }
    }
    let s = sql[from..].trim();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

/// A statement with its tokens, and helpers to look at them.
pub struct Stmt<'a> {
    pub sql: &'a str,
    pub toks: Vec<Tok>,
}

impl<'a> Stmt<'a> {
    pub fn new(sql: &'a str) -> Stmt<'a> {
        Stmt {
            sql,
            toks: tokenize(sql),
        }
    }

    pub fn text(&self, i: usize) -> &'a str {
        self.toks
            .get(i)
            .map(|t| &self.sql[t.start..t.end])
            .unwrap_or("")
    }

    /// Whether token `i` is the keyword `word` (case-insensitive, unquoted).
    pub fn is(&self, i: usize, word: &str) -> bool {
        self.toks.get(i).is_some_and(|t| t.kind == Kind::Word)
            && self.text(i).eq_ignore_ascii_case(word)
    }

    pub fn is_punct(&self, i: usize, p: &str) -> bool {
        self.toks
            .get(i)
            .is_some_and(|t| t.kind == Kind::Punct && self.text(i) == p)
    }

    /// The index of the `)` matching the `(` at `open`.
    pub fn matching(&self, open: usize) -> Option<usize> {
        let mut depth = 0;
        for i in open..self.toks.len() {
            if self.is_punct(i, "(") {
                depth += 1;
            } else if self.is_punct(i, ")") {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
        }
        None
    }

    /// Indexes of top-level (depth 0 relative to `from`) tokens equal to keyword `word`.
    pub fn find_top(&self, from: usize, word: &str) -> Option<usize> {
        let mut depth = 0i32;
        for i in from..self.toks.len() {
            if self.is_punct(i, "(") {
                depth += 1;
            } else if self.is_punct(i, ")") {
                depth -= 1;
            } else if depth == 0 && self.is(i, word) {
                return Some(i);
            }
        }
        None
    }

    /// A dotted name starting at `i` (`a`, `"a"."b"`): its text and the next index.
    pub fn name_at(&self, i: usize) -> Option<(String, usize)> {
        let word = |k: usize| {
            self.toks
                .get(k)
                .is_some_and(|t| matches!(t.kind, Kind::Word | Kind::QuotedIdent))
        };
        if !word(i) {
            return None;
        }
        let mut end = i + 1;
        while self.is_punct(end, ".") && word(end + 1) {
            end += 2;
        }
        let text = self.sql[self.toks[i].start..self.toks[end - 1].end].to_string();
        Some((text, end))
    }
}

/// A string token's value (quotes removed, escapes applied).
pub fn string_value(text: &str) -> String {
    let inner = text.strip_prefix(['E', 'e']).unwrap_or(text);
    let inner = inner.strip_prefix('\'').unwrap_or(inner);
    let inner = inner.strip_suffix('\'').unwrap_or(inner);
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(o) => out.push(o),
                None => {}
            },
            '\'' if chars.peek() == Some(&'\'') => {
                chars.next();
                out.push('\'');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Why a statement is refused: SQLSTATE and Redshift-like text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

fn unsupported(what: &str) -> Refusal {
    refuse(
        "0A000",
        format!("{what} is not supported by Amazon Redshift (refused by the Redshift emulator)"),
    )
}

/// What to do with one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this SQL to the backend.
    Forward(String),
    Refuse(Refusal),
    /// `COPY ... FROM 's3://...'`: the emulator loads it.
    CopyS3 {
        table: String,
        columns: Vec<String>,
        from: String,
        options: Vec<(String, Option<String>)>,
    },
    /// `TRUNCATE`: commits the open transaction first, then runs (this SQL).
    Truncate(String),
    /// `ALTER TABLE target APPEND FROM source`.
    Append {
        target: String,
        source: String,
    },
    /// A statement Redshift refuses inside a transaction block (the refusal); outside
    /// one, this SQL is sent.
    NoTransactionBlock(String, Refusal),
}

/// Per-session values the rewrites substitute.
#[derive(Debug, Clone, Copy, Default)]
pub struct Session {
    pub last_copy_count: u64,
    pub last_copy_id: i64,
}

/// `VARBYTE` without a length (VARBYTE type: "The default is 64,000").
const VARBYTE_DEFAULT_BYTES: u64 = 64_000;

/// The longest name Redshift accepts, in bytes.
pub const MAX_NAME_BYTES: usize = 127;
/// The longest name the PostgreSQL behind the emulator keeps (it cuts longer ones).
const BACKEND_NAME_BYTES: usize = 63;

/// Redshift's names: ASCII letters of quoted identifiers fold to lower case too
/// (`enable_case_sensitive_identifier` is off by default), and a name is 1 to 127 bytes.
/// Folding keeps byte offsets, so the tokens stay valid for the folded text.
pub fn fold_identifiers(sql: &str) -> Result<String, Refusal> {
    let mut out = sql.as_bytes().to_vec();
    for t in tokenize(sql) {
        let name = match t.kind {
            Kind::QuotedIdent => {
                out[t.start..t.end].make_ascii_lowercase();
                let inner = &sql[t.start..t.end];
                let inner = inner.strip_prefix('"').unwrap_or(inner);
                inner
                    .strip_suffix('"')
                    .unwrap_or(inner)
                    .replace("\"\"", "\"")
            }
            Kind::Word => sql[t.start..t.end].to_string(),
            _ => continue,
        };
        if name.len() > MAX_NAME_BYTES {
            return Err(refuse(
                "42622",
                format!(
                    "identifier \"{}...\" is {} bytes long: Amazon Redshift names are at most {MAX_NAME_BYTES} bytes",
                    cut_name(&name, 40),
                    name.len()
                ),
            ));
        }
        if name.len() > BACKEND_NAME_BYTES {
            return Err(refuse(
                "0A000",
                format!(
                    "identifier \"{}...\" is {} bytes long: valid in Amazon Redshift (up to {MAX_NAME_BYTES} bytes), but the Redshift emulator keeps names of at most {BACKEND_NAME_BYTES} bytes and refuses rather than cut it",
                    cut_name(&name, 40),
                    name.len()
                ),
            ));
        }
    }
    Ok(String::from_utf8(out).expect("ASCII case folding keeps UTF-8 valid"))
}

fn cut_name(name: &str, max: usize) -> &str {
    let mut end = max.min(name.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Classifies and rewrites one statement.
pub fn plan(sql: &str, session: &Session) -> Action {
    let folded = match fold_identifiers(sql) {
        Ok(f) => f,
        Err(r) => return Action::Refuse(r),
    };
    plan_folded(&folded, session)
}

/// What `ALTER USER ... SYSLOG ACCESS ...` becomes: a statement that does nothing.
pub const SYSLOG_ACCESS: &str = "DO $$BEGIN END$$";

fn plan_folded(sql: &str, session: &Session) -> Action {
    let s = Stmt::new(sql);
    if s.toks.is_empty() {
        return Action::Forward(sql.to_string());
    }
    let first = s.text(0).to_ascii_uppercase();
    // Refusals that apply wherever they appear.
    if s.find_top(0, "RETURNING").is_some()
        && matches!(first.as_str(), "INSERT" | "UPDATE" | "DELETE" | "WITH")
    {
        return Action::Refuse(unsupported("RETURNING"));
    }
    if first == "INSERT" {
        if let Some(on) = s.find_top(0, "ON") {
            if s.is(on + 1, "CONFLICT") {
                return Action::Refuse(unsupported("INSERT ... ON CONFLICT"));
            }
        }
    }
    if first == "CREATE" && late_binding_view(&s) {
        return Action::Refuse(refuse(
            "0A000",
            "late-binding views (WITH NO SCHEMA BINDING) are not emulated by the Redshift emulator",
        ));
    }
    match first.as_str() {
        "COPY" => return plan_copy(&s),
        "TRUNCATE" => return Action::Truncate(generic_rewrites(&s, session)),
        "CREATE" => {
            let mut i = 1;
            if s.is(i, "OR") && s.is(i + 1, "REPLACE") {
                i += 2;
            }
            if s.is(i, "UNIQUE") {
                i += 1;
            }
            if s.is(i, "INDEX") {
                return Action::Refuse(refuse(
                    "0A000",
                    "CREATE INDEX is not supported by Amazon Redshift: Redshift has no indexes; use SORTKEY",
                ));
            }
            if s.is(i, "EXTENSION") {
                return Action::Refuse(unsupported("CREATE EXTENSION"));
            }
            while s.is(i, "TEMP") || s.is(i, "TEMPORARY") || s.is(i, "LOCAL") {
                i += 1;
            }
            if s.is(i, "TABLE") {
                return match rewrite_create_table(&s, i + 1) {
                    Ok(edits) => Action::Forward(apply(sql, edits, &s, session)),
                    Err(r) => Action::Refuse(r),
                };
            }
        }
        "ALTER" if s.is(1, "TABLE") => return plan_alter(&s, session),
        // `ALTER USER u SYSLOG ACCESS {RESTRICTED | UNRESTRICTED}` (*ALTER USER*): what a
        // user sees of other users' rows in system tables. The emulator's system tables
        // show every user everything, so it changes nothing.
        "ALTER"
            if s.is(1, "USER")
                && s.is(3, "SYSLOG")
                && s.is(4, "ACCESS")
                && (s.is(5, "RESTRICTED") || s.is(5, "UNRESTRICTED")) =>
        {
            return Action::Forward(SYSLOG_ACCESS.into())
        }

        _ => {}
    }
    Action::Forward(generic_rewrites(&s, session))
}

/// `CREATE [OR REPLACE] VIEW ... WITH NO SCHEMA BINDING`.
fn late_binding_view(s: &Stmt) -> bool {
    let n = s.toks.len();
    n >= 4
        && s.find_top(1, "VIEW").is_some()
        && s.is(n - 4, "WITH")
        && s.is(n - 3, "NO")
        && s.is(n - 2, "SCHEMA")
        && s.is(n - 1, "BINDING")
}

fn plan_copy(s: &Stmt) -> Action {
    if s.is_punct(1, "(") {
        return Action::Refuse(refuse(
            "0A000",
            "COPY ... TO is not supported by Amazon Redshift; use UNLOAD",
        ));
    }
    let Some((table, mut i)) = s.name_at(1) else {
        return Action::Forward(s.sql.to_string());
    };
    let mut columns = Vec::new();
    if s.is_punct(i, "(") {
        let Some(close) = s.matching(i) else {
            return Action::Forward(s.sql.to_string());
        };
        columns = (i + 1..close)
            .filter(|&k| matches!(s.toks[k].kind, Kind::Word | Kind::QuotedIdent))
            .map(|k| s.text(k).to_string())
            .collect();
        i = close + 1;
    }
    if s.is(i, "TO") {
        return Action::Refuse(refuse(
            "0A000",
            "COPY ... TO is not supported by Amazon Redshift; use UNLOAD",
        ));
    }
    if !s.is(i, "FROM") {
        return Action::Forward(s.sql.to_string());
    }
    if s.is(i + 1, "STDIN") {
        return Action::Refuse(refuse(
            "0A000",
            "COPY FROM STDIN is not supported by Amazon Redshift; stage the data in Amazon S3 and COPY FROM 's3://...'",
        ));
    }
    let from = match s.toks.get(i + 1) {
        Some(t) if t.kind == Kind::Str => string_value(s.text(i + 1)),
        _ => return Action::Forward(s.sql.to_string()),
    };
    if !from.starts_with("s3://") {
        return Action::Refuse(refuse(
            "0A000",
            format!(
                "COPY from '{from}' is not supported by the Redshift emulator: only s3:// sources"
            ),
        ));
    }
    // Options: words, each optionally followed by AS and a string or a word/number.
    let mut options = Vec::new();
    let mut k = i + 2;
    while k < s.toks.len() {
        let name = s.text(k).to_ascii_uppercase();
        k += 1;
        if s.is(k, "AS") {
            k += 1;
        }
        let value = match s.toks.get(k) {
            Some(t) if t.kind == Kind::Str => {
                k += 1;
                Some(string_value(s.text(k - 1)))
            }
            Some(t) if t.kind == Kind::Number => {
                k += 1;
                Some(s.text(k - 1).to_string())
            }
            Some(t)
                if t.kind == Kind::Word
                    && (name == "FORMAT"
                        || (matches!(name.as_str(), "COMPUPDATE" | "STATUPDATE")
                            && matches!(
                                s.text(k).to_ascii_uppercase().as_str(),
                                "ON" | "OFF" | "TRUE" | "FALSE" | "PRESET"
                            ))
                        || (name == "IAM_ROLE" && s.is(k, "DEFAULT"))) =>
            {
                k += 1;
                Some(s.text(k - 1).to_ascii_uppercase())
            }
            _ => None,
        };
        options.push((name, value));
    }
    Action::CopyS3 {
        table,
        columns,
        from,
        options,
    }
}

fn plan_alter(s: &Stmt, session: &Session) -> Action {
    let Some((table, i)) = s.name_at(2) else {
        return Action::Forward(generic_rewrites(s, session));
    };
    if s.is(i, "APPEND") && s.is(i + 1, "FROM") {
        if let Some((source, _)) = s.name_at(i + 2) {
            return Action::Append {
                target: table,
                source,
            };
        }
    }
    if s.is(i, "ADD") {
        // One column per statement in Redshift.
        let mut depth = 0;
        for k in i..s.toks.len() {
            if s.is_punct(k, "(") {
                depth += 1;
            } else if s.is_punct(k, ")") {
                depth -= 1;
            } else if depth == 0 && s.is_punct(k, ",") {
                return Action::Refuse(refuse(
                    "0A000",
                    "ALTER TABLE ADD COLUMN supports only one column per statement in Amazon Redshift",
                ));
            }
        }
        let mut k = i + 1;
        if s.is(k, "COLUMN") {
            k += 1;
        }
        if s.is(k, "CONSTRAINT") || s.is(k, "PRIMARY") || s.is(k, "UNIQUE") || s.is(k, "FOREIGN") {
            return Action::Forward(generic_rewrites(s, session));
        }
        if s.is(k, "IF") && s.is(k + 1, "NOT") && s.is(k + 2, "EXISTS") {
            k += 3;
        }
        let mut edits = Vec::new();
        match column_def(s, k, s.toks.len(), &mut edits) {
            Ok(()) => return Action::Forward(apply(s.sql, edits, s, session)),
            Err(r) => return Action::Refuse(r),
        }
    }
    if s.is(i, "ALTER") {
        // ALTER [COLUMN] c TYPE t: only VARCHAR widening exists in Redshift.
        let mut k = i + 1;
        if s.is(k, "COLUMN") {
            k += 1;
        }
        if s.is(k + 1, "TYPE") {
            let varchar = s.is(k + 2, "VARCHAR")
                || s.is(k + 2, "NVARCHAR")
                || (s.is(k + 2, "CHARACTER") && s.is(k + 3, "VARYING"));
            if !varchar {
                return Action::Refuse(refuse(
                    "0A000",
                    format!(
                        "ALTER TABLE ALTER COLUMN TYPE changes only the size of a VARCHAR column in Amazon Redshift, not to {}",
                        s.text(k + 2).to_ascii_uppercase()
                    ),
                ));
            }
            let mut edits = Vec::new();
            return match column_type(s, k + 2, s.toks.len(), None, &mut edits) {
                Ok(_) => Action::NoTransactionBlock(
                    apply(s.sql, edits, s, session),
                    refuse(
                        "25001",
                        "ALTER TABLE ALTER COLUMN cannot run inside a transaction block",
                    ),
                ),
                Err(r) => Action::Refuse(r),
            };
        }
    }
    Action::Forward(generic_rewrites(s, session))
}

/// A text edit: replace bytes `start..end` with `with`.
type Edit = (usize, usize, String);

fn span(s: &Stmt, from: usize, to_inclusive: usize) -> (usize, usize) {
    (s.toks[from].start, s.toks[to_inclusive].end)
}

/// `CREATE TABLE name (elements) attributes`: rewrite column types, drop constraints
/// Redshift does not enforce, strip Redshift table attributes.
fn rewrite_create_table(s: &Stmt, mut i: usize) -> Result<Vec<Edit>, Refusal> {
    if s.is(i, "IF") && s.is(i + 1, "NOT") && s.is(i + 2, "EXISTS") {
        i += 3;
    }
    let Some((_, i)) = s.name_at(i) else {
        return Ok(Vec::new());
    };
    let mut edits = Vec::new();
    if !s.is_punct(i, "(") {
        // CREATE TABLE ... AS SELECT: attributes may precede AS.
        strip_table_attributes(s, i, &mut edits);
        return Ok(edits);
    }
    let close = s.matching(i).unwrap_or(s.toks.len() - 1);
    // Elements separated by top-level commas.
    let mut elements = Vec::new();
    let mut depth = 0;
    let mut from = i + 1;
    for k in i + 1..close {
        if s.is_punct(k, "(") {
            depth += 1;
        } else if s.is_punct(k, ")") {
            depth -= 1;
        } else if depth == 0 && s.is_punct(k, ",") {
            elements.push((from, k));
            from = k + 1;
        }
    }
    elements.push((from, close));
    for (n, &(a, b)) in elements.iter().enumerate() {
        if a >= b {
            continue;
        }
        let mut first = a;
        if s.is(first, "CONSTRAINT") {
            first += 2;
        }
        if s.is(first, "PRIMARY") || s.is(first, "UNIQUE") || s.is(first, "FOREIGN") {
            // Accepted by Redshift, never enforced: drop with the comma before it
            // (or after it, for the first element).
            let (start, end) = if n > 0 {
                (s.toks[a - 1].start, s.toks[b - 1].end)
            } else if b < close {
                (s.toks[a].start, s.toks[b].end)
            } else {
                (s.toks[a].start, s.toks[b - 1].end)
            };
            edits.push((start, end, String::new()));
            continue;
        }
        if s.is(first, "LIKE") {
            // Redshift's LIKE copies VARBYTE(n), which here is a CHECK.
            if let Some((_, after)) = s.name_at(first + 1) {
                let end = s.toks[after - 1].end;
                edits.push((end, end, " INCLUDING CONSTRAINTS".into()));
            }
            continue;
        }
        if s.is(first, "CHECK") {
            continue;
        }
        column_def(s, a, b, &mut edits)?;
    }
    strip_table_attributes(s, close + 1, &mut edits);
    Ok(edits)
}

/// Drops DISTSTYLE, DISTKEY, SORTKEY, ENCODE AUTO and BACKUP from `from` on.
fn strip_table_attributes(s: &Stmt, from: usize, edits: &mut Vec<Edit>) {
    let mut k = from;
    while k < s.toks.len() {
        let start = k;
        if s.is(k, "DISTSTYLE") || s.is(k, "BACKUP") {
            k += 2;
        } else if s.is(k, "DISTKEY") && s.is_punct(k + 1, "(") {
            k = s.matching(k + 1).map_or(s.toks.len(), |c| c + 1);
        } else if (s.is(k, "COMPOUND") || s.is(k, "INTERLEAVED")) || s.is(k, "SORTKEY") {
            if !s.is(k, "SORTKEY") {
                k += 1;
            }
            if s.is(k + 1, "AUTO") {
                k += 2;
            } else if s.is_punct(k + 1, "(") {
                k = s.matching(k + 1).map_or(s.toks.len(), |c| c + 1);
            } else {
                k += 1;
            }
        } else if s.is(k, "ENCODE") && s.is(k + 1, "AUTO") {
            k += 2;
        } else {
            k += 1;
            continue;
        }
        let end = k.min(s.toks.len()) - 1;
        let (a, b) = span(s, start, end);
        edits.push((a, b, String::new()));
    }
}

/// One column definition from `a` (its name) to `b` (exclusive).
fn column_def(s: &Stmt, a: usize, b: usize, edits: &mut Vec<Edit>) -> Result<(), Refusal> {
    let after_type = column_type(s, a + 1, b, Some(s.text(a)), edits)?;
    let mut k = after_type;
    while k < b {
        let start = k;
        if s.is(k, "ENCODE") {
            k += 2;
        } else if s.is(k, "DISTKEY") || s.is(k, "SORTKEY") || s.is(k, "UNIQUE") {
            k += 1;
        } else if s.is(k, "PRIMARY") && s.is(k + 1, "KEY") {
            k += 2;
        } else if s.is(k, "REFERENCES") {
            k += 1;
            if let Some((_, next)) = s.name_at(k) {
                k = next;
            }
            if s.is_punct(k, "(") {
                k = s.matching(k).map_or(b, |c| c + 1);
            }
        } else if s.is(k, "IDENTITY")
            || (s.is(k, "GENERATED") && s.find_top(k, "IDENTITY").is_some())
        {
            return Err(refuse(
                "0A000",
                "IDENTITY columns are not emulated by the Redshift emulator",
            ));
        } else {
            k += 1;
            continue;
        }
        let (x, y) = span(s, start, k.min(b) - 1);
        edits.push((x, y, String::new()));
    }
    Ok(())
}

/// The type starting at token `i` (of `column`, when defining one); pushes its rewrite
/// and returns the index after it.
fn column_type(
    s: &Stmt,
    i: usize,
    b: usize,
    column: Option<&str>,
    edits: &mut Vec<Edit>,
) -> Result<usize, Refusal> {
    if i >= b {
        return Ok(i);
    }
    let w = |k: usize| s.text(k).to_ascii_uppercase();
    // Multi-word names.
    let (name, mut end) = match (w(i).as_str(), w(i + 1).as_str()) {
        ("DOUBLE", "PRECISION") => ("DOUBLE PRECISION".to_string(), i + 2),
        ("CHARACTER", "VARYING") | ("BINARY", "VARYING") => (format!("{} VARYING", w(i)), i + 2),
        ("TIMESTAMP" | "TIME", "WITH" | "WITHOUT") => {
            let base = w(i);
            (format!("{base} {} TIME ZONE", w(i + 1)), i + 4)
        }
        _ => (w(i), i + 1),
    };
    let mut args: Vec<String> = Vec::new();
    if s.is_punct(end, "(") {
        let close = s.matching(end).unwrap_or(b - 1);
        args = (end + 1..close)
            .filter(|&k| !s.is_punct(k, ","))
            .map(|k| s.text(k).to_ascii_uppercase())
            .collect();
        end = close + 1;
    }
    if s.is_punct(end, "[") {
        return Err(refuse(
            "0A000",
            format!("Column type {name}[] (array) is not supported by Amazon Redshift; use SUPER"),
        ));
    }
    let num = |k: usize| args.get(k).and_then(|a| a.parse::<u64>().ok());
    let replacement = match name.as_str() {
        "SMALLINT"
        | "INT2"
        | "INTEGER"
        | "INT"
        | "INT4"
        | "BIGINT"
        | "INT8"
        | "REAL"
        | "FLOAT4"
        | "FLOAT8"
        | "FLOAT"
        | "DOUBLE PRECISION"
        | "BOOLEAN"
        | "BOOL"
        | "DATE"
        | "TIME"
        | "TIMETZ"
        | "TIMESTAMP"
        | "TIMESTAMPTZ"
        | "TIME WITH TIME ZONE"
        | "TIME WITHOUT TIME ZONE"
        | "TIMESTAMP WITH TIME ZONE"
        | "TIMESTAMP WITHOUT TIME ZONE" => None,
        "DECIMAL" | "NUMERIC" => match num(0) {
            None => Some("numeric(18,0)".to_string()),
            Some(p) if !(1..=38).contains(&p) => {
                return Err(refuse(
                    "22023",
                    format!("NUMERIC precision {p} must be between 1 and 38"),
                ))
            }
            Some(_) => None,
        },
        "VARCHAR" | "CHARACTER VARYING" | "NVARCHAR" => match args.first().map(String::as_str) {
            None => Some("varchar(256)".to_string()),
            Some("MAX") => Some("varchar(65535)".to_string()),
            Some(_) => match num(0) {
                Some(n) if n > 65535 => {
                    return Err(refuse(
                        "22023",
                        "length for type varchar cannot exceed 65535",
                    ))
                }
                _ => Some(format!("varchar({})", args[0])),
            },
        },
        "TEXT" => Some("varchar(256)".to_string()),
        "CHAR" | "CHARACTER" | "NCHAR" | "BPCHAR" => match args.first().map(String::as_str) {
            None => Some("char(1)".to_string()),
            Some("MAX") => Some("char(4096)".to_string()),
            Some(_) => match num(0) {
                Some(n) if n > 4096 => {
                    return Err(refuse("22023", "length for type bpchar cannot exceed 4096"))
                }
                _ => None,
            },
        },
        "SUPER" => Some("jsonb".to_string()),
        "VARBYTE" | "VARBINARY" | "BINARY VARYING" => match num(0) {
            Some(n) if !(1..=16_777_216).contains(&n) => {
                return Err(refuse(
                    "22023",
                    format!("length {n} for type varbyte must be between 1 and 16777216"),
                ))
            }
            // PostgreSQL's bytea has no length: a CHECK keeps it (COPY reads it back).
            n => match column {
                Some(c) => Some(format!(
                    "bytea CHECK (octet_length({c}) <= {})",
                    n.unwrap_or(VARBYTE_DEFAULT_BYTES)
                )),
                None => Some("bytea".to_string()),
            },
        },
        other => {
            return Err(refuse(
                "0A000",
                format!(
                    "Column type {} is not supported by Amazon Redshift",
                    other.to_ascii_lowercase()
                ),
            ))
        }
    };
    if let Some(r) = replacement {
        let (x, y) = span(s, i, end - 1);
        edits.push((x, y, r));
    }
    Ok(end)
}

/// Rewrites that apply to any statement: `::SUPER`/`::VARBYTE` and `CAST(x AS SUPER)`
/// casts, `SYSDATE`, `pg_last_copy_count()`/`pg_last_copy_id()`.
fn generic_edits(s: &Stmt, session: &Session) -> Vec<Edit> {
    let mut edits = Vec::new();
    // For each open parenthesis: whether it opens a CAST(...).
    let mut parens: Vec<bool> = Vec::new();
    for k in 0..s.toks.len() {
        let t = &s.toks[k];
        if s.is_punct(k, "(") {
            parens.push(k > 0 && s.is(k - 1, "CAST"));
        } else if s.is_punct(k, ")") {
            parens.pop();
        }
        let cast = (t.kind == Kind::Op && s.text(k) == "::")
            || (s.is(k, "AS") && parens.last() == Some(&true));
        if cast {
            let target = s.text(k + 1).to_ascii_uppercase();
            let with = match target.as_str() {
                "SUPER" => Some("jsonb"),
                "VARBYTE" | "VARBINARY" => Some("bytea"),
                _ => None,
            };
            if let Some(with) = with {
                let mut end = k + 1;
                if s.is_punct(end + 1, "(") {
                    end = s.matching(end + 1).unwrap_or(end);
                }
                let (x, y) = span(s, k + 1, end);
                edits.push((x, y, with.to_string()));
            }
        } else if s.is(k, "SYSDATE") && !s.is_punct(k + 1, "(") {
            edits.push((t.start, t.end, "LOCALTIMESTAMP".into()));
        } else if (s.is(k, "pg_last_copy_count") || s.is(k, "pg_last_copy_id"))
            && s.is_punct(k + 1, "(")
            && s.is_punct(k + 2, ")")
        {
            let value = if s.is(k, "pg_last_copy_count") {
                format!("{}::bigint", session.last_copy_count)
            } else {
                format!("({})::integer", session.last_copy_id)
            };
            edits.push((t.start, s.toks[k + 2].end, value));
        }
    }
    edits
}

fn generic_rewrites(s: &Stmt, session: &Session) -> String {
    apply(s.sql, Vec::new(), s, session)
}

/// Applies edits (plus the generic ones outside them) to the statement text.
fn apply(sql: &str, mut edits: Vec<Edit>, s: &Stmt, session: &Session) -> String {
    for e in generic_edits(s, session) {
        if !edits.iter().any(|(a, b, _)| e.0 < *b && *a < e.1) {
            edits.push(e);
        }
    }
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = sql.to_string();
    for (a, b, with) in edits {
        out.replace_range(a..b, &with);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(sql: &str) -> String {
        match plan(sql, &Session::default()) {
            Action::Forward(s) => s,
            other => panic!("{sql}: {other:?}"),
        }
    }

    fn refused(sql: &str) -> Refusal {
        match plan(sql, &Session::default()) {
            Action::Refuse(r) => r,
            other => panic!("{sql}: {other:?}"),
        }
    }

    fn squash(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn statements_split_outside_strings_comments_and_dollar_quotes() {
        let sql = "SELECT 'a;b'; SELECT \"x;\" -- c;\n; DO $$ BEGIN; END $$; SELECT E'\\';'";
        assert_eq!(
            split_statements(sql),
            vec![
                "SELECT 'a;b'",
                "SELECT \"x;\" -- c;",
                "DO $$ BEGIN; END $$",
                "SELECT E'\\';'"
            ]
        );
        assert_eq!(string_value("'it''s \\\\ \\'x'"), "it's \\ 'x");
        assert_eq!(string_value("''''"), "'");
    }

    #[test]
    fn create_table_drops_redshift_attributes_and_unenforced_constraints() {
        let out = forward(
            "CREATE TABLE IF NOT EXISTS \"s\".\"t\" (\n  \"id\" BIGINT NOT NULL ENCODE az64,\n  \"v\" VARCHAR(40) ENCODE lzo DISTKEY,\n  \"j\" SUPER,\n  \"b\" VARBYTE(100),\n  \"d\" DECIMAL,\n  \"t\" TEXT,\n  PRIMARY KEY (\"id\")\n)\nDISTSTYLE KEY\nDISTKEY (\"id\")\nCOMPOUND SORTKEY (\"id\", \"v\")",
        );
        assert_eq!(
            squash(&out),
            "CREATE TABLE IF NOT EXISTS \"s\".\"t\" ( \"id\" BIGINT NOT NULL , \"v\" varchar(40) , \"j\" jsonb, \"b\" bytea CHECK (octet_length(\"b\") <= 100), \"d\" numeric(18,0), \"t\" varchar(256) )"
        );
        let out = forward("create temp table x (a int primary key, b char(3) unique references y(z)) diststyle auto sortkey auto backup no");
        assert_eq!(squash(&out), "create temp table x (a int , b char(3) )");
        let out = forward("CREATE TABLE x (PRIMARY KEY (a), a int, CONSTRAINT u UNIQUE (a))");
        assert_eq!(squash(&out), "CREATE TABLE x ( a int)");
        assert_eq!(
            squash(&forward("CREATE TABLE v (c VARCHAR(MAX), d VARCHAR)")),
            "CREATE TABLE v (c varchar(65535), d varchar(256))"
        );
    }

    #[test]
    fn postgres_only_types_and_limits_are_refused() {
        for (sql, needle) in [
            (
                "CREATE TABLE t (a json)",
                "Column type json is not supported",
            ),
            ("CREATE TABLE t (a jsonb)", "Column type jsonb"),
            ("CREATE TABLE t (a uuid)", "Column type uuid"),
            ("CREATE TABLE t (a serial)", "Column type serial"),
            ("CREATE TABLE t (a bigserial)", "Column type bigserial"),
            ("CREATE TABLE t (a int[])", "array"),
            ("CREATE TABLE t (a _int4)", "Column type _int4"),
            ("CREATE TABLE t (a varchar(65536))", "cannot exceed 65535"),
            (
                "CREATE TABLE t (a numeric(39,2))",
                "NUMERIC precision 39 must be between 1 and 38",
            ),
            ("ALTER TABLE t ADD COLUMN a uuid", "Column type uuid"),
        ] {
            assert!(
                refused(sql).message.contains(needle),
                "{sql}: {:?}",
                refused(sql)
            );
        }
    }

    #[test]
    fn postgres_only_statements_are_refused() {
        assert_eq!(
            refused("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING").code,
            "0A000"
        );
        assert!(refused("INSERT INTO t VALUES (1) RETURNING id")
            .message
            .contains("RETURNING"));
        assert!(refused("update t set a = 1 returning *")
            .message
            .contains("RETURNING"));
        assert!(refused("COPY t FROM STDIN")
            .message
            .contains("COPY FROM STDIN"));
        assert!(refused("COPY t TO STDOUT").message.contains("UNLOAD"));
        assert!(refused("COPY (SELECT 1) TO STDOUT")
            .message
            .contains("UNLOAD"));
        assert!(refused("CREATE UNIQUE INDEX i ON t (a)")
            .message
            .contains("no indexes"));
        assert!(refused("CREATE EXTENSION hstore")
            .message
            .contains("CREATE EXTENSION"));
        assert!(refused("ALTER TABLE t ADD COLUMN a int, ADD COLUMN b int")
            .message
            .contains("one column"));
        // Words inside strings are data, not syntax.
        assert_eq!(
            forward("SELECT 'returning on conflict'"),
            "SELECT 'returning on conflict'"
        );
    }

    #[test]
    fn alter_table_forms() {
        assert_eq!(
            forward("ALTER TABLE t ADD COLUMN c SUPER"),
            "ALTER TABLE t ADD COLUMN c jsonb"
        );
        assert_eq!(
            refused("ALTER TABLE t ALTER COLUMN c TYPE bigint").code,
            "0A000"
        );
        assert_eq!(
            plan(
                "ALTER TABLE t ALTER COLUMN c TYPE VARCHAR(MAX)",
                &Session::default()
            ),
            Action::NoTransactionBlock(
                "ALTER TABLE t ALTER COLUMN c TYPE varchar(65535)".into(),
                refuse(
                    "25001",
                    "ALTER TABLE ALTER COLUMN cannot run inside a transaction block"
                )
            )
        );
        assert_eq!(
            plan("ALTER TABLE a.t APPEND FROM a.s", &Session::default()),
            Action::Append {
                target: "a.t".into(),
                source: "a.s".into()
            }
        );
        assert!(matches!(
            plan("truncate t", &Session::default()),
            Action::Truncate(_)
        ));
        for sql in [
            "ALTER USER loader SYSLOG ACCESS UNRESTRICTED",
            "alter user \"Loader\" syslog access restricted",
        ] {
            assert_eq!(forward(sql), SYSLOG_ACCESS, "{sql}");
        }
        assert_eq!(
            forward("ALTER USER loader CONNECTION LIMIT 5"),
            "ALTER USER loader CONNECTION LIMIT 5"
        );
    }

    #[test]
    fn quoted_names_fold_to_lower_case_and_long_names_are_refused() {
        assert_eq!(
            forward("CREATE TABLE \"Shop\".\"Orders\" (\"Note \"\"X\"\"\" int, \"Été\" int)"),
            "CREATE TABLE \"shop\".\"orders\" (\"note \"\"x\"\"\" int, \"Été\" int)"
        );
        assert_eq!(forward("SELECT 'Keep' AS \"K\""), "SELECT 'Keep' AS \"k\"");
        let n127 = "a".repeat(127);
        let r = refused(&format!("CREATE TABLE \"{n127}b\" (a int)"));
        assert_eq!(r.code, "42622");
        assert!(r.message.contains("128 bytes"), "{r:?}");
        let r = refused(&format!("CREATE TABLE {n127}b (a int)"));
        assert_eq!(r.code, "42622");
        // 64 to 127 bytes: valid in Redshift, refused (never cut) by the emulator.
        let r = refused(&format!("CREATE TABLE \"{}\" (a int)", "é".repeat(32)));
        assert_eq!(r.code, "0A000");
        assert!(r.message.contains("64 bytes"), "{r:?}");
        assert_eq!(
            forward(&format!("CREATE TABLE \"{}\" (a int)", "a".repeat(63))),
            format!("CREATE TABLE \"{}\" (a int)", "a".repeat(63))
        );
    }

    #[test]
    fn varbyte_lengths_and_late_binding_views() {
        assert_eq!(
            refused("CREATE TABLE t (b VARBYTE(16777217))").code,
            "22023"
        );
        assert_eq!(
            squash(&forward("CREATE TABLE t (b VARBYTE(16777216), \"C\" varbyte)")),
            "CREATE TABLE t (b bytea CHECK (octet_length(b) <= 16777216), \"c\" bytea CHECK (octet_length(\"c\") <= 64000))"
        );
        assert_eq!(
            forward("CREATE TEMP TABLE s (LIKE t)"),
            "CREATE TEMP TABLE s (LIKE t INCLUDING CONSTRAINTS)"
        );
        assert_eq!(
            forward("ALTER TABLE t ADD COLUMN b VARBYTE(10)"),
            "ALTER TABLE t ADD COLUMN b bytea CHECK (octet_length(b) <= 10)"
        );
        assert_eq!(
            refused("CREATE VIEW v AS SELECT a FROM s.t WITH NO SCHEMA BINDING").code,
            "0A000"
        );
        assert_eq!(
            forward("CREATE VIEW v AS SELECT a FROM s.t"),
            "CREATE VIEW v AS SELECT a FROM s.t"
        );
    }

    #[test]
    fn session_values_casts_and_sysdate_are_substituted() {
        let session = Session {
            last_copy_count: 42,
            last_copy_id: 7,
        };
        let out = match plan(
            "SELECT pg_last_copy_count(), PG_LAST_COPY_ID(), SYSDATE, '{}'::SUPER, x::varbyte(10), CAST(y AS super), CAST(z AS VARBYTE(4)), 1 AS super",
            &session,
        ) {
            Action::Forward(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            out,
            "SELECT 42::bigint, (7)::integer, LOCALTIMESTAMP, '{}'::jsonb, x::bytea, CAST(y AS jsonb), CAST(z AS bytea), 1 AS super"
        );
    }

    #[test]
    fn copy_from_s3_is_parsed_with_its_options() {
        let action = plan(
            "COPY \"s\".\"t\" (\"a\", \"b\") FROM 's3://bucket/run/manifest.json' IAM_ROLE 'arn:aws:iam::123456789012:role/r' FORMAT AS CSV NULL AS '\\\\N' GZIP MANIFEST TIMEFORMAT 'auto' REGION 'eu-west-1' COMPUPDATE OFF STATUPDATE OFF IGNOREHEADER 1",
            &Session::default(),
        );
        let Action::CopyS3 {
            table,
            columns,
            from,
            options,
        } = action
        else {
            panic!("{action:?}")
        };
        assert_eq!(table, "\"s\".\"t\"");
        assert_eq!(columns, vec!["\"a\"", "\"b\""]);
        assert_eq!(from, "s3://bucket/run/manifest.json");
        let get = |n: &str| options.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(
            get("IAM_ROLE"),
            Some(Some("arn:aws:iam::123456789012:role/r".into()))
        );
        assert_eq!(get("FORMAT"), Some(Some("CSV".into())));
        assert_eq!(get("NULL"), Some(Some("\\N".into())));
        assert_eq!(get("GZIP"), Some(None));
        assert_eq!(get("COMPUPDATE"), Some(Some("OFF".into())));
        assert_eq!(get("IGNOREHEADER"), Some(Some("1".into())));
    }
}
