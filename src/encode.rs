//! PURE + streaming: PostgreSQL CSV (as `COPY (SELECT ...) TO STDOUT (FORMAT csv,
//! NULL '\N')` writes it) → CSV that Redshift's `COPY ... CSV NULL AS '\N'` loads back
//! to the same values.
//!
//! - NULL is the unquoted sentinel `\N`; every non-NULL text value is quoted, so an
//!   empty string stays an empty string and a text that is literally `\N` stays text.
//! - A text value longer than its column's byte limit is cut on a UTF-8 character
//!   boundary and counted; a JSON or binary value over its limit cannot be cut, so it
//!   loads as NULL and is counted, as does an empty binary value (an empty CSV field
//!   is NULL to Redshift for every type but text). Nothing changes silently: the counts are in
//!   [`EncodeStats`] and end up in the run's summary.
//! - Input arrives in arbitrary pieces; one field at a time is held, never a row set.
//! - No allocation per row: the field and the cursor values live in buffers that are
//!   reused, and runs of ordinary bytes are found with `memchr` and copied whole.

use std::collections::BTreeMap;

use crate::warehouse::types::Load;

/// What the encoder saw and changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodeStats {
    pub rows: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Column index → text values cut to the column's byte limit.
    pub truncated: BTreeMap<usize, u64>,
    /// Column index → JSON/binary values over the limit, loaded as NULL.
    pub nulled: BTreeMap<usize, u64>,
    /// Column index → values Redshift cannot hold that the SELECT replaced (its flag
    /// columns said so).
    pub replaced: BTreeMap<usize, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("source row {row} has {found} fields, expected {expected} (the extract and the column list disagree)")]
    FieldCount {
        row: u64,
        found: usize,
        expected: usize,
    },
    #[error("source CSV ended inside a quoted field at row {row}")]
    UnterminatedQuote { row: u64 },
    #[error("source CSV row {row}: unexpected character after a closing quote")]
    StrayQuote { row: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a field.
    FieldStart,
    /// Inside an unquoted field.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just saw a quote inside a quoted field: either `""` or the closing quote.
    QuoteInQuoted,
    /// Just saw `\r` at the end of a row (PostgreSQL writes `\n`; tolerate `\r\n`).
    CarriageReturn,
}

/// The streaming transform. Feed it the source's bytes in any pieces; it appends
/// Redshift CSV to the output buffer the caller drains.
#[derive(Debug)]
pub struct Encoder {
    loads: Vec<Load>,
    /// Columns whose raw values of the last complete row are kept (the cursor).
    keep: Vec<usize>,
    state: State,
    field: Vec<u8>,
    quoted: bool,
    column: usize,
    /// The kept columns of the row being read, then (swapped) of the last complete row.
    row_values: Vec<Kept>,
    last_values: Vec<Kept>,
    row_number: bool,
    /// The input's last fields are flags, not loaded: `t` counts a replaced value of
    /// the column each names.
    flags: Vec<usize>,
    stats: EncodeStats,
}

impl Encoder {
    /// `loads` has one entry per extracted column, in order; `keep` lists the columns
    /// whose last values [`Encoder::last_kept`] reports (the keyset cursor).
    pub fn new(loads: Vec<Load>, keep: Vec<usize>) -> Encoder {
        let n = keep.len();
        Encoder {
            loads,
            keep,
            state: State::FieldStart,
            field: Vec::new(),
            quoted: false,
            column: 0,
            row_values: vec![Kept::default(); n],
            last_values: vec![Kept::default(); n],
            row_number: false,
            flags: Vec::new(),
            stats: EncodeStats::default(),
        }
    }

    /// Appends each row's position (1, 2, ...) as a last, unquoted column.
    pub fn with_row_number(mut self) -> Encoder {
        self.row_number = true;
        self
    }

    /// The input ends with one flag field per entry of `flags` (after the loaded
    /// columns): not written out; a `t` counts a replaced value of that column.
    pub fn with_flags(mut self, flags: Vec<usize>) -> Encoder {
        self.flags = flags;
        self
    }

    pub fn stats(&self) -> &EncodeStats {
        &self.stats
    }

