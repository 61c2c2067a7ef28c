//! PURE: COPY's `DATEFORMAT` / `TIMEFORMAT` — Redshift's format strings (`YYYY`, `YY`,
//! `MM`, `MON`, `DD`, `HH`/`HH24`, `HH12`, `MI`, `SS` with fractions, `AM`/`PM`, and
//! separators), `'epochsecs'` / `'epochmillisecs'`, and the defaults that apply when the
//! option is absent. A matched value becomes ISO text the backend parses exactly;
//! `'auto'` leaves the value to the backend, as Redshift's own recognition is broad.

/// How COPY reads the values of one kind of column (date, or timestamp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// `'auto'`: the backend parses (after the Redshift-only refusals in `load.rs`).
    Auto,
    /// Seconds since 1970-01-01 00:00:00 UTC.
    EpochSecs,
    /// Milliseconds since 1970-01-01 00:00:00 UTC.
    EpochMillis,
    /// A format string, with its original text for error messages.
    Pattern { text: String, parts: Vec<Part> },
}

/// One element of a format string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Year4,
    Year2,
    Month,
    MonthName,
    Day,
    Hour24,
    Hour12,
    Minute,
    /// Seconds, with an optional fraction of up to six digits.
    Second,
    Meridian,
    Literal(char),
}

/// The date of a column without `DATEFORMAT`.
pub const DEFAULT_DATE: &str = "YYYY-MM-DD";
/// The timestamp of a column without `TIMEFORMAT` (Redshift's spelling of it).
pub const DEFAULT_TIME: &str = "YYYY-MM-DD HH24:MI:SS";

impl TimeFormat {
    /// Reads the option value: `auto`, `epochsecs`, `epochmillisecs` (the last two only
    /// for TIMEFORMAT), or a format string.
    pub fn parse(value: &str, timestamps: bool) -> Result<TimeFormat, String> {
        match value.to_ascii_lowercase().as_str() {
            "auto" => Ok(TimeFormat::Auto),
            "epochsecs" if timestamps => Ok(TimeFormat::EpochSecs),
            "epochmillisecs" if timestamps => Ok(TimeFormat::EpochMillis),
            _ => Ok(TimeFormat::Pattern {
                text: value.to_string(),
                parts: parse_parts(value)?,
            }),
        }
    }

    /// What applies when the option is absent.
    pub fn default_for(timestamps: bool) -> TimeFormat {
        let text = if timestamps {
            DEFAULT_TIME
        } else {
            DEFAULT_DATE
        };
        TimeFormat::Pattern {
            text: text.to_string(),
            parts: parse_parts(text).expect("the default formats parse"),
        }
    }

    /// The text to name this format by in a load error.
    pub fn label(&self) -> &str {
        match self {
            TimeFormat::Auto => "auto",
            TimeFormat::EpochSecs => "epochsecs",
            TimeFormat::EpochMillis => "epochmillisecs",
            TimeFormat::Pattern { text, .. } => text,
        }
    }
}

fn parse_parts(format: &str) -> Result<Vec<Part>, String> {
    const NAMED: [(&str, Part); 12] = [
        ("YYYY", Part::Year4),
        ("YY", Part::Year2),
        ("MON", Part::MonthName),
        ("MM", Part::Month),
        ("MI", Part::Minute),
        ("DD", Part::Day),
        ("HH24", Part::Hour24),
        ("HH12", Part::Hour12),
        ("HH", Part::Hour24),
        ("SS", Part::Second),
        ("AM", Part::Meridian),
        ("PM", Part::Meridian),
    ];
    let upper = format.to_ascii_uppercase();
    let mut rest = upper.as_str();
    let mut parts = Vec::new();
    'outer: while let Some(c) = rest.chars().next() {
        for (name, part) in NAMED {
            if let Some(tail) = rest.strip_prefix(name) {
                parts.push(part);
                rest = tail;
                continue 'outer;
            }
        }
        if c.is_ascii_alphanumeric() {
            return Err(format!(
                "invalid datetime format string '{format}' at '{rest}'"
            ));
        }
        parts.push(Part::Literal(c));
        rest = &rest[c.len_utf8()..];
    }
    Ok(parts)
}

/// A date and time read from a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micros: u32,
    /// UTC offset in minutes, when the value carried one.
    pub offset: Option<i32>,
}

impl Civil {
    /// ISO text: `YYYY-MM-DD`, or `YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]`.
    pub fn iso(&self, with_time: bool) -> String {
        let mut out = format!("{:04}-{:02}-{:02}", self.year, self.month, self.day);
        if with_time {
            out.push_str(&format!(
                " {:02}:{:02}:{:02}",
                self.hour, self.minute, self.second
            ));
            if self.micros > 0 {
                out.push_str(&format!(".{:06}", self.micros));
            }
            if let Some(off) = self.offset {
                let sign = if off < 0 { '-' } else { '+' };
                out.push_str(&format!(
                    "{sign}{:02}:{:02}",
                    off.abs() / 60,
                    off.abs() % 60
                ));
            }
        }
        out
    }
}

