//! PURE: when an EventBridge Scheduler expression fires next.
//!
//! Reads `rate(N unit)` and six-field `cron(minutes hours day-of-month month
//! day-of-week year)` as EventBridge does (day-of-week 1 = Sunday or `SUN`..`SAT`,
//! months `1`-`12` or `JAN`..`DEC`, `*`, `?`, lists, ranges and `/` steps), in the
//! schedule's time zone. `L`, `W` and `#` are not read (the loader never writes them);
//! they are an error that says so. A rate has no phase of its own: it counts from an
//! anchor (the schedule's start or creation time).

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expression {
    Rate { minutes: i64 },
    Cron(Cron),
}

/// Allowed values per field; `None` for `?` (day-of-month or day-of-week left to the
/// other) and for an unrestricted year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Option<Vec<bool>>,
    months: Vec<bool>,
    weekdays: Option<Vec<bool>>,
    years: Option<Vec<bool>>,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const FIRST_YEAR: u32 = 1970;
const LAST_YEAR: u32 = 2199;

impl Expression {
    pub fn parse(text: &str) -> Result<Expression, String> {
        let text = text.trim();
        let inner = |prefix: &str| {
            text.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(')'))
                .map(str::trim)
        };
        if let Some(rate) = inner("rate(") {
            let (n, unit) = rate
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("{text:?}: expected rate(<number> <unit>)"))?;
            let n: i64 = n
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{text:?}: the rate must be a positive number"))?;
            let per = match unit.trim() {
                "minute" | "minutes" => 1,
                "hour" | "hours" => 60,
                "day" | "days" => 1440,
                u => return Err(format!("{text:?}: unknown unit {u:?}")),
            };
            return Ok(Expression::Rate { minutes: n * per });
        }
        if let Some(cron) = inner("cron(") {
            return Cron::parse(cron)
                .map(Expression::Cron)
                .map_err(|e| format!("{text:?}: {e}"));
        }
        Err(format!(
            "{text:?}: not a rate(...) or cron(...) expression (at(...) one-time schedules are not used by the loader)"
        ))
    }

    /// The next `n` firing times strictly after `after`. A rate needs its `anchor`; without
    /// one the answer is empty.
    pub fn next(
        &self,
        tz: Tz,
        after: DateTime<Utc>,
        anchor: Option<DateTime<Utc>>,
        n: usize,
    ) -> Vec<DateTime<Utc>> {
        match self {
            Expression::Rate { minutes } => {
                let Some(anchor) = anchor else {
                    return Vec::new();
                };
                let step = Duration::minutes(*minutes);
                let mut t = anchor;
                if t <= after {
                    let periods = (after - anchor).num_seconds() / step.num_seconds() + 1;
                    t = anchor + step * periods as i32;
                }
                (0..n).map(|i| t + step * i as i32).collect()
            }
            Expression::Cron(c) => c.next(tz, after, n),
        }
    }
}

impl Cron {
    fn parse(text: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minutes, hours, days, months, weekdays, years] = fields[..] else {
            return Err(format!(
                "expected six fields (minutes hours day-of-month month day-of-week year), got {}",
                fields.len()
            ));
        };
        let days = optional(days, "day-of-month", 1, 31, &[])?;
        let weekdays = optional(weekdays, "day-of-week", 1, 7, &WEEKDAYS)?;
        match (&days, &weekdays) {
            (None, None) => return Err("day-of-month and day-of-week cannot both be '?'".into()),
            (Some(_), Some(_)) => {
                return Err("one of day-of-month and day-of-week must be '?'".into())
            }
            _ => {}
        }
        Ok(Cron {
            minutes: field(minutes, "minutes", 0, 59, &[])?,
            hours: field(hours, "hours", 0, 23, &[])?,
            days,
            months: field(months, "month", 1, 12, &MONTHS)?,
            weekdays,
            years: if years == "*" {
                None
            } else {
                Some(field(years, "year", FIRST_YEAR, LAST_YEAR, &[])?)
            },
        })
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let year_ok = self.years.as_ref().is_none_or(|y| {
            (FIRST_YEAR..=LAST_YEAR).contains(&(date.year() as u32))
                && y[(date.year() as u32 - FIRST_YEAR) as usize]
        });
        year_ok
            && self.months[date.month() as usize - 1]
            && self
                .days
                .as_ref()
                .is_none_or(|d| d[date.day() as usize - 1])
            && self
                .weekdays
                .as_ref()
                .is_none_or(|w| w[date.weekday().num_days_from_sunday() as usize])
    }

    fn next(&self, tz: Tz, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut date = after.with_timezone(&tz).date_naive();
        // Five years of days holds any fire a six-field expression without a year list
        // can have (29 February included).
        for _ in 0..(5 * 366) {
            if self.day_matches(date) {
                for hour in (0..24).filter(|h| self.hours[*h as usize]) {
                    for minute in (0..60).filter(|m| self.minutes[*m as usize]) {
                        let local = date.and_hms_opt(hour, minute, 0).expect("valid time");
                        // A local time skipped by a DST change does not fire; a repeated
                        // one fires once, at its first occurrence.
                        let Some(t) = tz.from_local_datetime(&local).earliest() else {
                            continue;
                        };
                        let t = t.with_timezone(&Utc);
                        if t > after {
                            out.push(t);
                            if out.len() == n {
                                return out;
                            }
                        }
                    }
                }
            }
            match date.succ_opt() {
                Some(d) => date = d,
                None => break,
            }
        }
        out
    }
}

