//! Which keys are on one side only, at a cost proportional to the difference: compare
//! per key range a count and a hash (computed inside each database), and descend only
//! into ranges that differ, down to key lists.
//!
//! The first ranges come from the source's key order (one scan of its key index
//! returns every n-th key). A range that differs is cut again by the side that holds
//! more of it, until it holds at most `leaf_keys` keys on each side; then both sides
//! list its keys and the lists are diffed. Per range, each side runs one indexed range
//! count (`COUNT`, `SUM` of a hash of the key) and ships one row; a differing range
//! costs one more scan to cut it, and a leaf ships its keys. A table with `d` differing
//! keys ships about `d × leaf_keys` keys, not the table.

use std::collections::HashMap;

use super::sql::{Key, Range};

/// One side of the comparison (a database, or a set in tests).
#[allow(async_fn_in_trait)]
pub trait KeySide {
    type Error;
    /// `(count, hash sum)` per range, in order.
    async fn summaries(&self, ranges: &[Range]) -> Result<Vec<(i64, i64)>, Self::Error>;
    /// Every `every`-th key of `range` after its first, in key order.
    async fn boundaries(&self, range: &Range, every: u64) -> Result<Vec<Key>, Self::Error>;
    /// The keys of `range`, in key order; each followed by its row's content digest
    /// when [`KeySide::digests`].
    async fn keys(&self, range: &Range) -> Result<Vec<Key>, Self::Error>;
    /// Listed keys end with a digest of the row's content (compared as well).
    fn digests(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Keys per first range.
    pub range_keys: u64,
    /// Parts a differing range is cut into.
    pub fan_out: u64,
    /// A range with at most this many keys on both sides is listed.
    pub leaf_keys: u64,
    /// Ranges per summary query.
    pub batch: usize,
    /// Start no batch of ranges after this instant (a Lambda's deadline): the diff is
    /// then `unfinished`, what it lists found.
    pub stop_at: Option<std::time::Instant>,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            range_keys: 50_000,
            fan_out: 16,
            leaf_keys: 1_000,
            batch: 64,
            stop_at: None,
        }
    }
}

/// What the comparison found, and what it cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyDiff {
    /// Keys at the source only, in the source's order.
    pub only_source: Vec<Key>,
    /// Keys in Redshift only, in Redshift's order.
    pub only_redshift: Vec<Key>,
    /// Keys on both sides whose rows differ in content (when content is compared).
    pub differ: Vec<Key>,
    /// Keys Redshift holds more than once (it does not enforce primary keys), once each.
    pub duplicated: Vec<Key>,
    /// Ranges summarized on each side.
    pub ranges: u64,
    /// Keys shipped from both sides (boundaries and leaf lists).
    pub keys_transferred: u64,
    /// Rows within the compared range on each side (from the first ranges' counts).
    pub source_rows: u64,
    pub redshift_rows: u64,
    /// Stopped at `Tuning::stop_at` with ranges left: the keys listed are differences,
    /// but not all of them.
    pub unfinished: bool,
}

/// Compares the keys of `source` and `redshift` within `within`.
pub async fn compare<S, R, E>(
    source: &S,
    redshift: &R,
    within: &Range,
    tuning: Tuning,
) -> Result<KeyDiff, E>
where
    S: KeySide<Error = E>,
    R: KeySide<Error = E>,
{
    let mut diff = KeyDiff::default();
    let first = source.boundaries(within, tuning.range_keys.max(1)).await?;
    diff.keys_transferred += first.len() as u64;
    let mut pending = cut(within, first);
    // The first ranges cover `within`: their counts are each side's rows.
    let mut first_level = pending.len();
    while !pending.is_empty() {
        if tuning
            .stop_at
            .is_some_and(|at| std::time::Instant::now() >= at)
        {
            diff.unfinished = true;
            break;
        }
        let batch: Vec<Range> = pending
            .drain(..pending.len().min(tuning.batch.max(1)))
            .collect();
        let ours = source.summaries(&batch).await?;
        let theirs = redshift.summaries(&batch).await?;
        diff.ranges += batch.len() as u64;
        for ((range, s), r) in batch.into_iter().zip(ours).zip(theirs) {
            if first_level > 0 {
                first_level -= 1;
                diff.source_rows += s.0.max(0) as u64;
                diff.redshift_rows += r.0.max(0) as u64;
            }
            if s == r {
                continue;
            }
            let (ns, nr) = (s.0.max(0) as u64, r.0.max(0) as u64);
            if ns.max(nr) > tuning.leaf_keys.max(1) {
                let every = ns.max(nr).div_ceil(tuning.fan_out.max(2));
                let bounds = if ns >= nr {
                    source.boundaries(&range, every).await?
                } else {
                    redshift.boundaries(&range, every).await?
                };
                diff.keys_transferred += bounds.len() as u64;
                let parts = cut(&range, bounds);
                if parts.len() > 1 && !parts.contains(&range) {
                    pending.extend(parts);
                    continue;
                }
                // No cut makes it smaller: one key many times over (Redshift does not
                // enforce primary keys). Listed as it is, however long.
            }
            let a = listed(source.keys(&range).await?, source.digests());
            let b = listed(redshift.keys(&range).await?, redshift.digests());
            diff.keys_transferred += (a.len() + b.len()) as u64;
            let (only_a, only_b, differ) = set_difference(&a, &b);
            diff.only_source.extend(only_a);
            diff.only_redshift.extend(only_b);
            diff.differ.extend(differ);
            diff.duplicated.extend(repeated(&b));
        }
    }
    Ok(diff)
}

