//! PURE: Clockwork-style `at` times, and the one EventBridge Scheduler expression that
//! wakes a job at least whenever it may run.
//!
//! A job is *due* when its `at` matches the current minute (in its `tz`) and its
//! frequency has passed since its last successful run. The schedule is only the alarm
//! clock: it fires at every minute the job could become due (rounded toward firing more
//! often, never less), and the handler checks [`At::matches`] and the frequency guard.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{Datelike, Timelike};

/// One `at` entry: `'12:30'`, `'**:15'`, `'09:**'`, `'Monday 12:00'`, `'mon **:30'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtEntry {
    /// 0 = Sunday .. 6 = Saturday (Clockwork's numbering).
    pub weekday: Option<u8>,
    /// `None` for `**`.
    pub hour: Option<u8>,
    /// `None` for `**`.
    pub minute: Option<u8>,
}

/// A job's `at`: matches when any entry matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At(pub Vec<AtEntry>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtError {
    pub entry: String,
    pub reason: String,
}

impl fmt::Display for AtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a Clockwork time: {} (write 'HH:MM', '**:MM', 'HH:**', optionally after a weekday: 'Monday 12:00')",
            self.entry, self.reason
        )
    }
}

const DAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

impl AtEntry {
    pub fn parse(text: &str) -> Result<AtEntry, AtError> {
        let error = |reason: &str| AtError {
            entry: text.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = text.trim();
        let (weekday, time) = match trimmed.split_once(char::is_whitespace) {
            Some((day, time)) => {
                let day = day.to_ascii_lowercase();
                let index = DAYS
                    .iter()
                    .position(|d| *d == day || (day.len() == 3 && d.starts_with(&day)))
                    .ok_or_else(|| error("unknown weekday"))?;
                (Some(index as u8), time.trim())
            }
            None => (None, trimmed),
        };
        let (h, m) = time
            .split_once(':')
            .ok_or_else(|| error("expected a colon"))?;
        let hour = match h {
            "*" | "**" => None,
            _ if (1..=2).contains(&h.len()) && h.chars().all(|c| c.is_ascii_digit()) => {
                let v: u8 = h.parse().map_err(|_| error("bad hour"))?;
                if v > 23 {
                    return Err(error("the hour is over 23"));
                }
                Some(v)
            }
            _ => return Err(error("the hour must be 0-23, or ** for every hour")),
        };
        let minute = match m {
            "**" if hour.is_some() => None,
            "**" => return Err(error("'**:**' is every minute; leave `at` out instead")),
            _ if m.len() == 2 && m.chars().all(|c| c.is_ascii_digit()) => {
                let v: u8 = m.parse().map_err(|_| error("bad minute"))?;
                if v > 59 {
                    return Err(error("the minute is over 59"));
                }
                Some(v)
            }
            _ => return Err(error("the minute must be two digits 00-59, or **")),
        };
        Ok(AtEntry {
            weekday,
            hour,
            minute,
        })
    }

    /// Whether the entry matches a local time (weekday 0 = Sunday).
    pub fn matches(&self, weekday: u8, hour: u8, minute: u8) -> bool {
        self.weekday.is_none_or(|d| d == weekday)
            && self.hour.is_none_or(|h| h == hour)
            && self.minute.is_none_or(|m| m == minute)
    }
}

impl At {
    pub fn parse(entries: &[String]) -> Result<At, AtError> {
        entries
            .iter()
            .map(|e| AtEntry::parse(e))
            .collect::<Result<_, _>>()
            .map(At)
    }

    /// Whether `at` matches the minute of `local` (a time in the job's zone).
    pub fn matches<T: Datelike + Timelike>(&self, local: &T) -> bool {
        let weekday = local.weekday().num_days_from_sunday() as u8;
        self.0
            .iter()
            .any(|e| e.matches(weekday, local.hour() as u8, local.minute() as u8))
    }
}

/// What to give EventBridge Scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// `rate(5 minutes)` or `cron(0/5 9,10 * * ? *)`.
    pub expression: String,
    /// IANA zone the expression is read in (`ScheduleExpressionTimezone`).
    pub timezone: String,
    /// What was rounded and why, when the expression is not exact.
    pub note: Option<String>,
}

