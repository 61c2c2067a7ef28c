//! PURE: a source snapshot, and which row versions a read under it may not have seen.

use serde::{Deserialize, Serialize};

/// A source snapshot as `pg_current_snapshot()` / `txid_current_snapshot()` print it:
/// `xmin:xmax:xip,...`, with 64-bit (epoch-extended) transaction ids.
///
/// Every transaction id below `xmin` had finished when the snapshot was taken; `xip`
/// were in flight; `xmax` and above had not started. See [`Unseen`] for which row
/// versions a read under it could not see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub xmin: u64,
    pub xmax: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xip: Vec<u64>,
}

impl Snapshot {
    /// Parses `10:20:10,14,15` (PostgreSQL's text form).
    pub fn parse(text: &str) -> Option<Snapshot> {
        let mut parts = text.trim().splitn(3, ':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let xip = match parts.next()? {
            "" => Vec::new(),
            list => list
                .split(',')
                .map(|x| x.parse().ok())
                .collect::<Option<Vec<u64>>>()?,
        };
        (xmin <= xmax).then_some(Snapshot { xmin, xmax, xip })
    }

    /// Whether `xip` lists every transaction in flight. A primary lists them all, so
    /// `xmin` is the smallest of them, or `xmax` when there are none. A hot standby's
    /// snapshot keeps its in-flight ids elsewhere and shows an empty list below a lower
    /// `xmin`: then only `xmin` can be trusted.
    pub fn lists_in_flight(&self) -> bool {
        !self.xip.is_empty() || self.xmin == self.xmax
    }
}

/// The source's snapshot functions: `pg_current_snapshot()` and `pg_xact_status()` from
/// PostgreSQL 13, the `txid_*` forms before (`txid_status` from 10). They need no
/// privilege and work on a hot standby.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotFns {
    Pg13,
    Txid,
    /// Before PostgreSQL 10: no transaction status function.
    TxidNoStatus,
}

impl SnapshotFns {
    /// For a server's `server_version_num`.
    pub fn for_version(version_num: u32) -> SnapshotFns {
        match version_num {
            130000.. => SnapshotFns::Pg13,
            100000.. => SnapshotFns::Txid,
            _ => SnapshotFns::TxidNoStatus,
        }
    }

    /// The current transaction's snapshot as text (`xmin:xmax:xip,...`); in a
    /// REPEATABLE READ transaction, the snapshot every statement of it reads under.
    pub fn snapshot_sql(self) -> &'static str {
        match self {
            SnapshotFns::Pg13 => "SELECT pg_current_snapshot()::text",
            _ => "SELECT txid_current_snapshot()::text",
        }
    }

    /// The current snapshot's `xmax`, as a scalar subquery (evaluated once per
    /// statement).
    fn xmax(self) -> &'static str {
        match self {
            SnapshotFns::Pg13 => "(SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint)",
            _ => "(SELECT txid_snapshot_xmax(txid_current_snapshot()))",
        }
    }

    /// `'committed'` when transaction `x` (a bigint expression) committed.
    fn committed(self, x: &str) -> Option<String> {
        match self {
            SnapshotFns::Pg13 => Some(format!("pg_xact_status({x}::text::xid8) = 'committed'")),
            SnapshotFns::Txid => Some(format!("txid_status({x}) = 'committed'")),
            SnapshotFns::TxidNoStatus => None,
        }
    }
}

/// The row versions a read under `snapshot` could not see, as a condition on a later
/// read's rows:
///
/// - written by a transaction at or above its `xmax` (not started yet),
/// - or by one in its `xip` (in flight),
/// - or by a subtransaction (a savepoint) of one in its `xip`. PostgreSQL lists no
///   subtransaction ids, but each is greater than its parent's and below the snapshot's
///   `xmax`. So: any id above the smallest parent in `xip` that has *since committed*.
///   A parent still in flight hides its rows from the later read too (they come with
///   the next catch-up, whose snapshot lists it again); an aborted one left none.
///
/// The status is read when the condition is evaluated, after the later read's snapshot
/// was taken, so a parent that commits in between counts as committed (its rows are
/// then read, or invisible and read next time). Where the in-flight list is incomplete
/// (a hot standby) or there is no status function, it falls back to every id at or
/// above `xmin`: more rows, never fewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unseen<'a> {
    pub snapshot: &'a Snapshot,
    pub fns: SnapshotFns,
}

