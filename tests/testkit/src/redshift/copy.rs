//! `COPY table [(cols)] FROM 's3://...'`, carried out by the emulator.
//!
//! The objects (every key under the prefix, or the manifest's entries) are read from
//! S3, decompressed by the statement's option, parsed and checked with Redshift's
//! rules ([`load`]), and streamed into the backend with `COPY ... FROM STDIN` on the
//! client's own session, so the rows belong to the client's transaction. Nothing is
//! held whole in memory: one S3 chunk at a time goes through.
//!
//! The first bad row (found here, or by the backend: a date PostgreSQL cannot read)
//! aborts the backend COPY, is written to `stl_load_errors` on a connection of its own
//! (it survives the rollback, as in Redshift), and fails the statement with XX000
//! `Load into table 'x' failed.  Check 'stl_load_errors' system table for details.`

use std::io::Write as _;
use std::sync::atomic::Ordering;

use anyhow::{anyhow, bail, Context, Result};

use super::load::{self, Column, Compression, CopySpec, CsvError, CsvReader, Record};
use super::sql::Refusal;
use super::wire::{self, Message};
use super::{backend_session, quote_ident, quote_literal, unquote_ident, Sess};

/// A row that cannot load: what goes into `stl_load_errors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    pub filename: String,
    pub line: u64,
    pub colname: String,
    pub col_type: String,
    pub col_length: String,
    pub raw_line: String,
    pub raw_value: String,
    pub code: i32,
    pub reason: String,
}

impl LoadFailure {
    /// A failure of a whole file (S3, decompression), not of a row.
    fn of_file(file: &str, reason: String) -> LoadFailure {
        LoadFailure {
            filename: file.to_string(),
            line: 0,
            colname: String::new(),
            col_type: String::new(),
            col_length: String::new(),
            raw_line: String::new(),
            raw_value: String::new(),
            code: 8001,
            reason,
        }
    }

    fn of_row(file: &str, e: CsvError) -> LoadFailure {
        let (colname, col_type, col_length, raw_value) = match &e.field {
            Some(f) => (
                f.column.name.clone(),
                f.column.typname.clone(),
                column_length(&f.column),
                String::from_utf8_lossy(&f.value).into_owned(),
            ),
            None => Default::default(),
        };
        LoadFailure {
            filename: file.to_string(),
            line: e.line,
            colname,
            col_type,
            col_length,
            raw_line: String::from_utf8_lossy(&e.raw).into_owned(),
            raw_value,
            code: e.code,
            reason: e.reason,
        }
    }
}

/// What one file sent to the backend: rows, and lines as the backend counts them.
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    rows: u64,
    lines: u64,
}

/// `stl_load_errors.col_length`: the declared length or precision, if any.
fn column_length(c: &Column) -> String {
    match c.typname.as_str() {
        "varchar" | "bpchar" if c.typmod > 4 => (c.typmod - 4).to_string(),
        "numeric" if c.typmod > 4 => {
            let m = c.typmod - 4;
            format!("{},{}", (m >> 16) & 0xffff, m & 0xffff)
        }
        _ => String::new(),
    }
}

/// Where the backend says its COPY failed: the row (1-based, counted over everything
/// streamed) and the column, from the error's CONTEXT (`COPY t, line 3, column c: ...`).
pub fn backend_position(context: &str) -> Option<(u64, Option<String>)> {
    let copy = context.lines().rev().find(|l| l.starts_with("COPY "))?;
    let after = copy.split(", line ").nth(1)?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    let row = digits.parse().ok()?;
    let column = after[digits.len()..]
        .strip_prefix(", column ")
        .map(|r| r.split(": ").next().unwrap_or(r).to_string());
    Some((row, column))
}

/// Redshift's code and reason for a value the backend refused with `sqlstate`.
pub fn backend_reason(
    sqlstate: &str,
    message: &str,
    col: Option<&Column>,
    spec: &CopySpec,
) -> (i32, String) {
    let typname = col.map(|c| c.typname.as_str()).unwrap_or("");
    match (sqlstate, typname) {
        ("22007" | "22008" | "22009", "date" | "timestamp" | "timestamptz") => {
            let e = load::date_time_error(typname == "date", spec);
            (e.code, e.reason)
        }
        ("22001", _) => (1204, "String length exceeds DDL length".into()),
        ("22003", "int2" | "int4" | "int8") => (1222, format!("Overflow: {message}")),
        ("22003", _) => (1204, format!("Numeric data overflow: {message}")),
        ("23502", _) => (1213, "Missing data for not-null field".into()),
        _ => (1200, format!("Unknown parse error: {message}")),
    }
}

