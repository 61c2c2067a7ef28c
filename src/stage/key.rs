//! PURE: where staged chunks live in S3, and the manifest that names them.
//!
//! `<prefix>/<job>/<schema>.<table>/<invocation>/<chunk>/part-00001.csv.zst` (one
//! `part-NNNNN` per file of the chunk, `.csv.gz` for gzip): one directory per chunk,
//! so a COPY by manifest never sees another chunk's files, and cleaning up a chunk is
//! deleting one prefix; one per invocation, so two invocations
//! never write the same key, and what a killed one left is everything under the table's
//! prefix but the current invocation's.

use crate::config::TableRef;

/// The S3 key prefix of everything staged for one table (with a trailing slash).
pub fn table_prefix(prefix: &str, job: &str, table: &TableRef) -> String {
    let prefix = prefix.trim_matches('/');
    let table = component(&format!("{}.{}", table.schema, table.name));
    let head = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    format!("{head}{}/{table}/", component(job))
}

/// The S3 key prefix of one invocation's chunks of a table (with a trailing slash).
pub fn invocation_prefix(prefix: &str, job: &str, table: &TableRef, invocation: &str) -> String {
    format!(
        "{}{}/",
        table_prefix(prefix, job, table),
        component(invocation)
    )
}

/// The S3 key prefix of one chunk (no trailing slash).
pub fn chunk_prefix(
    prefix: &str,
    job: &str,
    table: &TableRef,
    invocation: &str,
    chunk: u64,
) -> String {
    format!(
        "{}{chunk:06}",
        invocation_prefix(prefix, job, table, invocation)
    )
}

/// The key of one part file of a chunk (1-based).
pub fn part_key(chunk_prefix: &str, part: u32, extension: &str) -> String {
    format!("{chunk_prefix}/part-{part:05}.{extension}")
}

pub fn manifest_key(chunk_prefix: &str) -> String {
    format!("{chunk_prefix}/manifest.json")
}

/// A COPY manifest where every entry is mandatory (a missing file fails the load
/// instead of silently loading less).
pub fn manifest(bucket: &str, entries: &[(String, u64)]) -> String {
    let entries: Vec<serde_json::Value> = entries
        .iter()
        .map(|(key, len)| {
            serde_json::json!({
                "url": format!("s3://{bucket}/{key}"),
                "mandatory": true,
                "meta": {"content_length": len},
            })
        })
        .collect();
    serde_json::json!({ "entries": entries }).to_string()
}

/// A path component S3 and people both read well: names are kept, but characters that
/// need URL escaping become `_` followed by their hex code.
fn component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_lives_under_its_invocation_under_its_table() {
        let t = TableRef::new("public", "orders");
        let chunk = chunk_prefix("staging/", "shop", &t, "lambda-1.0a1b2c3d", 7);
        let invocation = invocation_prefix("staging", "shop", &t, "lambda-1.0a1b2c3d");
        let table = table_prefix("/staging", "shop", &t);
        assert_eq!(table, "staging/shop/public.orders/");
        assert!(
            invocation.starts_with(&table) && invocation.ends_with('/'),
            "{invocation}"
        );
        assert!(chunk.starts_with(&invocation), "{chunk}");
        assert_eq!(&chunk[invocation.len()..], "000007");
        // Another table's prefix is not inside this one's.
        let other = table_prefix(
            "staging",
            "shop",
            &TableRef::new("public", "orders_archive"),
        );
        assert!(!other.starts_with(&table));
    }

    #[test]
    fn keys_are_grouped_by_job_table_run_and_chunk() {
        let p = chunk_prefix(
            "staging/",
            "shop",
            &TableRef::new("public", "orders"),
            "r-1",
            3,
        );
        assert_eq!(p, "staging/shop/public.orders/r-1/000003");
        assert_eq!(
            part_key(&p, 1, "csv.gz"),
            "staging/shop/public.orders/r-1/000003/part-00001.csv.gz"
        );
        assert_eq!(
            manifest_key(&p),
            "staging/shop/public.orders/r-1/000003/manifest.json"
        );
        assert_eq!(
            chunk_prefix("", "j", &TableRef::new("s", "t"), "r", 0),
            "j/s.t/r/000000"
        );
    }

    #[test]
    fn odd_names_stay_readable_and_safe() {
        let p = chunk_prefix(
            "x",
            "shop",
            &TableRef::new("Sales Data", "Order/\"Items\""),
            "r",
            1,
        );
        assert_eq!(p, "x/shop/Sales_20Data.Order_2f_22Items_22/r/000001");
    }

    #[test]
    fn manifest_entries_are_mandatory() {
        let m = manifest("b", &[("k/part-00001.csv.gz".into(), 10)]);
        let v: serde_json::Value = serde_json::from_str(&m).unwrap();
        assert_eq!(v["entries"][0]["url"], "s3://b/k/part-00001.csv.gz");
        assert_eq!(v["entries"][0]["mandatory"], true);
        assert_eq!(v["entries"][0]["meta"]["content_length"], 10);
    }
}