impl Unseen<'_> {
    /// The condition, on the row's `xmin`.
    pub fn condition(&self) -> String {
        let s = self.snapshot;
        // `xmin` is 32 bits and wraps; snapshots count in 64. A row this read can see
        // was written less than 2^31 transactions before the read's own `xmax`
        // (PostgreSQL freezes older rows), so its distance back from that `xmax`, taken
        // modulo 2^32, gives its 64-bit id exactly.
        let xmax = self.fns.xmax();
        let writer = format!(
            "({xmax} - ((({xmax} - xmin::text::bigint) % 4294967296) + 4294967296) % 4294967296)"
        );
        let committed = self.fns.committed("p");
        match committed {
            Some(committed) if s.lists_in_flight() => {
                if s.xip.is_empty() {
                    return format!("{writer} >= {}", s.xmax);
                }
                let list: Vec<String> = s.xip.iter().map(u64::to_string).collect();
                let list = list.join(",");
                format!(
                    "({writer} >= {xmax_then} OR {writer} IN ({list}) OR {writer} > (SELECT min(p) FROM unnest('{{{list}}}'::bigint[]) p WHERE {committed}))",
                    xmax_then = s.xmax
                )
            }
            _ => format!("{writer} >= {}", s.xmin),
        }
    }
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:", self.xmin, self.xmax)?;
        for (i, x) in self.xip.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_parse_and_print_as_postgresql_writes_them() {
        let s = Snapshot::parse("10:20:10,14,15").unwrap();
        assert_eq!(
            s,
            Snapshot {
                xmin: 10,
                xmax: 20,
                xip: vec![10, 14, 15]
            }
        );
        assert_eq!(s.to_string(), "10:20:10,14,15");
        let idle = Snapshot::parse("4294967400:4294967400:").unwrap();
        assert_eq!(
            (idle.xmin, idle.xmax, idle.xip.len()),
            (4294967400, 4294967400, 0)
        );
        assert_eq!(idle.to_string(), "4294967400:4294967400:");
        for bad in ["", "10", "10:20", "20:10:", "a:b:", "10:20:x"] {
            assert_eq!(Snapshot::parse(bad), None, "{bad:?}");
        }
    }

    const WRITER: &str = "((SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint) - ((((SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint) - xmin::text::bigint) % 4294967296) + 4294967296) % 4294967296)";

    fn condition(snapshot: &str, fns: SnapshotFns) -> String {
        Unseen {
            snapshot: &Snapshot::parse(snapshot).unwrap(),
            fns,
        }
        .condition()
        .replace(WRITER, "W")
    }

    #[test]
    fn unseen_rows_per_kind_of_snapshot() {
        // A primary with transactions in flight: not started, in flight, or a
        // subtransaction of one that has since committed.
        assert_eq!(
            condition("10:20:10,14", SnapshotFns::Pg13),
            "(W >= 20 OR W IN (10,14) OR W > (SELECT min(p) FROM unnest('{10,14}'::bigint[]) p WHERE pg_xact_status(p::text::xid8) = 'committed'))"
        );
        // An idle primary: only what started after it.
        assert_eq!(condition("20:20:", SnapshotFns::Pg13), "W >= 20");
        // A hot standby (in-flight ids not listed), or no status function: from xmin.
        assert_eq!(condition("10:20:", SnapshotFns::Pg13), "W >= 10");
        assert_eq!(
            condition("10:20:10,14", SnapshotFns::TxidNoStatus)
                .replace("(SELECT txid_snapshot_xmax(txid_current_snapshot()))", "X"),
            "(X - (((X - xmin::text::bigint) % 4294967296) + 4294967296) % 4294967296) >= 10"
        );
        assert!(condition("10:20:10", SnapshotFns::Txid).contains("txid_status(p) = 'committed'"));
    }

    #[test]
    fn snapshot_functions_by_server_version() {
        assert_eq!(SnapshotFns::for_version(170002), SnapshotFns::Pg13);
        assert_eq!(SnapshotFns::for_version(130000), SnapshotFns::Pg13);
        assert_eq!(SnapshotFns::for_version(120015), SnapshotFns::Txid);
        assert_eq!(SnapshotFns::for_version(96024), SnapshotFns::TxidNoStatus);
        assert_eq!(
            SnapshotFns::Pg13.snapshot_sql(),
            "SELECT pg_current_snapshot()::text"
        );
        assert_eq!(
            SnapshotFns::Txid.snapshot_sql(),
            "SELECT txid_current_snapshot()::text"
        );
    }
}