/// Why a gzip object with a second member is refused: Redshift's documentation does not
/// say that COPY reads past the first member (**assumed** refused; the text is ours).
/// Short: `stl_load_errors.err_reason` keeps 100 characters.
pub const MULTI_MEMBER: &str =
    "more than one gzip member in one file (COPY is not documented to read them)";

/// Push decompression: compressed bytes in, plain bytes out.
enum Decoder {
    Plain,
    /// One gzip member: more after it is refused ([`MULTI_MEMBER`]).
    Gzip(Box<flate2::write::GzDecoder<Vec<u8>>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Vec<u8>>>),
}

impl Decoder {
    fn new(c: Compression) -> std::io::Result<Decoder> {
        Ok(match c {
            Compression::None => Decoder::Plain,
            Compression::Gzip => Decoder::Gzip(Box::new(flate2::write::GzDecoder::new(Vec::new()))),
            Compression::Zstd => {
                Decoder::Zstd(Box::new(zstd::stream::write::Decoder::new(Vec::new())?))
            }
        })
    }

    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        match self {
            Decoder::Plain => out.extend_from_slice(input),
            Decoder::Gzip(d) => {
                let mut rest = input;
                while !rest.is_empty() {
                    // 0: the member (trailer included) is complete, and bytes follow.
                    match d.write(rest)? {
                        0 => {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                MULTI_MEMBER,
                            ))
                        }
                        n => rest = &rest[n..],
                    }
                }
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

/// Why reading a file stopped.
enum ReadError {
    /// The file as a whole (S3, decompression).
    File(String),
    /// One record.
    Row(CsvError),
}

/// One S3 object, read as records one S3 chunk at a time.
struct FileReader {
    body: aws_sdk_s3::primitives::ByteStream,
    decoder: Decoder,
    csv: CsvReader,
    plain: Vec<u8>,
    skip: u64,
    done: bool,
}

impl FileReader {
    async fn open(s3: &aws_sdk_s3::Client, file: &str, spec: &CopySpec) -> Result<Self, String> {
        let (bucket, key) = split_s3(file).map_err(|r| r.message)?;
        let object = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| format!("S3ServiceException: {}", aws_error(&e)))?;
        Ok(FileReader {
            body: object.body,
            decoder: Decoder::new(spec.compression).map_err(|e| e.to_string())?,
            csv: CsvReader::new(spec.delimiter, spec.quote),
            plain: Vec::new(),
            skip: spec.ignore_header,
            done: false,
        })
    }

    /// Reads the next S3 chunk and hands its complete records (after the header
    /// lines) to `on_record`; false once the file is done.
    async fn next_chunk(
        &mut self,
        file: &str,
        spec: &CopySpec,
        mut on_record: impl FnMut(Record) -> Result<(), CsvError>,
    ) -> Result<bool, ReadError> {
        if self.done {
            return Ok(false);
        }
        let chunk = self
            .body
            .try_next()
            .await
            .map_err(|e| ReadError::File(format!("S3ServiceException: reading {file}: {e}")))?;
        let last = chunk.is_none();
        self.plain.clear();
        match &chunk {
            Some(bytes) => self.decoder.feed(bytes, &mut self.plain),
            None => self.decoder.finish(&mut self.plain),
        }
        .map_err(|e| {
            ReadError::File(format!(
                "{e} ({file} is not valid {:?} data)",
                spec.compression
            ))
        })?;
        let skip = &mut self.skip;
        let mut records = |rec: Record| {
            if *skip > 0 {
                *skip -= 1;
                return Ok(());
            }
            on_record(rec)
        };
        self.csv
            .feed(&self.plain, &mut records)
            .and_then(|()| {
                if last {
                    self.csv.finish(&mut records)
                } else {
                    Ok(())
                }
            })
            .map_err(ReadError::Row)?;
        self.done = last;
        Ok(!last)
    }
}

