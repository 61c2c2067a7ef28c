//! Quoting: the one place where names and values from users become SQL text.
//!
//! Identifiers are always double-quoted, whatever they hold. Literals differ by side:
//! Redshift treats a backslash inside `'...'` as an escape character (its
//! `QUOTE_LITERAL` doubles both quotes and backslashes), PostgreSQL does not when
//! `standard_conforming_strings` is on.
//!
//! NUL: neither database can hold it in text, and the wire protocol cannot carry it in
//! a statement (tokio-postgres refuses such a statement with "string contains embedded
//! null" before sending it). So the quoting functions stay infallible and keep a NUL
//! as it is: the statement then fails loudly, and nothing is silently dropped. Names
//! are checked up front by [`redshift_name`].

/// The most bytes a Redshift identifier may have (quotes not counted).
pub const MAX_IDENTIFIER_BYTES: usize = 127;

/// Column names Redshift reserves for system columns; a user column cannot have them.
/// PostgreSQL (since 12) allows a user column named `oid`.
pub const SYSTEM_COLUMNS: [&str; 7] = ["oid", "tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"];

/// A name Redshift cannot take as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error("a Redshift name cannot be empty")]
    Empty,
    #[error("name {name:?} is {bytes} bytes long, and Redshift allows at most 127 bytes; give the table a shorter `destination` (or the job a shorter `destination.schema`)")]
    TooLong { name: String, bytes: usize },
    #[error("name {name:?} holds a control character, which Redshift does not allow in names; give the table a `destination` without it, or list such a column in exclude_columns")]
    ControlCharacter { name: String },
    #[error("column {name:?} has the name of a Redshift system column; list it in exclude_columns, or copy from a view that renames it")]
    SystemColumn { name: String },
}

/// A quoted identifier for either database: `"name"`, embedded `"` doubled. Case is
/// kept; use [`redshift_name`] first for a name that goes to Redshift.
pub fn ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `"schema"."table"`.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", ident(schema), ident(table))
}