/// The expression for a job: `rate(...)` without `at`, else one cron that fires at every
/// minute any entry can be due. `frequency` is in seconds (at least 60).
pub fn schedule(frequency: u64, at: Option<&At>, tz: Option<&str>) -> Schedule {
    let timezone = tz.unwrap_or("UTC").to_string();
    let minutes = (frequency / 60).max(1);
    let inexact = frequency % 60 != 0;
    let Some(at) = at.filter(|a| !a.0.is_empty()) else {
        let (n, unit) = if minutes % 1440 == 0 {
            (minutes / 1440, "day")
        } else if minutes % 60 == 0 {
            (minutes / 60, "hour")
        } else {
            (minutes, "minute")
        };
        let plural = if n == 1 { "" } else { "s" };
        return Schedule {
            expression: format!("rate({n} {unit}{plural})"),
            timezone,
            note: inexact.then(|| {
                format!("{frequency} s is not whole minutes: fires every {minutes} minute(s); the frequency guard keeps runs {frequency} s apart")
            }),
        };
    };
    // Minutes: explicit ones, plus, for hour windows ('HH:**'), a step that lands on every
    // minute a run can fall due: gcd(frequency in minutes, 60).
    let mut explicit: BTreeSet<u8> = BTreeSet::new();
    let mut step: Option<u64> = None;
    for e in &at.0 {
        match e.minute {
            Some(m) => {
                explicit.insert(m);
            }
            None => step = Some(gcd(minutes, 60)),
        }
    }
    let minute_field = match step {
        Some(g) => {
            let g = explicit.iter().fold(g, |acc, m| gcd(acc, *m as u64).max(1));
            let g = if g == 0 { 60 } else { g };
            match g {
                1 => "*".to_string(),
                60 => "0".to_string(),
                g => format!("0/{g}"),
            }
        }
        None => list(explicit.iter().map(|m| *m as u64)),
    };
    let hour_field = if at.0.iter().any(|e| e.hour.is_none()) {
        "*".to_string()
    } else {
        list(
            at.0.iter()
                .filter_map(|e| e.hour.map(u64::from))
                .collect::<BTreeSet<_>>()
                .into_iter(),
        )
    };
    let (dom, dow) = if at.0.iter().any(|e| e.weekday.is_none()) {
        ("*".to_string(), "?".to_string())
    } else {
        // EventBridge numbers days 1 = Sunday .. 7 = Saturday.
        (
            "?".to_string(),
            list(
                at.0.iter()
                    .filter_map(|e| e.weekday.map(|d| d as u64 + 1))
                    .collect::<BTreeSet<_>>()
                    .into_iter(),
            ),
        )
    };
    let combined = at.0.len() > 1
        && !(at
            .0
            .iter()
            .all(|e| e.weekday == at.0[0].weekday && e.minute == at.0[0].minute)
            || at
                .0
                .iter()
                .all(|e| e.weekday == at.0[0].weekday && e.hour == at.0[0].hour));
    let mut notes = Vec::new();
    if combined {
        notes.push(
            "one expression covers every `at` entry, so it can also fire at combinations no entry names; those wake-ups find the job not due".to_string(),
        );
    }
    if inexact {
        notes.push(format!(
            "{frequency} s is not whole minutes; the frequency guard keeps runs {frequency} s apart"
        ));
    }
    Schedule {
        expression: format!("cron({minute_field} {hour_field} {dom} * {dow} *)"),
        timezone,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

fn list(values: impl Iterator<Item = u64>) -> String {
    values.map(|v| v.to_string()).collect::<Vec<_>>().join(",")
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(entries: &[&str]) -> At {
        At::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn expr(frequency: u64, entries: &[&str]) -> String {
        let a = at(entries);
        schedule(frequency, (!entries.is_empty()).then_some(&a), None).expression
    }

    #[test]
    fn expressions_for_frequencies_and_times() {
        let cases: &[(u64, &[&str], &str)] = &[
            // No `at`: a rate in the largest whole unit.
            (60, &[], "rate(1 minute)"),
            (300, &[], "rate(5 minutes)"),
            (90, &[], "rate(1 minute)"),
            (3600, &[], "rate(1 hour)"),
            (5400, &[], "rate(90 minutes)"),
            (7200, &[], "rate(2 hours)"),
            (86400, &[], "rate(1 day)"),
            (172800, &[], "rate(2 days)"),
            (100000, &[], "rate(1666 minutes)"),
            // Daily at a time.
            (86400, &["12:00"], "cron(0 12 * * ? *)"),
            (86400, &["9:05"], "cron(5 9 * * ? *)"),
            (86400, &["00:00"], "cron(0 0 * * ? *)"),
            // Every hour at a minute.
            (3600, &["**:30"], "cron(30 * * * ? *)"),
            (3600, &["*:00"], "cron(0 * * * ? *)"),
            (60, &["**:15", "**:45"], "cron(15,45 * * * ? *)"),
            // Hour windows: as often as the frequency allows inside them.
            (60, &["12:**"], "cron(* 12 * * ? *)"),
            (300, &["12:**"], "cron(0/5 12 * * ? *)"),
            (900, &["09:**", "10:**"], "cron(0/15 9,10 * * ? *)"),
            (420, &["12:**"], "cron(* 12 * * ? *)"),
            (480, &["12:**"], "cron(0/4 12 * * ? *)"),
            (3600, &["12:**"], "cron(0 12 * * ? *)"),
            (86400, &["23:**"], "cron(0 23 * * ? *)"),
            (5400, &["08:**"], "cron(0/30 8 * * ? *)"),
            // Weekdays: EventBridge counts 1 = Sunday.
            (86400, &["Monday 12:00"], "cron(0 12 ? * 2 *)"),
            (86400, &["sunday 08:30"], "cron(30 8 ? * 1 *)"),
            (86400, &["Sat 23:59"], "cron(59 23 ? * 7 *)"),
            (3600, &["mon **:30"], "cron(30 * ? * 2 *)"),
            (600, &["Friday 17:**"], "cron(0/10 17 ? * 6 *)"),
            (
                86400,
                &["Monday 09:00", "Thursday 09:00"],
                "cron(0 9 ? * 2,5 *)",
            ),
            // Lists across days and kinds widen to one expression.
            (86400, &["Monday 09:00", "10:30"], "cron(0,30 9,10 * * ? *)"),
            (300, &["09:**", "**:30"], "cron(0/5 * * * ? *)"),
            (480, &["09:**", "12:30"], "cron(0/2 9,12 * * ? *)"),
            (86400, &["06:15", "18:45"], "cron(15,45 6,18 * * ? *)"),
        ];
        assert!(cases.len() >= 30);
        for (frequency, entries, expected) in cases {
            assert_eq!(
                &expr(*frequency, entries),
                expected,
                "{frequency} {entries:?}"
            );
        }
    }

    #[test]
    fn timezone_and_notes() {
        let s = schedule(86400, Some(&at(&["12:00"])), Some("Europe/London"));
        assert_eq!(s.timezone, "Europe/London");
        assert_eq!(s.note, None);
        let s = schedule(90, None, None);
        assert_eq!(s.timezone, "UTC");
        assert!(s.note.unwrap().contains("90 s is not whole minutes"));
        let s = schedule(86400, Some(&at(&["06:15", "18:45"])), None);
        assert!(s.note.unwrap().contains("combinations no entry names"));
        assert_eq!(
            schedule(86400, Some(&at(&["09:00", "10:00"])), None).note,
            None
        );
    }

    #[test]
    fn bad_times_are_quoted_in_the_error() {
        for (text, reason) in [
            ("25:00", "the hour is over 23"),
            ("12:60", "the minute is over 59"),
            ("12:5", "two digits"),
            ("noon", "expected a colon"),
            ("Funday 12:00", "unknown weekday"),
            ("**:**", "leave `at` out"),
            ("1200", "expected a colon"),
            ("ab:00", "the hour must be"),
        ] {
            let e = AtEntry::parse(text).unwrap_err();
            assert_eq!(e.entry, text);
            assert!(e.reason.contains(reason), "{text}: {e}");
            assert!(e
                .to_string()
                .starts_with(&format!("{text:?} is not a Clockwork time")));
        }
    }

    #[test]
    fn matching_follows_clockwork() {
        let a = at(&["Monday 12:00", "**:30", "09:**"]);
        // 2024-01-01 was a Monday.
        let t = |d: u32, h: u32, m: u32| {
            chrono::NaiveDate::from_ymd_opt(2024, 1, d)
                .unwrap()
                .and_hms_opt(h, m, 0)
                .unwrap()
        };
        assert!(a.matches(&t(1, 12, 0)));
        assert!(!a.matches(&t(2, 12, 0)), "Tuesday noon");
        assert!(a.matches(&t(2, 17, 30)));
        assert!(a.matches(&t(3, 9, 41)));
        assert!(!a.matches(&t(3, 10, 41)));
    }
}