impl Sess {
    /// `COPY table [(cols)] FROM 's3://...' ...`. Returns whether it failed (the error
    /// has been relayed).
    pub(super) async fn copy_s3(
        &mut self,
        table: &str,
        columns: &[String],
        from: &str,
        options: &[(String, Option<String>)],
    ) -> Result<bool> {
        let spec = match load::spec(options, self.shared.cfg.iam_role.as_deref()) {
            Ok(s) => s,
            Err(r) => return self.raise(&r).await,
        };
        if self.status == b'E' {
            // The backend says "current transaction is aborted" itself.
            wire::write(&mut self.backend, &[wire::query("SELECT 1")]).await?;
            return self.relay_without_ready().await;
        }
        // The target's columns, in the order the file holds them.
        let cols = match self.target_columns(table, columns).await? {
            Ok(c) => c,
            Err(r) => return self.raise(&r).await,
        };
        let files = match self.list_files(from, spec.manifest).await {
            Ok(f) => f,
            Err(r) => return self.raise(&r).await,
        };
        let column_list = cols
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let copy =
            format!("COPY {table} ({column_list}) FROM STDIN WITH (FORMAT csv, NULL '\\\\N')");
        // In a transaction block a failed COPY would leave the block aborted before our
        // own error could be raised: a savepoint takes the failure back first.
        let in_block = self.status == b'T';
        if in_block {
            wire::run(&mut self.backend, "SAVEPOINT rs_emulator_copy").await?;
        }
        wire::write(&mut self.backend, &[wire::query(&copy)]).await?;
        let first = loop {
            let m = wire::read_message(&mut self.backend)
                .await?
                .context("the backend closed the connection")?;
            if m.tag == b'N' || m.tag == b'S' {
                wire::write(&mut self.client, &[m]).await?;
                continue;
            }
            break m;
        };
        if first.tag != b'G' {
            // The backend refused the COPY itself: relay its error.
            wire::write(&mut self.client, &[first]).await?;
            self.relay_without_ready().await?;
            return Ok(true);
        }
        let mut sent = Vec::with_capacity(files.len());
        let failure = match self.stream_files(&files, &cols, &spec, &mut sent).await {
            Ok(()) => {
                wire::write(&mut self.backend, &[wire::copy_done()]).await?;
                let out = wire::collect(&mut self.backend).await?;
                self.status = out.status;
                match out.error {
                    None => None,
                    Some(e) => Some(self.backend_failure(&e, &files, &sent, &cols, &spec).await),
                }
            }
            Err(f) => {
                wire::write(&mut self.backend, &[wire::copy_fail("load error")]).await?;
                let out = wire::collect(&mut self.backend).await?;
                self.status = out.status;
                Some(f)
            }
        };
        let bare = table.rsplit('.').next().unwrap_or(table).trim_matches('"');
        let query = self.shared.query_ids.fetch_add(1, Ordering::Relaxed);
        match failure {
            None => {
                if in_block {
                    wire::run(&mut self.backend, "RELEASE SAVEPOINT rs_emulator_copy").await?;
                }
                let rows: u64 = sent.iter().map(|s| s.rows).sum();
                self.values.last_copy_count = rows;
                self.values.last_copy_id = query;
                wire::write(
                    &mut self.client,
                    &[
                        wire::info(&format!(
                            "Load into table '{bare}' completed, {rows} record(s) loaded successfully."
                        )),
                        wire::command_complete("COPY"),
                    ],
                )
                .await?;
                Ok(false)
            }
            Some(f) => {
                if in_block {
                    let out =
                        wire::run(&mut self.backend, "ROLLBACK TO SAVEPOINT rs_emulator_copy")
                            .await?;
                    self.status = out.status;
                }
                self.record_load_error(table, query, &f).await?;
                let details = if self.shared.cfg.serverless {
                    "sys_load_error_detail"
                } else {
                    "stl_load_errors"
                };
                self.raise(&Refusal {
                    code: "XX000",
                    message: format!(
                        "Load into table '{bare}' failed.  Check '{details}' system table for details."
                    ),
                })
                .await
            }
        }
    }