    /// The kept columns' values of the last complete row, as text (`None` for NULL;
    /// all `None` before the first row).
    pub fn last_kept(&self) -> Vec<Option<String>> {
        self.last_values
            .iter()
            .map(|k| {
                (!k.null && self.stats.rows > 0)
                    .then(|| String::from_utf8_lossy(&k.bytes).into_owned())
            })
            .collect()
    }

    /// Whether the input so far ends on a row boundary: `out` then holds whole rows only
    /// and may be cut there.
    pub fn at_row_start(&self) -> bool {
        self.state == State::FieldStart && self.column == 0 && self.field.is_empty()
    }

    /// Transforms `input`, appending to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.stats.bytes_in += input.len() as u64;
        let before = out.len();
        let mut i = 0;
        while i < input.len() {
            // Runs of ordinary bytes inside a field are copied whole.
            match self.state {
                State::Quoted => {
                    let rest = &input[i..];
                    let n = memchr::memchr(b'"', rest).unwrap_or(rest.len());
                    self.field.extend_from_slice(&rest[..n]);
                    i += n;
                }
                State::Unquoted => {
                    let rest = &input[i..];
                    let n = memchr::memchr3(b',', b'\n', b'\r', rest).unwrap_or(rest.len());
                    self.field.extend_from_slice(&rest[..n]);
                    i += n;
                }
                _ => {}
            }
            let Some(&b) = input.get(i) else { break };
            i += 1;
            match self.state {
                State::FieldStart => match b {
                    b'"' => {
                        self.quoted = true;
                        self.state = State::Quoted;
                    }
                    b',' => self.end_field(out)?,
                    b'\n' => self.end_row(out)?,
                    b'\r' => self.state = State::CarriageReturn,
                    _ => {
                        self.field.push(b);
                        self.state = State::Unquoted;
                    }
                },
                State::Unquoted => match b {
                    b',' => {
                        self.end_field(out)?;
                        self.state = State::FieldStart;
                    }
                    b'\n' => {
                        self.end_row(out)?;
                        self.state = State::FieldStart;
                    }
                    b'\r' => self.state = State::CarriageReturn,
                    _ => self.field.push(b),
                },
                State::Quoted => match b {
                    b'"' => self.state = State::QuoteInQuoted,
                    _ => self.field.push(b),
                },
                State::QuoteInQuoted => match b {
                    b'"' => {
                        self.field.push(b'"');
                        self.state = State::Quoted;
                    }
                    b',' => {
                        self.end_field(out)?;
                        self.state = State::FieldStart;
                    }
                    b'\n' => {
                        self.end_row(out)?;
                        self.state = State::FieldStart;
                    }
                    b'\r' => self.state = State::CarriageReturn,
                    _ => {
                        return Err(EncodeError::StrayQuote {
                            row: self.stats.rows + 1,
                        })
                    }
                },
                State::CarriageReturn => match b {
                    b'\n' => {
                        self.end_row(out)?;
                        self.state = State::FieldStart;
                    }
                    _ => {
                        return Err(EncodeError::StrayQuote {
                            row: self.stats.rows + 1,
                        })
                    }
                },
            }
        }
        self.stats.bytes_out += (out.len() - before) as u64;
        Ok(())
    }

    /// Ends the input: a last row without a newline is completed.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<EncodeStats, EncodeError> {
        let before = out.len();
        match self.state {
            State::Quoted => {
                return Err(EncodeError::UnterminatedQuote {
                    row: self.stats.rows + 1,
                })
            }
            State::FieldStart if self.column == 0 && self.field.is_empty() => {}
            _ => self.end_row(out)?,
        }
        self.state = State::FieldStart;
        self.stats.bytes_out += (out.len() - before) as u64;
        Ok(self.stats.clone())
    }

    fn end_field(&mut self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let column = self.column;
        let Some(load) = self.loads.get(column).copied() else {
            let Some(&of) = self.flags.get(column - self.loads.len()) else {
                return Err(EncodeError::FieldCount {
                    row: self.stats.rows + 1,
                    found: column + 1,
                    expected: self.loads.len() + self.flags.len(),
                });
            };
            if !self.quoted && self.field == b"t" {
                *self.stats.replaced.entry(of).or_default() += 1;
            }
            self.field.clear();
            self.quoted = false;
            self.column += 1;
            return Ok(());
        };
        if column > 0 {
            out.push(b',');
        }
        let is_null = !self.quoted && self.field == b"\\N";
        if let Some(k) = self.keep.iter().position(|&c| c == column) {
            let kept = &mut self.row_values[k];
            kept.null = is_null;
            kept.bytes.clear();
            kept.bytes.extend_from_slice(&self.field);
        }
        if is_null {
            out.extend_from_slice(b"\\N");
        } else {
            self.write_value(column, load, out);
        }
        self.field.clear();
        self.quoted = false;
        self.column += 1;
        Ok(())
    }

    fn end_row(&mut self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.end_field(out)?;
        if self.column != self.loads.len() + self.flags.len() {
            return Err(EncodeError::FieldCount {
                row: self.stats.rows + 1,
                found: self.column,
                expected: self.loads.len() + self.flags.len(),
            });
        }
        if self.row_number {
            out.push(b',');
            push_decimal(self.stats.rows + 1, out);
        }
        out.push(b'\n');
        self.column = 0;
        self.stats.rows += 1;
        std::mem::swap(&mut self.row_values, &mut self.last_values);
        Ok(())
    }

    fn write_value(&mut self, column: usize, load: Load, out: &mut Vec<u8>) {
        match load {
            Load::Plain => out.extend_from_slice(&self.field),
            Load::Text { max_bytes } => {
                let value = if self.field.len() > max_bytes as usize {
                    *self.stats.truncated.entry(column).or_default() += 1;
                    cut_utf8(&self.field, max_bytes as usize)
                } else {
                    &self.field[..]
                };
                quote_into(value, out);
            }
            Load::Json { max_bytes } => {
                if self.field.len() > max_bytes as usize {
                    *self.stats.nulled.entry(column).or_default() += 1;
                    out.extend_from_slice(b"\\N");
                } else {
                    quote_into(&self.field, out);
                }
            }
            Load::Hex { max_bytes } => {
                // An empty binary value has no CSV form Redshift reads back as empty
                // (an empty field loads NULL into VARBYTE): it is counted with the
                // values loaded as NULL.
                if self.field.len() / 2 > max_bytes as usize || self.field.is_empty() {
                    *self.stats.nulled.entry(column).or_default() += 1;
                    out.extend_from_slice(b"\\N");
                } else {
                    quote_into(&self.field, out);
                }
            }
        }
    }
}