/// Reads `value` with a pattern; `with_offset` allows a trailing UTC offset (the
/// default TIMESTAMPTZ format is `YYYY-MM-DD HH:MI:SSOF`). `None` when it does not
/// match or names an impossible date or time.
pub fn read(parts: &[Part], value: &str, with_offset: bool) -> Option<Civil> {
    let mut c = Civil {
        month: 1,
        day: 1,
        ..Civil::default()
    };
    let mut pm = None;
    let mut twelve = false;
    let mut rest = value.trim();
    for part in parts {
        match *part {
            Part::Literal(l) => rest = rest.strip_prefix(l)?,
            Part::Year4 => c.year = digits(&mut rest, 4, 4)? as i64,
            Part::Year2 => {
                let y = digits(&mut rest, 2, 2)? as i64;
                c.year = if y < 70 { 2000 + y } else { 1900 + y };
            }
            Part::Month => c.month = digits(&mut rest, 1, 2)?,
            Part::MonthName => c.month = month_name(&mut rest)?,
            Part::Day => c.day = digits(&mut rest, 1, 2)?,
            Part::Hour24 => c.hour = digits(&mut rest, 1, 2)?,
            Part::Hour12 => {
                c.hour = digits(&mut rest, 1, 2)?;
                twelve = true;
            }
            Part::Minute => c.minute = digits(&mut rest, 1, 2)?,
            Part::Second => {
                c.second = digits(&mut rest, 1, 2)?;
                if let Some(tail) = rest.strip_prefix('.') {
                    rest = tail;
                    let n = rest.bytes().take_while(u8::is_ascii_digit).count();
                    if n == 0 || n > 6 {
                        return None;
                    }
                    let frac: u32 = rest[..n].parse().ok()?;
                    c.micros = frac * 10u32.pow(6 - n as u32);
                    rest = &rest[n..];
                }
            }
            Part::Meridian => {
                let head = rest.get(..2)?.to_ascii_uppercase();
                pm = Some(match head.as_str() {
                    "AM" => false,
                    "PM" => true,
                    _ => return None,
                });
                rest = &rest[2..];
            }
        }
    }
    if with_offset && !rest.is_empty() {
        c.offset = Some(offset(rest)?);
        rest = "";
    }
    if !rest.is_empty() {
        return None;
    }
    if twelve {
        if !(1..=12).contains(&c.hour) {
            return None;
        }
        c.hour = match (c.hour, pm.unwrap_or(false)) {
            (12, false) => 0,
            (12, true) => 12,
            (h, true) => h + 12,
            (h, false) => h,
        };
    }
    let valid = (1..=12).contains(&c.month)
        && c.day >= 1
        && c.day <= days_in_month(c.year, c.month)
        && c.hour < 24
        && c.minute < 60
        && c.second < 60;
    valid.then_some(c)
}

