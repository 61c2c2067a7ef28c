//! PURE: the figures, as a table for people and as JSON for machines.

use serde::Serialize;

use redshift_loader::sync::Report;

/// One measured thing, repeated.
#[derive(Debug, Clone, Serialize)]
pub struct Measure {
    /// Short id (`baseline_gzip`, `ours_null`, ...).
    pub name: String,
    /// What exactly was timed.
    pub what: String,
    /// Rows moved per repetition.
    pub rows: u64,
    /// Source CSV bytes per repetition (what `COPY ... TO STDOUT` prints).
    pub source_bytes: u64,
    pub seconds: Vec<f64>,
    pub median_seconds: f64,
    pub rows_per_second: f64,
    pub mb_per_second: f64,
    /// rows/s over the `baseline_gzip` rows/s (extract-type measures only).
    pub ratio_to_baseline: Option<f64>,
    /// Median peak RSS of our process, when it ran as its own process.
    pub peak_rss_mib: Option<f64>,
    /// CPU seconds (user + system) of the measured process(es), per repetition: ours
    /// in process, the CLI child, or psql + gzip for the baselines (not PostgreSQL's).
    pub cpu_seconds: Vec<f64>,
    pub median_cpu_seconds: Option<f64>,
    /// The churn scenario's counts (its `rows` are the updates committed, its seconds
    /// those of each run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub churn: Option<Churn>,
    /// End-to-end loads: where the time in Redshift went (medians over repetitions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redshift: Option<RedshiftSplit>,
}

/// A load's time in Redshift by step, from the runs' reports (medians), and how its
/// chunks landed.
#[derive(Debug, Clone, Serialize)]
pub struct RedshiftSplit {
    pub copy_seconds: f64,
    pub merge_seconds: f64,
    pub commit_seconds: f64,
    pub chunks: u64,
    pub chunks_appended: u64,
}

impl RedshiftSplit {
    /// From one report per repetition.
    pub fn of(reports: &[Report]) -> RedshiftSplit {
        let secs = |f: fn(&Report) -> u64| {
            median(
                &reports
                    .iter()
                    .map(|r| f(r) as f64 / 1000.0)
                    .collect::<Vec<_>>(),
            )
        };
        RedshiftSplit {
            copy_seconds: secs(|r| r.redshift_ms.copy),
            merge_seconds: secs(|r| r.redshift_ms.merge),
            commit_seconds: secs(|r| r.redshift_ms.commit),
            chunks: reports.first().map_or(0, |r| r.chunks),
            chunks_appended: reports.first().map_or(0, |r| r.chunks_appended),
        }
    }
}

/// Under a steady update load: what the source committed and what the loader loaded.
#[derive(Debug, Clone, Serialize)]
pub struct Churn {
    pub writers: u32,
    /// From the writers' start until the last of them stopped.
    pub load_seconds: f64,
    /// Rows touched by UPDATEs that committed (one row each).
    pub updates: u64,
    pub distinct_rows: u64,
    pub transactions: u64,
    /// Transactions held open for a few hundred ms, updating a row at each tick.
    pub held_transactions: u64,
    /// Rolled back after a deadlock, not counted in `updates`.
    pub aborted_transactions: u64,
    /// The runs during the load and the one after it.
    pub runs: usize,
    pub rows_per_run: Vec<u64>,
    /// Sum of the runs' `rows`, `late_rows` and `reread_rows`.
    pub loaded: u64,
    pub late: u64,
    pub reread: u64,
    /// loaded / updates.
    pub loaded_per_update: f64,
    /// late / loaded.
    pub late_share: f64,
}

impl Churn {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        writers: u32,
        load_seconds: f64,
        updates: u64,
        distinct_rows: u64,
        transactions: u64,
        held_transactions: u64,
        aborted_transactions: u64,
        reports: &[&Report],
    ) -> Churn {
        let loaded: u64 = reports.iter().map(|r| r.rows).sum();
        let late: u64 = reports.iter().map(|r| r.late_rows).sum();
        let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
        Churn {
            writers,
            load_seconds,
            updates,
            distinct_rows,
            transactions,
            held_transactions,
            aborted_transactions,
            runs: reports.len(),
            rows_per_run: reports.iter().map(|r| r.rows).collect(),
            loaded,
            late,
            reread: reports.iter().map(|r| r.reread_rows).sum(),
            loaded_per_update: ratio(loaded, updates),
            late_share: ratio(late, loaded),
        }
    }
}

impl Measure {
    pub fn new(name: &str, what: &str, rows: u64, source_bytes: u64, seconds: Vec<f64>) -> Measure {
        let median_seconds = median(&seconds);
        let per_second = |x: u64| {
            if median_seconds > 0.0 {
                x as f64 / median_seconds
            } else {
                0.0
            }
        };
        Measure {
            name: name.into(),
            what: what.into(),
            rows,
            source_bytes,
            median_seconds,
            rows_per_second: per_second(rows),
            mb_per_second: per_second(source_bytes) / 1e6,
            seconds,
            ratio_to_baseline: None,
            peak_rss_mib: None,
            cpu_seconds: Vec::new(),
            median_cpu_seconds: None,
            churn: None,
            redshift: None,
        }
    }

    /// One run of a CLI child: its time, CPU and peak memory.
    pub fn of_run(name: &str, what: &str, rows: u64, run: &testkit::measure::Measured) -> Measure {
        Measure::new(name, what, rows, 0, vec![run.seconds])
            .with_cpu(vec![run.cpu_seconds])
            .with_rss(vec![run.peak_rss_mib])
    }