/// The longest prefix of `bytes` of at most `max` bytes that ends on a UTF-8 character
/// boundary.
pub fn cut_utf8(bytes: &[u8], max: usize) -> &[u8] {
    if bytes.len() <= max {
        return bytes;
    }
    let mut end = max;
    // Step back over continuation bytes (10xxxxxx) to the start of a character.
    while end > 0 && (bytes[end] & 0b1100_0000) == 0b1000_0000 {
        end -= 1;
    }
    &bytes[..end]
}

fn quote_into(value: &[u8], out: &mut Vec<u8>) {
    out.reserve(value.len() + 2);
    out.push(b'"');
    let mut rest = value;
    while let Some(at) = memchr::memchr(b'"', rest) {
        // Up to and including the quote, then the quote again.
        out.extend_from_slice(&rest[..=at]);
        out.push(b'"');
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// `n` in decimal, without allocating.
fn push_decimal(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// One kept (cursor) column's raw value, in a buffer reused row after row.
#[derive(Debug, Clone, Default)]
struct Kept {
    null: bool,
    bytes: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: Load = Load::Text { max_bytes: 65535 };

    fn encode_in_pieces(loads: Vec<Load>, input: &[u8], piece: usize) -> (String, EncodeStats) {
        let mut e = Encoder::new(loads, vec![0]);
        let mut out = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            e.feed(chunk, &mut out).unwrap();
        }
        let stats = e.finish(&mut out).unwrap();
        (String::from_utf8(out).unwrap(), stats)
    }

    /// Every piece size gives the same output: state survives any split.
    fn encode(loads: Vec<Load>, input: &str) -> (String, EncodeStats) {
        let whole = encode_in_pieces(loads.clone(), input.as_bytes(), input.len());
        for piece in 1..input.len().min(9) {
            assert_eq!(
                encode_in_pieces(loads.clone(), input.as_bytes(), piece),
                whole
            );
        }
        whole
    }

    #[test]
    fn nulls_empties_and_literal_backslash_n_stay_apart() {
        // PostgreSQL writes NULL as \N unquoted, an empty string as "", the text \N as "\N".
        let (out, stats) = encode(vec![Load::Plain, TEXT, TEXT, TEXT], "1,\\N,\"\",\"\\N\"\n");
        assert_eq!(out, "1,\\N,\"\",\"\\N\"\n");
        assert_eq!(stats.rows, 1);
    }

    #[test]
    fn text_is_always_quoted_with_quotes_doubled() {
        let input =
            "7,plain,\"a,b\",\"say \"\"hi\"\"\",\"line1\nline2\",\"cr\r\nlf\",\"back\\slash\"\n";
        let (out, _) = encode(vec![Load::Plain, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT], input);
        assert_eq!(
            out,
            "7,\"plain\",\"a,b\",\"say \"\"hi\"\"\",\"line1\nline2\",\"cr\r\nlf\",\"back\\slash\"\n"
        );
    }

    #[test]
    fn plain_values_pass_unquoted_and_rows_are_counted() {
        let (out, stats) = encode(
            vec![Load::Plain, Load::Plain, Load::Plain],
            "1,2024-01-02 03:04:05.123456+00,t\n2,\\N,f\n",
        );
        assert_eq!(out, "1,2024-01-02 03:04:05.123456+00,t\n2,\\N,f\n");
        assert_eq!(stats.rows, 2);
        assert_eq!(stats.bytes_in, 41);
        assert_eq!(stats.bytes_out, out.len() as u64);
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_and_counted() {
        // "é" is 2 bytes, "😀" 4: a limit of 5 bytes keeps "é😀" minus what does not fit.
        let (out, stats) = encode(
            vec![Load::Plain, Load::Text { max_bytes: 5 }],
            "1,\"é😀x\"\n2,\"abc\"\n3,\"ab😀\"\n",
        );
        assert_eq!(out, "1,\"é\"\n2,\"abc\"\n3,\"ab\"\n");
        assert_eq!(stats.truncated.get(&1), Some(&2));
        assert_eq!(cut_utf8("ab😀".as_bytes(), 5), b"ab");
        assert_eq!(cut_utf8("ab😀".as_bytes(), 6), "ab😀".as_bytes());
        assert_eq!(cut_utf8("ab😀".as_bytes(), 0), b"");
        assert_eq!(cut_utf8("abc".as_bytes(), 9), b"abc");
    }

    #[test]
    fn oversize_json_and_binary_load_as_null_and_are_counted() {
        let (out, stats) = encode(
            vec![Load::Json { max_bytes: 8 }, Load::Hex { max_bytes: 2 }],
            "\"{\"\"a\"\":1}\",\"0a0b\"\n\"[1,2,3,4,5,6]\",\"0a0b0c\"\n",
        );
        assert_eq!(out, "\"{\"\"a\"\":1}\",\"0a0b\"\n\\N,\\N\n");
        assert_eq!(stats.nulled.get(&0), Some(&1));
        assert_eq!(stats.nulled.get(&1), Some(&1));
        let (out, stats) = encode(vec![Load::Hex { max_bytes: 2 }], "\"\"\n");
        assert_eq!(out, "\\N\n", "an empty binary value cannot load as empty");
        assert_eq!(stats.nulled.get(&0), Some(&1));
    }

    #[test]
    fn last_row_without_newline_and_empty_input() {
        let (out, stats) = encode(vec![Load::Plain, TEXT], "1,\"a\"\n2,\"b\"");
        assert_eq!(out, "1,\"a\"\n2,\"b\"\n");
        assert_eq!(stats.rows, 2);
        let (out, stats) = encode_in_pieces(vec![Load::Plain], b"", 1);
        assert_eq!((out.as_str(), stats.rows), ("", 0));
    }

    #[test]
    fn the_cursor_columns_of_the_last_row_are_kept() {
        let mut e = Encoder::new(vec![Load::Plain, TEXT, Load::Plain], vec![2, 0]);
        let mut out = Vec::new();
        e.feed(b"1,\"x\",2024-01-01\n2,\"y\",\\N\n", &mut out)
            .unwrap();
        assert_eq!(e.last_kept(), &[None, Some("2".to_string())]);
        e.feed(b"3,\"z\",2024-02-0", &mut out).unwrap();
        assert_eq!(
            e.last_kept(),
            &[None, Some("2".to_string())],
            "row not complete yet"
        );
        e.feed(b"1\n", &mut out).unwrap();
        assert_eq!(
            e.last_kept(),
            &[Some("2024-02-01".to_string()), Some("3".to_string())]
        );
    }

    #[test]
    fn a_row_boundary_is_known_so_output_can_be_cut_there() {
        let mut e = Encoder::new(vec![Load::Plain, TEXT], vec![]);
        let mut out = Vec::new();
        assert!(e.at_row_start());
        e.feed(b"1,\"a", &mut out).unwrap();
        assert!(!e.at_row_start(), "inside a quoted field");
        e.feed(b"\n\"\n2", &mut out).unwrap();
        assert!(!e.at_row_start(), "inside an unquoted field");
        e.feed(b",\"b\"\n", &mut out).unwrap();
        assert!(e.at_row_start());
        assert_eq!(out, b"1,\"a\n\"\n2,\"b\"\n");
    }

    #[test]
    fn decimals_are_written_without_allocating() {
        for n in [0u64, 7, 10, 99, 100_000, u64::MAX] {
            let mut out = b"x".to_vec();
            push_decimal(n, &mut out);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn row_numbers_are_appended_when_asked() {
        let mut e = Encoder::new(vec![Load::Plain, TEXT], vec![]).with_row_number();
        let mut out = Vec::new();
        e.feed(b"7,\"a\"\n9,\\N\n", &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "7,\"a\",1\n9,\\N,2\n");
    }

    #[test]
    fn malformed_input_is_an_error_not_a_guess() {
        let mut e = Encoder::new(vec![Load::Plain, Load::Plain], vec![]);
        let mut out = Vec::new();
        assert_eq!(
            e.feed(b"1,2,3\n", &mut out),
            Err(EncodeError::FieldCount {
                row: 1,
                found: 3,
                expected: 2
            })
        );
        let mut e = Encoder::new(vec![Load::Plain], vec![]);
        assert_eq!(
            e.feed(b"1\n2,3\n", &mut out),
            Err(EncodeError::FieldCount {
                row: 2,
                found: 2,
                expected: 1
            })
        );
        let mut e = Encoder::new(vec![TEXT], vec![]);
        e.feed(b"\"open", &mut out).unwrap();
        assert_eq!(
            e.finish(&mut out),
            Err(EncodeError::UnterminatedQuote { row: 1 })
        );
        let mut e = Encoder::new(vec![TEXT], vec![]);
        assert_eq!(
            e.feed(b"\"a\"b\n", &mut out),
            Err(EncodeError::StrayQuote { row: 1 })
        );
        let mut e = Encoder::new(vec![Load::Plain, Load::Plain], vec![]);
        assert_eq!(
            e.feed(b"1\n", &mut out),
            Err(EncodeError::FieldCount {
                row: 1,
                found: 1,
                expected: 2
            })
        );
    }

    #[test]
    fn flag_fields_count_replaced_values_and_are_not_written() {
        let input = "1,\\N,\\N,t,f\n2,\"2024-01-01\",5,f,f\n3,\\N,\\N,t,t\n";
        let mut e = Encoder::new(vec![Load::Plain, Load::Plain, Load::Plain], vec![0])
            .with_flags(vec![1, 2])
            .with_row_number();
        let mut out = Vec::new();
        for piece in input.as_bytes().chunks(3) {
            e.feed(piece, &mut out).unwrap();
        }
        let stats = e.finish(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1,\\N,\\N,1\n2,2024-01-01,5,2\n3,\\N,\\N,3\n"
        );
        assert_eq!(stats.replaced, BTreeMap::from([(1, 2), (2, 1)]));
        assert_eq!(e.last_kept(), vec![Some("3".to_string())]);
        let mut short = Encoder::new(vec![Load::Plain], vec![]).with_flags(vec![0]);
        assert_eq!(
            short.feed(b"1\n", &mut Vec::new()),
            Err(EncodeError::FieldCount {
                row: 1,
                found: 1,
                expected: 2
            })
        );
    }
}
