//! PURE: which passes a table's run makes over the source, and with which bounds, from
//! its stored mark.
//!
//! 1. **Catch-up** (when there is a mark and the source has `xmin`): the rows at or
//!    behind the mark written by transactions the earlier reads could not see (at or
//!    above the stored snapshot's `xmin`). Resumable: a catch-up cut short by the row
//!    limit or the deadline goes on from its own cursor in the next invocation.
//! 2. **Lookback** (opt-in, `LOADER_LOOKBACK_SECONDS`, a time key): re-reads that much
//!    behind the mark, whatever wrote it. Not in continuations.
//! 3. **Forward**: the rows after the mark, moving it.

use chrono::{DateTime, Utc};

use super::mark::{Mark, Snapshot};
use crate::config::CopyMode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassKind {
    CatchUp,
    Lookback,
    Forward,
}

/// A lower bound on the first key (see [`crate::source::query::Floor`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Floor {
    At(String),
    Before { value: String, seconds: u64 },
}

impl Floor {
    pub fn as_query(&self) -> crate::source::query::Floor<'_> {
        match self {
            Floor::At(v) => crate::source::query::Floor::At(v),
            Floor::Before { value, seconds } => crate::source::query::Floor::Before {
                value,
                seconds: *seconds,
            },
        }
    }
}

/// One pass over the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    pub kind: PassKind,
    /// Start after this cursor value.
    pub after: Option<Vec<String>>,
    pub floor: Option<Floor>,
    /// At or behind this cursor value (the mark).
    pub upto: Option<Vec<String>>,
    /// Only rows a read under this snapshot could not see (`None`: whatever wrote
    /// them).
    pub unseen: Option<Snapshot>,
    /// For the rows after this cursor value, only what a read under this (later)
    /// snapshot could not see.
    pub unseen_after: Option<(Vec<String>, Snapshot)>,
}

/// What the planner knows about the table.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub mode: CopyMode,
    /// The cursor's width (0 for a full copy without a primary key).
    pub keys: usize,
    /// The first key's base type is a time (`timestamp`, `timestamptz`, `date`), so
    /// windows on it are measured by the source in time.
    pub first_key_is_time: bool,
    /// Rows carry `xmin` (a table or a partitioned table; not a view, materialized view
    /// or foreign table).
    pub has_xmin: bool,
    /// The stored mark, when it fits this mode and cursor (the caller checks).
    pub mark: Option<&'a Mark>,
    /// This invocation continues an earlier one of the same run.
    pub continuation: bool,
    pub catchup_window_seconds: u64,
    pub lookback_seconds: u64,
    pub now: DateTime<Utc>,
}

/// The passes of a table's run, in order.
pub fn passes(i: &Inputs) -> Vec<Pass> {
    let forward = |after: Option<Vec<String>>| Pass {
        kind: PassKind::Forward,
        after,
        floor: None,
        upto: None,
        unseen: None,
        unseen_after: None,
    };
    let mark = match i.mark {
        Some(m) if i.mode != CopyMode::FullDataSync && i.keys > 0 && m.cursor.len() == i.keys => m,
        _ => return vec![forward(None)],
    };
    let mut passes = Vec::new();
    if i.has_xmin {
        let floor = if i.first_key_is_time {
            Some(Floor::Before {
                value: mark.cursor[0].clone(),
                seconds: i.catchup_window_seconds,
            })
        } else {
            mark.first_key_at(i.now, i.catchup_window_seconds)
                .map(|v| Floor::At(v.to_string()))
        };
        passes.push(Pass {
            kind: PassKind::CatchUp,
            after: mark.catchup.as_ref().map(|c| c.after.clone()),
            floor,
            upto: Some(mark.cursor.clone()),
            // A mark stored before snapshots were kept: everything in the window once.
            unseen: mark.snapshot.clone(),
            unseen_after: match (&mark.snapshot, &mark.split, &mark.forward_snapshot) {
                (Some(_), Some(split), Some(ahead)) if split.len() == i.keys => {
                    Some((split.clone(), ahead.clone()))
                }
                _ => None,
            },
        });
    }
    if i.lookback_seconds > 0 && i.first_key_is_time && !i.continuation {
        passes.push(Pass {
            kind: PassKind::Lookback,
            after: None,
            floor: Some(Floor::Before {
                value: mark.cursor[0].clone(),
                seconds: i.lookback_seconds,
            }),
            upto: Some(mark.cursor.clone()),
            unseen: None,
            unseen_after: None,
        });
    }
    passes.push(forward(Some(mark.cursor.clone())));
    passes
}