/// `?` → `None`; otherwise the field's allowed values.
fn optional(
    text: &str,
    name: &str,
    min: u32,
    max: u32,
    names: &[&str],
) -> Result<Option<Vec<bool>>, String> {
    if text == "?" {
        Ok(None)
    } else {
        field(text, name, min, max, names).map(Some)
    }
}

/// One field: `*`, `5`, `1-5`, `0/15`, `*/15`, `10-40/10`, `MON-FRI`, lists of those.
/// Index 0 of the result is `min`.
fn field(text: &str, name: &str, min: u32, max: u32, names: &[&str]) -> Result<Vec<bool>, String> {
    let mut allowed = vec![false; (max - min + 1) as usize];
    let value = |v: &str| -> Result<u32, String> {
        let upper = v.to_ascii_uppercase();
        if let Some(i) = names.iter().position(|n| *n == upper) {
            return Ok(i as u32 + min);
        }
        if v.chars().any(|c| matches!(c, 'L' | 'W' | '#')) {
            return Err(format!(
                "{name}: {v:?} uses L, W or # which this reader does not evaluate"
            ));
        }
        let n: u32 = v
            .parse()
            .map_err(|_| format!("{name}: {v:?} is not a number"))?;
        if n < min || n > max {
            return Err(format!("{name}: {n} is outside {min}-{max}"));
        }
        Ok(n)
    };
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{name}: bad step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                // `5/15` runs from 5 to the end of the range.
                None if part.contains('/') => (value(r)?, max),
                None => {
                    let v = value(r)?;
                    (v, v)
                }
            },
        };
        if from > to {
            return Err(format!("{name}: the range {range:?} runs backwards"));
        }
        for v in (from..=to).step_by(step as usize) {
            allowed[(v - min) as usize] = true;
        }
    }
    Ok(allowed)
}