    /// The named columns (or all) of the target, with their types.
    async fn target_columns(
        &mut self,
        table: &str,
        columns: &[String],
    ) -> Result<Result<Vec<Column>, Refusal>> {
        let sql = format!(
            "SELECT a.attname::text, t.typname::text, \
             CASE WHEN t.typname = 'bytea' THEN coalesce((SELECT substring(pg_get_constraintdef(c.oid) FROM '<= ([0-9]+)')::int + 4 \
               FROM pg_constraint c WHERE c.conrelid = a.attrelid AND c.contype = 'c' AND c.conkey = ARRAY[a.attnum] \
               AND pg_get_constraintdef(c.oid) LIKE '%octet_length%' LIMIT 1), -1) ELSE a.atttypmod END::text, \
             a.attnotnull::text \
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
            return manifest_files(s3, from, bucket, key).await;
        }
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

    /// Streams every file into the backend's COPY, noting what each sent; stops at
    /// the first bad row.
    async fn stream_files(
        &mut self,
        files: &[String],
        cols: &[Column],
        spec: &CopySpec,
        sent: &mut Vec<Sent>,
    ) -> Result<(), LoadFailure> {
        for file in files {
            sent.push(self.stream_file(file, cols, spec).await?);
        }
        Ok(())
    }

    async fn stream_file(
        &mut self,
        file: &str,
        cols: &[Column],
        spec: &CopySpec,
    ) -> Result<Sent, LoadFailure> {
        let mut reader = FileReader::open(&self.shared.cfg.s3, file, spec)
            .await
            .map_err(|e| LoadFailure::of_file(file, e))?;
        let mut out: Vec<u8> = Vec::with_capacity(128 * 1024);
        let mut rows = 0u64;
        let mut lines = 0u64;
        loop {
            let more = reader
                .next_chunk(file, spec, |rec| {
                    load::encode_record(&rec, cols, spec, &mut out)?;
                    rows += 1;
                    Ok(())
                })
                .await
                .map_err(|e| match e {
                    ReadError::File(reason) => LoadFailure::of_file(file, reason),
                    ReadError::Row(e) => LoadFailure::of_row(file, e),
                })?;
            if out.len() >= 64 * 1024 || (!more && !out.is_empty()) {
                lines += out.iter().filter(|b| **b == b'\n').count() as u64;
                wire::write(&mut self.backend, &[wire::copy_data(&out)])
                    .await
                    .map_err(|e| LoadFailure::of_file(file, format!("backend: {e}")))?;
                out.clear();
            }
            if !more {
                return Ok(Sent { rows, lines });
            }
        }
    }

    /// A row the backend refused: finds its file, line and raw text by reading the
    /// file again up to it (a cold path; the stream kept no copy).
    async fn backend_failure(
        &self,
        e: &Message,
        files: &[String],
        sent: &[Sent],
        cols: &[Column],
        spec: &CopySpec,
    ) -> LoadFailure {
        let sqlstate = wire::error_field(e, b'C').unwrap_or_default();
        let message = wire::error_field(e, b'M').unwrap_or_default();
        let context = wire::error_field(e, b'W').unwrap_or_default();
        let (line, colname) = backend_position(&context).unwrap_or((0, None));
        let col = colname
            .as_deref()
            .and_then(|n| cols.iter().position(|c| c.name == n));
        let (code, reason) = backend_reason(&sqlstate, &message, col.map(|i| &cols[i]), spec);
        let mut failure = LoadFailure {
            filename: files.first().cloned().unwrap_or_default(),
            line: 0,
            colname: colname.unwrap_or_default(),
            col_type: col.map(|i| cols[i].typname.clone()).unwrap_or_default(),
            col_length: col.map(|i| column_length(&cols[i])).unwrap_or_default(),
            raw_line: String::new(),
            raw_value: String::new(),
            code,
            reason,
        };
        // The file holding the line, and the record holding it there.
        let mut before = 0;
        for (file, s) in files.iter().zip(sent) {
            if line > before && line <= before + s.lines {
                failure.filename = file.clone();
                if let Some(rec) = self.record_at(file, spec, line - before).await {
                    failure.line = rec.line;
                    failure.raw_line = String::from_utf8_lossy(&rec.raw).into_owned();
                    if let Some(field) = col.and_then(|i| rec.fields.get(i)) {
                        failure.raw_value = String::from_utf8_lossy(&field.bytes).into_owned();
                    }
                }
                break;
            }
            before += s.lines;
        }
        failure
    }

    /// The record of a file that the backend saw on its `line` (1-based, counted over
    /// what this file sent: a record is one line plus its quoted newlines).
    async fn record_at(&self, file: &str, spec: &CopySpec, line: u64) -> Option<Record> {
        let mut reader = FileReader::open(&self.shared.cfg.s3, file, spec)
            .await
            .ok()?;
        let mut seen = 0u64;
        let mut found = None;
        loop {
            let more = reader
                .next_chunk(file, spec, |rec| {
                    let newlines = rec
                        .fields
                        .iter()
                        .map(|f| f.bytes.iter().filter(|b| **b == b'\n').count() as u64)
                        .sum::<u64>();
                    seen += 1 + newlines;
                    if seen >= line && found.is_none() {
                        found = Some(rec);
                    }
                    Ok(())
                })
                .await
                .ok()?;
            if let Some(rec) = found.take() {
                return Some(rec);
            }
            if !more {
                return None;
            }
        }
    }

    /// Writes the failure into `stl_load_errors` on a connection of its own, so the row
    /// survives the client's rollback.
    async fn record_load_error(&mut self, table: &str, query: i64, f: &LoadFailure) -> Result<()> {
        let (mut conn, greeting) = backend_session(
            &self.shared.cfg,
            &self.database,
            &self.shared.cfg.backend_user,
        )
        .await?;
        if greeting.iter().any(|m| m.tag == b'E') {
            bail!("cannot open a session to record a load error");
        }
        let cut = |s: &str, n: usize| -> String { s.chars().take(n).collect() };
        let sql = if self.shared.cfg.serverless {
            format!(
                "INSERT INTO public.sys_load_error_detail (user_id, query_id, transaction_id, session_id, database_name, table_id, start_time, file_name, line_number, column_name, column_type, column_length, position, error_code, error_message) \
                 VALUES (100, {}, 0, {}, current_database(), COALESCE(to_regclass({})::oid::int, 0), clock_timestamp()::timestamp, {}, {}, {}, {}, {}, 0, {}, {})",
                query,
                self.pid,
                quote_literal(table),
                quote_literal(&cut(&f.filename, 256)),
                f.line,
                quote_literal(&cut(&f.colname, 127)),
                quote_literal(&cut(&f.col_type, 10)),
                quote_literal(&cut(&f.col_length, 10)),
                f.code,
                quote_literal(&cut(&f.reason, 512)),
            )
        } else {
            format!(
                "INSERT INTO public.stl_load_errors (userid, slice, tbl, starttime, session, query, filename, line_number, colname, type, col_length, position, raw_line, raw_field_value, err_code, err_reason, is_partial, start_offset) \
                 VALUES (100, 0, COALESCE(to_regclass({})::oid::int, 0), clock_timestamp()::timestamp, {}, {}, {}, {}, {}, {}, {}, 0, {}, {}, {}, {}, 0, 0)",
                quote_literal(table),
                self.pid,
                query,
                quote_literal(&cut(&f.filename, 256)),
                f.line,
                quote_literal(&cut(&f.colname, 127)),
                quote_literal(&cut(&f.col_type, 10)),
                quote_literal(&cut(&f.col_length, 10)),
                quote_literal(&cut(&f.raw_line, 1024)),
                quote_literal(&cut(&f.raw_value, 1024)),
                f.code,
                quote_literal(&cut(&f.reason, 100)),
            )
        };
        let out = wire::run(&mut conn, &sql).await?;
        let _ = wire::write(&mut conn, &[Message::new(b'X', Vec::new())]).await;
        if let Some(e) = out.error {
            return Err(anyhow!(
                "recording a load error failed: {}",
                wire::error_field(&e, b'M').unwrap_or_default()
            ));
        }
        Ok(())
    }
}

/// The entries of a manifest that exist; a missing mandatory entry fails the COPY.
async fn manifest_files(
    s3: &aws_sdk_s3::Client,
    from: &str,
    bucket: &str,
    key: &str,
) -> Result<Vec<String>, Refusal> {
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
}

fn split_s3(url: &str) -> Result<(&str, &str), Refusal> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_context_names_row_and_column() {
        assert_eq!(
            backend_position("COPY big, line 3, column at: \"2024-02-30 00:00:00\""),
            Some((3, Some("at".to_string())))
        );
        assert_eq!(
            backend_position(
                "PL/pgSQL function rs_emulator_checks_1() line 1 at RAISE\nCOPY t, line 12"
            ),
            Some((12, None))
        );
        assert_eq!(backend_position("SQL statement \"SELECT 1\""), None);
    }

