//! PURE: what a table's mark remembers between runs: where the reads stopped, the
//! source snapshot they ran under, and enough history to bound the scan for late rows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::CopyMode;
pub use crate::source::snapshot::Snapshot;

/// Where the cursor's first key stood at a moment: for keys that are not times, the
/// catch-up scan reaches back to where the mark was one catch-up window ago.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub at: DateTime<Utc>,
    pub first: String,
}

/// A catch-up that did not finish in one invocation: the snapshot of its first read and
/// the cursor it reached. The next invocation goes on from there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchUp {
    pub snapshot: Snapshot,
    pub after: Vec<String>,
}

/// Where a table stopped in the source, stored after each committed chunk (the
/// `TABLE#` item's `mark` attribute), in the same DynamoDB write as its snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub mode: CopyMode,
    /// The cursor columns (source names), most significant first.
    pub keys: Vec<String>,
    /// Their values in the last loaded row, as the source prints them.
    pub cursor: Vec<String>,
    /// The snapshot of the earliest read that covered the rows at or behind `split`
    /// (behind the whole cursor when there is no split): every row version there not
    /// loaded yet is one a read under it could not see. `None` for marks stored before
    /// snapshots were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    /// Where the last catch-up stopped covering and the reads after the mark began: the
    /// rows after it, up to the cursor, were read under `forward_snapshot` (later than
    /// `snapshot`, so it could see more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_snapshot: Option<Snapshot>,
    /// A catch-up in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catchup: Option<CatchUp>,
    /// Where the first key stood over the last catch-up window (oldest first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<Checkpoint>,
}

/// How many checkpoints a window holds at most (one per 1/24 of it, plus the one that
/// opens it).
const CHECKPOINTS_PER_WINDOW: i64 = 24;

impl Mark {
    /// Records where the first key stands `now`: at most one checkpoint per 1/24 of the
    /// window, and none older than needed (the newest one at least `window` old is kept,
    /// since it bounds the next catch-up).
    pub fn checkpoint(&mut self, now: DateTime<Utc>, window_seconds: u64) {
        let Some(first) = self.cursor.first() else {
            return;
        };
        let window = chrono::Duration::seconds(window_seconds as i64);
        let spacing = window / CHECKPOINTS_PER_WINDOW as i32;
        if self
            .checkpoints
            .last()
            .is_none_or(|c| now - c.at >= spacing)
        {
            self.checkpoints.push(Checkpoint {
                at: now,
                first: first.clone(),
            });
        }
        if let Some(keep_from) = self.checkpoints.iter().rposition(|c| now - c.at >= window) {
            self.checkpoints.drain(..keep_from);
        }
    }

    /// Where the first key stood one `window` before `now`, if the mark is that old.
    pub fn first_key_at(&self, now: DateTime<Utc>, window_seconds: u64) -> Option<&str> {
        let window = chrono::Duration::seconds(window_seconds as i64);
        self.checkpoints
            .iter()
            .rev()
            .find(|c| now - c.at >= window)
            .map(|c| c.first.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::minutes(minutes)
    }

    fn mark(cursor: &str) -> Mark {
        Mark {
            mode: CopyMode::InsertOnly,
            keys: vec!["id".into()],
            cursor: vec![cursor.into()],
            snapshot: None,
            split: None,
            forward_snapshot: None,
            catchup: None,
            checkpoints: Vec::new(),
        }
    }

    #[test]
    fn checkpoints_are_spaced_and_pruned_to_one_window() {
        let window = 24 * 60; // 24 minutes: one checkpoint a minute
        let mut m = mark("0");
        for minute in 0..100 {
            m.cursor = vec![(minute * 10).to_string()];
            m.checkpoint(t(minute), window);
            // Twice in the same minute adds nothing.
            m.checkpoint(t(minute) + chrono::Duration::seconds(10), window);
        }
        // Minutes 75..=99, plus minute 75 is exactly 24 minutes before 99.
        assert_eq!(m.checkpoints.len(), 25);
        assert_eq!(m.checkpoints[0].at, t(75));
        assert_eq!(m.first_key_at(t(99), window), Some("750"));
        assert_eq!(
            m.first_key_at(t(99) + chrono::Duration::seconds(30), window),
            Some("750")
        );
        assert_eq!(m.first_key_at(t(100), window), Some("760"));
    }

    #[test]
    fn a_mark_younger_than_the_window_has_no_bound() {
        let mut m = mark("5");
        m.checkpoint(t(0), 3600);
        assert_eq!(m.first_key_at(t(59), 3600), None);
        assert_eq!(m.first_key_at(t(60), 3600), Some("5"));
    }

    #[test]
    fn marks_stored_before_snapshots_still_read() {
        let old = serde_json::json!({
            "mode": "INSERT_AND_UPDATE", "keys": ["updated_at", "id"],
            "cursor": ["2024-01-01 00:00:00+00", "7"], "null_cursor": ["3"]
        });
        let m: Mark = serde_json::from_value(old).unwrap();
        assert_eq!(
            (m.snapshot, m.catchup, m.checkpoints.len()),
            (None, None, 0)
        );
    }
}