/// `+HH`, `+HH:MM`, `+HHMM` (or `-`), or `Z`, optionally after one space.
fn offset(text: &str) -> Option<i32> {
    let t = text.strip_prefix(' ').unwrap_or(text);
    if t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") {
        return Some(0);
    }
    let (sign, body) = match t.as_bytes().first()? {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return None,
    };
    let body = body.replace(':', "");
    if !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match body.len() {
        1 | 2 => (body.parse::<i32>().ok()?, 0),
        3 | 4 => (
            body[..body.len() - 2].parse::<i32>().ok()?,
            body[body.len() - 2..].parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    (h <= 15 && m < 60).then_some(sign * (h * 60 + m))
}

fn digits(rest: &mut &str, min: usize, max: usize) -> Option<u32> {
    let n = rest
        .bytes()
        .take(max)
        .take_while(u8::is_ascii_digit)
        .count();
    if n < min {
        return None;
    }
    let v = rest[..n].parse().ok()?;
    *rest = &rest[n..];
    Some(v)
}

fn month_name(rest: &mut &str) -> Option<u32> {
    const NAMES: [&str; 12] = [
        "JANUARY",
        "FEBRUARY",
        "MARCH",
        "APRIL",
        "MAY",
        "JUNE",
        "JULY",
        "AUGUST",
        "SEPTEMBER",
        "OCTOBER",
        "NOVEMBER",
        "DECEMBER",
    ];
    let n = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
    let word = rest[..n].to_ascii_uppercase();
    let month = NAMES
        .iter()
        .position(|full| word == *full || (n == 3 && full.starts_with(&word)))?;
    *rest = &rest[n..];
    Some(month as u32 + 1)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// The UTC date and time `micros` microseconds after the epoch.
pub fn from_epoch_micros(micros: i64) -> Civil {
    let secs = micros.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let in_day = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (in_day / 3600) as u32,
        minute: (in_day % 3600 / 60) as u32,
        second: (in_day % 60) as u32,
        micros: micros.rem_euclid(1_000_000) as u32,
        offset: None,
    }
}

/// Reads an epoch value (`EpochSecs` may carry a fraction).
pub fn read_epoch(value: &str, millis: bool) -> Option<Civil> {
    let t = value.trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let unsigned = int.strip_prefix('-').unwrap_or(int);
    if !digits_ok(unsigned) || (!frac.is_empty() && (millis || !digits_ok(frac))) {
        return None;
    }
    let whole: i64 = int.parse().ok()?;
    let scale = if millis { 1_000 } else { 1_000_000 };
    let mut micros = whole.checked_mul(scale)?;
    if !frac.is_empty() {
        let f: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
        let f: i64 = f.parse().ok()?;
        micros += if whole < 0 || int.starts_with('-') {
            -f
        } else {
            f
        };
    }
    // Redshift's timestamps end at year 294276; keep to what the backend stores.
    (micros.abs() < 9_000_000_000_000_000_i64).then(|| from_epoch_micros(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(f: &str) -> Vec<Part> {
        match TimeFormat::parse(f, true).unwrap() {
            TimeFormat::Pattern { parts, .. } => parts,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn format_strings_read_values_into_iso_text() {
        for (format, value, iso) in [
            (
                "YYYY-MM-DD HH:MI:SS",
                "2024-05-06 07:08:09",
                "2024-05-06 07:08:09",
            ),
            (
                "YYYY-MM-DD HH24:MI:SS",
                "2024-05-06 17:08:09.5",
                "2024-05-06 17:08:09.500000",
            ),
            ("MM/DD/YYYY", "03/31/2003", "2003-03-31 00:00:00"),
            ("MON DD, YYYY", "March 31, 2003", "2003-03-31 00:00:00"),
            ("MON-DD-YYYY", "jan-01-1999", "1999-01-01 00:00:00"),
            (
                "DD.MM.YY HH12:MI AM",
                "31.12.99 12:30 AM",
                "1999-12-31 00:30:00",
            ),
            (
                "DD.MM.YY HH12:MI PM",
                "01.02.03 01:05 PM",
                "2003-02-01 13:05:00",
            ),
        ] {
            let c = read(&pat(format), value, false);
            assert_eq!(
                c.map(|c| c.iso(true)).as_deref(),
                Some(iso),
                "{format} {value}"
            );
        }
    }

    #[test]
    fn values_that_do_not_match_or_cannot_exist_are_refused() {
        for (format, value) in [
            ("YYYY-MM-DD", "2024-02-30"),
            ("YYYY-MM-DD", "2023-02-29"),
            ("YYYY-MM-DD", "2024-13-01"),
            ("YYYY-MM-DD", "2024/01/01"),
            ("YYYY-MM-DD", "2024-01-01 00:00:00"),
            ("YYYY-MM-DD HH:MI:SS", "2024-01-01T00:00:00"),
            ("YYYY-MM-DD HH:MI:SS", "2024-01-01 24:00:00"),
            ("YYYY-MM-DD HH:MI:SS", "2024-01-01 00:00:00.1234567"),
            ("YYYY-MM-DD HH:MI:SS", "2024-01-01 00:00:00+00"),
            ("HH12:MI AM", "13:00 PM"),
        ] {
            assert_eq!(read(&pat(format), value, false), None, "{format} {value}");
        }
        assert!(TimeFormat::parse("YYYY-QQ", true).is_err());
        assert_eq!(
            read(&pat(DEFAULT_TIME), "2024-01-01 00:00:00+05:30", true).map(|c| c.iso(true)),
            Some("2024-01-01 00:00:00+05:30".to_string()),
            "TIMESTAMPTZ's default format carries an offset"
        );
        assert!(leap(2000) && !leap(1900));
    }

    fn leap(y: i64) -> bool {
        days_in_month(y, 2) == 29
    }

    #[test]
    fn epoch_values_become_utc_timestamps() {
        for (value, millis, iso) in [
            ("0", false, "1970-01-01 00:00:00"),
            ("1700000000", false, "2023-11-14 22:13:20"),
            ("1700000000.25", false, "2023-11-14 22:13:20.250000"),
            ("-1", false, "1969-12-31 23:59:59"),
            ("951782400", false, "2000-02-29 00:00:00"),
            ("1700000000123", true, "2023-11-14 22:13:20.123000"),
        ] {
            assert_eq!(
                read_epoch(value, millis).map(|c| c.iso(true)).as_deref(),
                Some(iso),
                "{value}"
            );
        }
        for bad in ["", "x", "1e9", "1.5.5", "--1"] {
            assert_eq!(read_epoch(bad, false), None, "{bad}");
        }
        assert_eq!(read_epoch("1.5", true), None, "milliseconds are whole");
    }
}