    pub fn with_cpu(mut self, cpu: Vec<f64>) -> Measure {
        if !cpu.is_empty() {
            self.median_cpu_seconds = Some(median(&cpu));
        }
        self.cpu_seconds = cpu;
        self
    }

    pub fn with_rss(mut self, rss: Vec<f64>) -> Measure {
        if !rss.is_empty() {
            self.peak_rss_mib = Some(median(&rss));
        }
        self
    }

    pub fn with_redshift(mut self, split: RedshiftSplit) -> Measure {
        self.redshift = Some(split);
        self
    }

    pub fn with_churn(mut self, churn: Churn) -> Measure {
        self.churn = Some(churn);
        self
    }
}

/// The middle value (the mean of the two middle ones for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Sets each measure's ratio to `baseline`'s rows/s, for the names in `compared`.
pub fn compare(measures: &mut [Measure], baseline: &str, compared: &[&str]) {
    let Some(base) = measures
        .iter()
        .find(|m| m.name == baseline)
        .map(|m| m.rows_per_second)
    else {
        return;
    };
    for m in measures.iter_mut() {
        if compared.contains(&m.name.as_str()) && base > 0.0 {
            m.ratio_to_baseline = Some(m.rows_per_second / base);
        }
    }
}

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_mib: u64,
    pub kernel: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub machine: Machine,
    pub rows: u64,
    pub repetitions: usize,
    pub source_csv_bytes: u64,
    pub staged_bytes: u64,
    /// LOADER_STAGING_COMPRESSION of the runs (`zstd` or `gzip`).
    pub compression: String,
    pub measures: Vec<Measure>,
    /// Every end-to-end load was compared with its source (count and checksum).
    pub verified: Vec<String>,
}

/// The table people read.
pub fn table(results: &Results) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header([
        "measure",
        "rows",
        "median s",
        "rows/s",
        "MB/s (source CSV)",
        "× baseline",
        "CPU s (ours)",
        "peak RSS MiB",
        "loaded / update",
    ]);
    let opt = |v: Option<f64>, digits: usize| match v {
        Some(v) => format!("{v:.digits$}"),
        None => "–".to_string(),
    };
    for m in &results.measures {
        t.add_row([
            m.name.clone(),
            m.rows.to_string(),
            format!("{:.2}", m.median_seconds),
            // Updates over a run's time would mean nothing.
            if m.churn.is_some() {
                "–".to_string()
            } else {
                format!("{:.0}", m.rows_per_second)
            },
            // Only where the source's CSV size is known (not for the incremental and
            // the larger loads).
            if m.source_bytes > 0 {
                format!("{:.1}", m.mb_per_second)
            } else {
                "–".to_string()
            },
            opt(m.ratio_to_baseline, 2),
            opt(m.median_cpu_seconds, 2),
            opt(m.peak_rss_mib, 1),
            opt(m.churn.as_ref().map(|c| c.loaded_per_update), 2),
        ]);
    }
    for c in t.column_iter_mut().skip(1) {
        c.set_cell_alignment(comfy_table::CellAlignment::Right);
    }
    t.to_string()
}

/// A line per measure saying exactly what was timed.
pub fn legend(results: &Results) -> String {
    results
        .measures
        .iter()
        .map(|m| format!("  {:<18} {}", m.name, m.what))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A line per end-to-end load: its time in Redshift by step, and its time over
/// `baseline`'s (psql's COPY of the same rows into /dev/null).
pub fn split(results: &Results, baseline: &str) -> String {
    let base = results
        .measures
        .iter()
        .find(|m| m.name == baseline)
        .map(|m| m.median_seconds);
    results
        .measures
        .iter()
        .filter_map(|m| Some((m, m.redshift.as_ref()?)))
        .map(|(m, r)| {
            let share = |s: f64| 100.0 * s / m.median_seconds.max(f64::EPSILON);
            let ratio = base.map_or("–".to_string(), |b| {
                format!("{:.1}× {baseline}", m.median_seconds / b.max(f64::EPSILON))
            });
            format!(
                "  {}: {:.2} s ({ratio}); in Redshift: COPY {:.2} s ({:.0} %), merge {:.2} s ({:.0} %), COMMIT {:.2} s; {} of {} chunks appended without a DELETE",
                m.name,
                m.median_seconds,
                r.copy_seconds,
                share(r.copy_seconds),
                r.merge_seconds,
                share(r.merge_seconds),
                r.commit_seconds,
                r.chunks_appended,
                r.chunks
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A line per churn measure: what the source committed, what the runs loaded.
pub fn churn(results: &Results) -> String {
    results
        .measures
        .iter()
        .filter_map(|m| Some((m, m.churn.as_ref()?)))
        .map(|(m, c)| {
            format!(
                "  {}: {} updates committed ({} distinct rows) by {} sessions in {:.1} s ({:.0}/s); \
                 {} runs loaded {} rows, {:.2} per update: {} late ({:.1} %), {} re-read",
                m.name,
                c.updates,
                c.distinct_rows,
                c.writers,
                c.load_seconds,
                c.updates as f64 / c.load_seconds.max(1e-9),
                c.runs,
                c.loaded,
                c.loaded_per_update,
                c.late,
                100.0 * c.late_share,
                c.reread
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What this machine is, from /proc and `uname`.
pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|m| m.trim().to_string())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_mib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_default();
    Machine {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        memory_mib,
        kernel,
    }
}