/// Base types whose windows the source measures in time.
pub fn is_time_type(base: &str) -> bool {
    matches!(base, "timestamp" | "timestamptz" | "date")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::mark::{CatchUp, Checkpoint};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn mark(cursor: &[&str], snapshot: Option<&str>) -> Mark {
        Mark {
            mode: CopyMode::InsertAndUpdate,
            keys: cursor.iter().map(|_| "k".to_string()).collect(),
            cursor: cursor.iter().map(|s| s.to_string()).collect(),
            snapshot: snapshot.map(|s| Snapshot::parse(s).unwrap()),
            split: None,
            forward_snapshot: None,
            catchup: None,
            checkpoints: Vec::new(),
        }
    }

    fn inputs(mark: Option<&Mark>) -> Inputs<'_> {
        Inputs {
            mode: CopyMode::InsertAndUpdate,
            keys: 2,
            first_key_is_time: true,
            has_xmin: true,
            mark,
            continuation: false,
            catchup_window_seconds: 86400,
            lookback_seconds: 0,
            now: now(),
        }
    }

    fn v(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn passes_for_each_kind_of_table() {
        let m = mark(&["2026-01-01 10:00:00+00", "7"], Some("100:105:101"));
        let catch_up = Pass {
            kind: PassKind::CatchUp,
            after: None,
            floor: Some(Floor::Before {
                value: "2026-01-01 10:00:00+00".into(),
                seconds: 86400,
            }),
            upto: v(&["2026-01-01 10:00:00+00", "7"]),
            unseen: Snapshot::parse("100:105:101"),
            unseen_after: None,
        };
        let forward = Pass {
            kind: PassKind::Forward,
            after: v(&["2026-01-01 10:00:00+00", "7"]),
            floor: None,
            upto: None,
            unseen: None,
            unseen_after: None,
        };
        let first_load = Pass {
            kind: PassKind::Forward,
            after: None,
            floor: None,
            upto: None,
            unseen: None,
            unseen_after: None,
        };
        let lookback = Pass {
            kind: PassKind::Lookback,
            after: None,
            floor: Some(Floor::Before {
                value: "2026-01-01 10:00:00+00".into(),
                seconds: 600,
            }),
            upto: v(&["2026-01-01 10:00:00+00", "7"]),
            unseen: None,
            unseen_after: None,
        };
        let cases: Vec<(&str, Inputs, Vec<Pass>)> = vec![
            ("first load", inputs(None), vec![first_load.clone()]),
            (
                "incremental: catch up, then forward",
                inputs(Some(&m)),
                vec![catch_up.clone(), forward.clone()],
            ),
            (
                "a view has no xmin: forward only",
                Inputs {
                    has_xmin: false,
                    ..inputs(Some(&m))
                },
                vec![forward.clone()],
            ),
            (
                "opt-in lookback after the catch-up",
                Inputs {
                    lookback_seconds: 600,
                    ..inputs(Some(&m))
                },
                vec![catch_up.clone(), lookback.clone(), forward.clone()],
            ),
            (
                "no lookback in a continuation",
                Inputs {
                    lookback_seconds: 600,
                    continuation: true,
                    ..inputs(Some(&m))
                },
                vec![catch_up.clone(), forward.clone()],
            ),
            (
                "a view with the lookback",
                Inputs {
                    lookback_seconds: 600,
                    has_xmin: false,
                    ..inputs(Some(&m))
                },
                vec![lookback.clone(), forward.clone()],
            ),
            (
                "a full copy reads everything",
                Inputs {
                    mode: CopyMode::FullDataSync,
                    ..inputs(Some(&m))
                },
                vec![first_load.clone()],
            ),
            (
                "a mark of another width is no mark",
                Inputs {
                    keys: 1,
                    ..inputs(Some(&m))
                },
                vec![first_load],
            ),
        ];
        for (name, i, expected) in cases {
            assert_eq!(passes(&i), expected, "{name}");
        }
    }

    #[test]
    fn a_catch_up_cut_short_goes_on_from_its_cursor() {
        let mut m = mark(&["2026-01-01 10:00:00+00", "7"], Some("100:105:101"));
        m.catchup = Some(CatchUp {
            snapshot: Snapshot::parse("120:120:").unwrap(),
            after: vec!["2026-01-01 09:00:00+00".into(), "3".into()],
        });
        let p = passes(&inputs(Some(&m)));
        assert_eq!(p[0].kind, PassKind::CatchUp);
        assert_eq!(p[0].after, v(&["2026-01-01 09:00:00+00", "3"]));
        // Still everything the stored snapshot could not see.
        assert_eq!(p[0].unseen, Snapshot::parse("100:105:101"));
    }

    #[test]
    fn integer_keys_are_bounded_by_where_the_mark_was_a_window_ago() {
        fn integer(m: &Mark) -> Inputs<'_> {
            Inputs {
                mode: CopyMode::InsertOnly,
                keys: 1,
                first_key_is_time: false,
                catchup_window_seconds: 3600,
                ..inputs(Some(m))
            }
        }
        let mut m = mark(&["900"], Some("100:100:"));
        assert_eq!(
            passes(&integer(&m))[0].floor,
            None,
            "younger than the window: unbounded"
        );
        let at = |minutes: i64, first: &str| Checkpoint {
            at: now() - chrono::Duration::minutes(minutes),
            first: first.into(),
        };
        m.checkpoints = vec![at(120, "100"), at(61, "400"), at(30, "800")];
        let p = passes(&integer(&m));
        assert_eq!(p[0].floor, Some(Floor::At("400".into())));
        assert_eq!(p[0].upto, v(&["900"]));
        assert_eq!(p[1].after, v(&["900"]));
    }

    #[test]
    fn the_rows_read_after_the_last_catch_up_are_asked_about_their_own_read() {
        let mut m = mark(&["2026-01-01 10:00:00+00", "7"], Some("100:105:101"));
        m.split = v(&["2026-01-01 09:00:00+00", "3"]);
        m.forward_snapshot = Snapshot::parse("110:110:");
        let p = passes(&inputs(Some(&m)));
        assert_eq!(
            p[0].unseen_after,
            Some((
                v(&["2026-01-01 09:00:00+00", "3"]).unwrap(),
                Snapshot::parse("110:110:").unwrap()
            ))
        );
    }

    #[test]
    fn a_mark_from_before_snapshots_catches_up_on_its_whole_window_once() {
        let m = mark(&["2026-01-01 10:00:00+00", "7"], None);
        assert_eq!(passes(&inputs(Some(&m)))[0].unseen, None);
    }

    #[test]
    fn time_types_are_base_types() {
        for t in ["timestamp", "timestamptz", "date"] {
            assert!(is_time_type(t), "{t}");
        }
        for t in [
            "int8",
            "numeric",
            "my_timestamp_domain",
            "timestamp with time zone",
        ] {
            assert!(!is_time_type(t), "{t}");
        }
    }
}