/// A Redshift string literal: `'...'` with `'` and `\` doubled (Redshift reads a
/// backslash in a literal as an escape).
pub fn literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// A PostgreSQL string literal for the source side: `'...'` with `'` doubled. A value
/// holding a backslash is written as an escape string (`E'a\\b'`), which means the same
/// whatever the server's `standard_conforming_strings` is.
pub fn pg_literal(value: &str) -> String {
    let escape = value.contains('\\');
    let mut out = String::with_capacity(value.len() + 3);
    if escape {
        out.push('E');
    }
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || (escape && c == '\\') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// The name a source table or schema gets in Redshift: ASCII letters folded to lower
/// case (what Redshift does, quoted or not, unless `enable_case_sensitive_identifier`
/// is on; other letters are kept), 1 to 127 bytes, no control characters (Redshift
/// names are printable UTF-8).
pub fn redshift_name(name: &str) -> Result<String, QuoteError> {
    if name.is_empty() {
        return Err(QuoteError::Empty);
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(QuoteError::TooLong {
            name: name.to_string(),
            bytes: name.len(),
        });
    }
    if name.chars().any(char::is_control) {
        return Err(QuoteError::ControlCharacter {
            name: name.to_string(),
        });
    }
    Ok(name.to_ascii_lowercase())
}

/// [`redshift_name`] for a column, which also must not be a system column name.
pub fn redshift_column_name(name: &str) -> Result<String, QuoteError> {
    let folded = redshift_name(name)?;
    if SYSTEM_COLUMNS.contains(&folded.as_str()) {
        return Err(QuoteError::SystemColumn {
            name: name.to_string(),
        });
    }
    Ok(folded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_always_quoted_with_quotes_doubled() {
        let cases = [
            ("orders", r#""orders""#),
            ("Orders", r#""Orders""#),
            ("select", r#""select""#),
            ("user", r#""user""#),
            ("order items", r#""order items""#),
            ("a\"b", r#""a""b""#),
            ("\"", r#""""""#),
            ("\"\"", r#""""""""#),
            ("", r#""""#),
            ("a.b", r#""a.b""#),
            ("it's", r#""it's""#),
            ("back\\slash", r#""back\slash""#),
            ("größe", "\"größe\""),
            ("表", "\"表\""),
            ("x;drop table t;--", r#""x;drop table t;--""#),
        ];
        for (name, expected) in cases {
            assert_eq!(ident(name), expected, "ident({name:?})");
        }
    }

    #[test]
    fn qualified_names_quote_each_part() {
        assert_eq!(qualified("public", "orders"), r#""public"."orders""#);
        assert_eq!(
            qualified("my.schema", "Order \"x\""),
            r#""my.schema"."Order ""x""""#
        );
    }

    #[test]
    fn redshift_literals_double_quotes_and_backslashes() {
        let cases = [
            ("", "''"),
            ("abc", "'abc'"),
            ("it's", "'it''s'"),
            ("''", "''''''"),
            (r"\N", r"'\\N'"),
            (r"a\b\\c", r"'a\\b\\\\c'"),
            (r"\'", r"'\\'''"),
            (
                "s3://bucket/run 1/manifest.json",
                "'s3://bucket/run 1/manifest.json'",
            ),
            ("größe €", "'größe €'"),
            ("\"q\"", "'\"q\"'"),
            ("line\nbreak", "'line\nbreak'"),
        ];
        for (value, expected) in cases {
            assert_eq!(literal(value), expected, "literal({value:?})");
        }
    }

    #[test]
    fn postgres_literals_double_quotes_and_use_escape_strings_for_backslashes() {
        let cases = [
            ("", "''"),
            ("abc", "'abc'"),
            ("it's", "'it''s'"),
            (r"\N", r"E'\\N'"),
            (r"it\'s", r"E'it\\''s'"),
            ("größe", "'größe'"),
            ("2024-01-01 00:00:00+00", "'2024-01-01 00:00:00+00'"),
        ];
        for (value, expected) in cases {
            assert_eq!(pg_literal(value), expected, "pg_literal({value:?})");
        }
    }

    #[test]
    fn redshift_names_fold_ascii_letters_only() {
        let cases = [
            ("orders", "orders"),
            ("Orders", "orders"),
            ("ORDER Items", "order items"),
            ("Größe", "größe"),
            ("ÉCOLE", "École"),
            ("a\"B", "a\"b"),
            ("select", "select"),
            ("表Table", "表table"),
        ];
        for (name, expected) in cases {
            assert_eq!(redshift_name(name).as_deref(), Ok(expected), "{name:?}");
        }
    }

    #[test]
    fn redshift_names_are_at_most_127_bytes() {
        let ok = "a".repeat(127);
        assert_eq!(redshift_name(&ok), Ok(ok.clone()));
        let long = "a".repeat(128);
        assert_eq!(
            redshift_name(&long),
            Err(QuoteError::TooLong {
                name: long.clone(),
                bytes: 128
            })
        );
        // 64 two-byte characters: 64 characters, 128 bytes.
        let wide = "é".repeat(64);
        assert!(matches!(
            redshift_name(&wide),
            Err(QuoteError::TooLong { bytes: 128, .. })
        ));
        let err = redshift_name(&long).unwrap_err().to_string();
        assert!(err.contains("128 bytes"), "{err}");
        assert!(err.contains("destination"), "{err}");
    }

    #[test]
    fn redshift_names_refuse_empty_nul_and_control_characters() {
        assert_eq!(redshift_name(""), Err(QuoteError::Empty));
        for name in ["a\0b", "tab\there", "new\nline", "\u{7f}"] {
            assert_eq!(
                redshift_name(name),
                Err(QuoteError::ControlCharacter {
                    name: name.to_string()
                }),
                "{name:?}"
            );
        }
        assert_eq!(
            redshift_name("a\0b").unwrap_err().to_string(),
            "name \"a\\0b\" holds a control character, which Redshift does not allow in names; give the table a `destination` without it, or list such a column in exclude_columns"
        );
    }

    #[test]
    fn system_column_names_are_refused_for_columns_only() {
        assert_eq!(redshift_name("OID"), Ok("oid".to_string()));
        assert_eq!(
            redshift_column_name("OID"),
            Err(QuoteError::SystemColumn { name: "OID".into() })
        );
        assert_eq!(redshift_column_name("ctid").unwrap_err().to_string(),
            "column \"ctid\" has the name of a Redshift system column; list it in exclude_columns, or copy from a view that renames it");
        assert_eq!(redshift_column_name("oid_ref"), Ok("oid_ref".to_string()));
        assert_eq!(redshift_column_name("Id"), Ok("id".to_string()));
    }
}