/// `2026-11-25 09:15 Europe/London (in 2h 3m)`-style rendering for the CLI.
pub fn describe(t: DateTime<Utc>, tz: Tz, now: DateTime<Utc>) -> String {
    let local = t.with_timezone(&tz);
    let wait = (t - now).num_minutes().max(0);
    let wait = if wait >= 1440 {
        format!("{}d {}h", wait / 1440, wait % 1440 / 60)
    } else if wait >= 60 {
        format!("{}h {}m", wait / 60, wait % 60)
    } else {
        format!("{wait}m")
    };
    format!(
        "{} {:02}:{:02} (in {wait})",
        local.date_naive(),
        local.hour(),
        local.minute()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
        Expression::parse(expr)
            .unwrap()
            .next(tz.parse().unwrap(), utc(after), None, n)
            .into_iter()
            .map(|t| t.to_rfc3339())
            .collect()
    }

    #[test]
    fn cron_fires_where_eventbridge_would() {
        // (expression, tz, after, expected next fires in UTC)
        let cases: &[(&str, &str, &str, &[&str])] = &[
            (
                "cron(0/15 9,10 * * ? *)",
                "UTC",
                "2026-11-25T10:40:00Z",
                &["2026-11-25T10:45:00+00:00", "2026-11-26T09:00:00+00:00"],
            ),
            (
                "cron(0/15 9,10 * * ? *)",
                "Europe/London",
                "2026-07-01T07:50:00Z",
                &["2026-07-01T08:00:00+00:00", "2026-07-01T08:15:00+00:00"],
            ),
            // 2 = Monday; 2026-11-25 is a Wednesday.
            (
                "cron(0 12 ? * 2 *)",
                "UTC",
                "2026-11-25T00:00:00Z",
                &["2026-11-30T12:00:00+00:00", "2026-12-07T12:00:00+00:00"],
            ),
            (
                "cron(30 * ? * MON-FRI *)",
                "UTC",
                "2026-11-27T23:45:00Z",
                &["2026-11-30T00:30:00+00:00"],
            ),
            (
                "cron(0 0 1 JAN,JUL ? 2027)",
                "UTC",
                "2026-11-25T00:00:00Z",
                &["2027-01-01T00:00:00+00:00", "2027-07-01T00:00:00+00:00"],
            ),
            (
                "cron(0 0 29 2 ? *)",
                "UTC",
                "2026-11-25T00:00:00Z",
                &["2028-02-29T00:00:00+00:00"],
            ),
            // 01:30 on 2026-03-29 does not exist in London (clocks go 01:00 → 02:00).
            (
                "cron(30 1 * * ? *)",
                "Europe/London",
                "2026-03-28T02:00:00Z",
                &["2026-03-30T00:30:00+00:00"],
            ),
            (
                "cron(10-40/10 8 * * ? *)",
                "UTC",
                "2026-11-25T08:15:00Z",
                &["2026-11-25T08:20:00+00:00", "2026-11-25T08:30:00+00:00"],
            ),
        ];
        for (expr, tz, after, want) in cases {
            assert_eq!(next(expr, tz, after, want.len()), *want, "{expr} in {tz}");
        }
    }

    #[test]
    fn a_rate_counts_from_its_anchor() {
        let e = Expression::parse("rate(15 minutes)").unwrap();
        let anchor = utc("2026-11-25T10:07:00Z");
        let fires = e.next(Tz::UTC, utc("2026-11-25T10:40:00Z"), Some(anchor), 2);
        assert_eq!(
            fires,
            vec![utc("2026-11-25T10:52:00Z"), utc("2026-11-25T11:07:00Z")]
        );
        let fires = e.next(Tz::UTC, utc("2026-11-25T09:00:00Z"), Some(anchor), 1);
        assert_eq!(fires, vec![anchor]);
        assert!(e.next(Tz::UTC, anchor, None, 2).is_empty());
        assert_eq!(
            Expression::parse("rate(1 day)").unwrap(),
            Expression::Rate { minutes: 1440 }
        );
    }

    #[test]
    fn what_cannot_be_read_says_why() {
        for (expr, want) in [
            ("cron(0 12 * * ?)", "expected six fields"),
            ("cron(0 12 * * 2 *)", "must be '?'"),
            ("cron(0 12 ? * ? *)", "cannot both be '?'"),
            ("cron(0 25 * * ? *)", "hours: 25 is outside 0-23"),
            ("cron(0 12 ? * 6#3 *)", "L, W or #"),
            (
                "cron(0 12 ? * FOO *)",
                "day-of-week: \"FOO\" is not a number",
            ),
            ("rate(0 minutes)", "positive number"),
            ("rate(5 weeks)", "unknown unit"),
            ("at(2026-11-25T10:00:00)", "not a rate(...) or cron(...)"),
        ] {
            let err = Expression::parse(expr).unwrap_err();
            assert!(err.contains(want), "{expr}: {err}");
        }
    }

    #[test]
    fn every_expression_the_loader_writes_can_be_read() {
        use crate::schedule::{schedule, At};
        for (freq, at) in [
            (300, vec![]),
            (900, vec!["09:**", "10:**"]),
            (3600, vec!["Monday 12:00", "Friday 17:30"]),
            (420, vec!["**:30", "12:**"]),
        ] {
            let at = At::parse(&at.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
            let s = schedule(freq, Some(&at), Some("America/New_York"));
            let e = Expression::parse(&s.expression).unwrap();
            let fires = e.next(
                s.timezone.parse().unwrap(),
                utc("2026-11-25T00:00:00Z"),
                Some(utc("2026-11-24T00:00:00Z")),
                3,
            );
            assert_eq!(fires.len(), 3, "{}", s.expression);
            // A cron from `at` fires only on days and at hours some entry names (one
            // expression for several entries can combine them: see schedule.rs).
            if !at.0.is_empty() {
                for f in fires {
                    let local = f.with_timezone(&"America/New_York".parse::<Tz>().unwrap());
                    let day = local.weekday().num_days_from_sunday();
                    let day_ok =
                        at.0.iter()
                            .any(|e| e.weekday.is_none_or(|d| d as u32 == day));
                    let hour_ok =
                        at.0.iter()
                            .any(|e| e.hour.is_none_or(|h| h as u32 == local.hour()));
                    assert!(day_ok && hour_ok, "{} fires at {local}", s.expression);
                }
            }
        }
    }

    #[test]
    fn describe_shows_local_time_and_wait() {
        let now = utc("2026-11-25T10:00:00Z");
        assert_eq!(
            describe(utc("2026-11-25T12:03:00Z"), Tz::Europe__Paris, now),
            "2026-11-25 13:03 (in 2h 3m)"
        );
        assert_eq!(
            describe(utc("2026-11-27T10:00:00Z"), Tz::UTC, now),
            "2026-11-27 10:00 (in 2d 0h)"
        );
    }
}