    #[test]
    fn backend_errors_get_redshift_reasons() {
        let spec = load::spec(
            &[
                (
                    "IAM_ROLE".to_string(),
                    Some("arn:aws:iam::123456789012:role/r".to_string()),
                ),
                ("CSV".to_string(), None),
                ("TIMEFORMAT".to_string(), Some("auto".to_string())),
            ],
            None,
        )
        .unwrap();
        let col = |typname: &str| Column {
            name: "c".into(),
            typname: typname.into(),
            typmod: -1,
            not_null: false,
        };
        assert_eq!(
            backend_reason(
                "22008",
                "date/time field value out of range",
                Some(&col("timestamp")),
                &spec
            ),
            (
                1206,
                "Invalid timestamp format or value [YYYY-MM-DD HH24:MI:SS]".to_string()
            )
        );
        assert_eq!(
            backend_reason("22007", "x", Some(&col("date")), &spec).0,
            1205
        );
        assert_eq!(backend_reason("22001", "x", None, &spec).0, 1204);
        assert_eq!(
            backend_reason("XX000", "boom", None, &spec).1,
            "Unknown parse error: boom"
        );
        assert_eq!(
            column_length(&Column {
                typmod: ((12 << 16) | 2) + 4,
                ..col("numeric")
            }),
            "12,2"
        );
    }
}