/// `range` cut at `bounds` (in key order, each inside it); a bound equal to the one
/// before it (a key Redshift holds twice) cuts nothing.
fn cut(range: &Range, bounds: Vec<Key>) -> Vec<Range> {
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut lo = range.lo.clone();
    for b in bounds {
        if lo.as_ref() == Some(&b) {
            continue;
        }
        out.push(Range {
            lo,
            hi: Some(b.clone()),
        });
        lo = Some(b);
    }
    out.push(Range {
        lo,
        hi: range.hi.clone(),
    });
    out
}

/// Keys listed more than once (lists are in key order), once each.
fn repeated(listed: &[Listed]) -> Vec<Key> {
    let mut out: Vec<Key> = Vec::new();
    for pair in listed.windows(2) {
        if pair[0].0 == pair[1].0 && out.last() != Some(&pair[0].0) {
            out.push(pair[0].0.clone());
        }
    }
    out
}

/// A listed key and its row's digest (when the side lists one).
type Listed = (Key, Option<String>);

fn listed(rows: Vec<Key>, digests: bool) -> Vec<Listed> {
    rows.into_iter()
        .map(|mut r| {
            let digest = if digests { r.pop() } else { None };
            (r, digest)
        })
        .collect()
}

/// Keys in `a` only, in `b` only (each in its own order), and in both with different
/// digests (in `a`'s order).
fn set_difference(a: &[Listed], b: &[Listed]) -> (Vec<Key>, Vec<Key>, Vec<Key>) {
    let in_a: HashMap<&Key, &Option<String>> = a.iter().map(|(k, d)| (k, d)).collect();
    let in_b: HashMap<&Key, &Option<String>> = b.iter().map(|(k, d)| (k, d)).collect();
    (
        a.iter()
            .filter(|(k, _)| !in_b.contains_key(k))
            .map(|(k, _)| k.clone())
            .collect(),
        b.iter()
            .filter(|(k, _)| !in_a.contains_key(k))
            .map(|(k, _)| k.clone())
            .collect(),
        a.iter()
            .filter(|(k, d)| in_b.get(k).is_some_and(|theirs| *theirs != d))
            .map(|(k, _)| k.clone())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A side held in memory: integer keys, with the same hash rule as the SQL.
    /// Sorted, and may hold a key more than once (as Redshift may).
    struct Set {
        keys: Vec<i64>,
        shipped: Cell<u64>,
    }

    impl Set {
        fn new(keys: impl IntoIterator<Item = i64>) -> Set {
            let mut keys: Vec<i64> = keys.into_iter().collect();
            keys.sort_unstable();
            Set {
                keys,
                shipped: Cell::new(0),
            }
        }

        fn within(&self, r: &Range) -> Vec<i64> {
            let lo = r.lo.as_ref().map(|k| k[0].parse::<i64>().unwrap());
            let hi = r.hi.as_ref().map(|k| k[0].parse::<i64>().unwrap());
            self.keys
                .iter()
                .copied()
                .filter(|k| lo.is_none_or(|lo| *k >= lo) && hi.is_none_or(|hi| *k < hi))
                .collect()
        }
    }

    fn hash(k: i64) -> i64 {
        // Any deterministic spread will do in memory.
        (k.wrapping_mul(0x9E37_79B9) >> 3) & 0xFFFF_FFFF
    }

    impl KeySide for Set {
        type Error = ();
        async fn summaries(&self, ranges: &[Range]) -> Result<Vec<(i64, i64)>, ()> {
            Ok(ranges
                .iter()
                .map(|r| {
                    let ks = self.within(r);
                    (ks.len() as i64, ks.iter().map(|k| hash(*k)).sum())
                })
                .collect())
        }
        async fn boundaries(&self, range: &Range, every: u64) -> Result<Vec<Key>, ()> {
            let ks = self.within(range);
            let b: Vec<Key> = ks
                .iter()
                .enumerate()
                .filter(|(i, _)| i % every as usize == 0 && *i > 0)
                .map(|(_, k)| vec![k.to_string()])
                .collect();
            self.shipped.set(self.shipped.get() + b.len() as u64);
            Ok(b)
        }
        async fn keys(&self, range: &Range) -> Result<Vec<Key>, ()> {
            let ks = self.within(range);
            self.shipped.set(self.shipped.get() + ks.len() as u64);
            Ok(ks.iter().map(|k| vec![k.to_string()]).collect())
        }
    }

    fn run(a: &Set, b: &Set, tuning: Tuning) -> KeyDiff {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(compare(a, b, &Range::default(), tuning))
            .unwrap()
    }

    fn keys(ks: &[i64]) -> Vec<Key> {
        ks.iter().map(|k| vec![k.to_string()]).collect()
    }

    #[test]
    fn equal_sides_cost_one_summary_per_range_and_ship_only_boundaries() {
        let a = Set::new(1..=100_000);
        let b = Set::new(1..=100_000);
        let d = run(&a, &b, Tuning::default());
        assert!(d.only_source.is_empty() && d.only_redshift.is_empty());
        assert_eq!(d.ranges, 2, "100,000 keys in ranges of 50,000");
        assert_eq!(d.keys_transferred, 1);
        assert_eq!((d.source_rows, d.redshift_rows), (100_000, 100_000));
    }

    #[test]
    fn a_few_deletes_are_found_by_shipping_a_few_thousand_keys_not_the_table() {
        let source = Set::new((1..=200_000).filter(|k| ![7, 77_777, 150_001].contains(k)));
        let redshift = Set::new(1..=200_000);
        let d = run(&source, &redshift, Tuning::default());
        assert_eq!(d.only_redshift, keys(&[7, 77_777, 150_001]));
        assert!(d.only_source.is_empty());
        assert!(
            d.keys_transferred < 3 * 2 * 1_000 + 200,
            "{}",
            d.keys_transferred
        );
    }

    #[test]
    fn both_kinds_of_drift_and_a_side_that_lost_everything() {
        let source = Set::new((1..=10_000).chain([20_000]));
        let redshift = Set::new((1..=10_000).filter(|k| *k != 5_000).chain(30_000..30_010));
        let d = run(
            &source,
            &redshift,
            Tuning {
                range_keys: 1_000,
                ..Tuning::default()
            },
        );
        assert_eq!(d.only_source, keys(&[5_000, 20_000]));
        assert_eq!(d.only_redshift, keys(&(30_000..30_010).collect::<Vec<_>>()));

        // Everything deleted at the source: Redshift's own order cuts the range.
        let empty = Set::new([]);
        let full = Set::new(1..=5_000);
        let d = run(
            &empty,
            &full,
            Tuning {
                leaf_keys: 100,
                ..Tuning::default()
            },
        );
        assert_eq!(d.only_redshift.len(), 5_000);
    }

    #[test]
    fn a_key_held_many_times_ends_the_descent_instead_of_looping() {
        let source = Set::new([1, 2, 3]);
        let redshift = Set::new([1, 2, 3].into_iter().chain(std::iter::repeat_n(2, 5_000)));
        let d = run(
            &source,
            &redshift,
            Tuning {
                leaf_keys: 100,
                ..Tuning::default()
            },
        );
        assert!(
            d.only_source.is_empty() && d.only_redshift.is_empty(),
            "{d:?}"
        );
        assert!(d.ranges < 50, "{}", d.ranges);
    }

    #[test]
    fn past_its_stop_it_starts_no_batch_and_says_it_is_unfinished() {
        let source = Set::new(1..=10_000);
        let redshift = Set::new((1..=10_000).filter(|k| k % 1_000 != 0));
        let tuning = Tuning {
            range_keys: 1_000,
            leaf_keys: 100,
            batch: 4,
            ..Tuning::default()
        };
        let whole = run(&source, &redshift, tuning);
        assert_eq!(whole.only_source.len(), 10);
        assert!(!whole.unfinished);
        let stopped = run(
            &source,
            &redshift,
            Tuning {
                stop_at: Some(std::time::Instant::now()),
                ..tuning
            },
        );
        assert!(stopped.unfinished);
        assert_eq!(stopped.ranges, 0);
        assert!(stopped.only_source.is_empty());
    }
}
