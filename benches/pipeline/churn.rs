//! Rows loaded per changed row under a steady update load: writer sessions keep updating
//! random rows of a loaded table (`updated_at = clock_timestamp()`, some transactions held
//! open so they commit out of order) while `redshift-loader run` runs at a fixed
//! interval; then the writers stop and one last run follows. Every update that committed
//! is counted, and every row the runs loaded (their `--json` reports); the warehouse
//! must equal the source at the end.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_postgres::error::SqlState;

use super::{data, step, Bench};
use crate::report::{Churn, Measure};

/// The shape of the update load and of the runs beside it.
pub struct Load {
    /// Rows of the table.
    pub rows: u64,
    /// Loader runs while the writers write (one more follows once they stopped).
    pub runs: u32,
    /// From the start of one run to the next.
    pub interval: Duration,
    /// Updates per second, over all writers.
    pub rate: u32,
    pub writers: u32,
    /// One transaction in this many is held open for `HELD_MS` (0: none).
    pub held_one_in: u64,
}

/// How long a held transaction stays open (a random length in this range), updating a
/// row at each of its writer's ticks meanwhile: its first updates commit after later
/// ones of the other sessions, and now and then after a loader read that stood past
/// their `updated_at`.
const HELD_MS: (u64, u64) = (200, 500);

/// Sets up table `churn_exact` (`lookback` 0) or `churn_lookback<N>` (the loader run with
/// `LOADER_LOOKBACK_SECONDS=N`), loads it once, runs the update load with the loader
/// beside it, and checks the warehouse against the source. Returns the measure and what
/// was verified.
pub async fn measure(bench: &Bench, load: &Load, lookback: u64) -> Result<(Measure, String)> {
    let name = match lookback {
        0 => "churn_exact".to_string(),
        n => format!("churn_lookback{n}"),
    };
    let lookback_text = lookback.to_string();
    let extra = [("LOADER_LOOKBACK_SECONDS", lookback_text.as_str())];
    step(&format!(
        "{name}: {} rows; {} updates/s from {} sessions while the loader runs {} times, every {:.1} s",
        load.rows,
        load.rate,
        load.writers,
        load.runs,
        load.interval.as_secs_f64()
    ));
    let src = bench.source().await?;
    src.batch_execute(&data::create_table(&name, load.rows))
        .await?;
    src.batch_execute(&format!("VACUUM ANALYZE {name}")).await?;
    bench.setup_job(&name, &name, &name).await?;
    bench.run_report(&name, &extra).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    // Each writer ticks every `writers / rate` seconds; their ticks interleave.
    let every = Duration::from_secs_f64(f64::from(load.writers) / f64::from(load.rate));
    let mut writers = Vec::new();
    for w in 0..load.writers {
        let writer = Writer {
            client: bench.source().await?,
            table: name.clone(),
            rows: load.rows,
            every,
            start: started + every * w / load.writers,
            seed: 0x5eed_0000 + u64::from(w),
            held_one_in: load.held_one_in,
        };
        writers.push(tokio::spawn(writer.write(stop.clone())));
    }

    let mut runs = Vec::new();
    let mut tick = tokio::time::interval_at(started + load.interval, load.interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for _ in 0..load.runs {
        tick.tick().await;
        runs.push(bench.run_report(&name, &extra).await?);
        // A writer that failed ends the scenario now, with its error (joined below).
        if writers.iter().any(|w| w.is_finished()) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut written = Written::default();
    for w in writers {
        written.add(w.await.context("writer task")??);
    }
    let load_seconds = started.elapsed().as_secs_f64();
    runs.push(bench.run_report(&name, &extra).await?);

    let sum = bench.source_checksum(&name).await?;
    let verified = bench.verify(&name, &name, &sum).await?;
    bench.drop_schema(&name).await?;
    src.batch_execute(&format!("DROP TABLE {name}")).await?;

    let churn = Churn::new(
        load.writers,
        load_seconds,
        written.updates,
        written.ids.len() as u64,
        written.transactions,
        written.held,
        written.aborted,
        runs.iter().map(|(_, r)| r).collect::<Vec<_>>().as_slice(),
    );
    eprintln!(
        "  {} updates committed ({} distinct rows, {} transactions, {} held, {} aborted) in {:.1} s; rows per run: {:?}",
        churn.updates,
        churn.distinct_rows,
        churn.transactions,
        churn.held_transactions,
        churn.aborted_transactions,
        churn.load_seconds,
        churn.rows_per_run
    );
    let what = format!(
        "redshift-loader run every {:.1} s ({} runs + 1 after) on a {}-row table while {} sessions update ~{}/s ({}){}; rows = updates committed",
        load.interval.as_secs_f64(),
        load.runs,
        load.rows,
        load.writers,
        load.rate,
        match load.held_one_in {
            0 => "no transaction held".to_string(),
            n => format!("1 transaction in {n} held {}-{} ms", HELD_MS.0, HELD_MS.1),
        },
        match lookback {
            0 => String::new(),
            n => format!(", LOADER_LOOKBACK_SECONDS={n}"),
        }
    );
    let measure = Measure::new(
        &name,
        &what,
        churn.updates,
        0,
        runs.iter().map(|(run, _)| run.seconds).collect(),
    )
    .with_cpu(runs.iter().map(|(run, _)| run.cpu_seconds).collect())
    .with_rss(runs.iter().map(|(run, _)| run.peak_rss_mib).collect())
    .with_churn(churn);
    Ok((measure, verified))
}

/// One writer session.
struct Writer {
    client: tokio_postgres::Client,
    table: String,
    rows: u64,
    every: Duration,
    start: Instant,
    seed: u64,
    held_one_in: u64,
}

/// What writer sessions committed.
#[derive(Default)]
struct Written {
    /// Rows touched by UPDATEs whose transaction committed.
    updates: u64,
    ids: HashSet<u64>,
    transactions: u64,
    held: u64,
    /// Rolled back after a deadlock (two sessions locking the same rows in turn).
    aborted: u64,
}

impl Written {
    fn add(&mut self, other: Written) {
        self.updates += other.updates;
        self.ids.extend(other.ids);
        self.transactions += other.transactions;
        self.held += other.held;
        self.aborted += other.aborted;
    }
}

impl Writer {
    /// Updates a random row at each tick until `stop`, most transactions one row long;
    /// the transaction open when `stop` comes is finished and counted.
    async fn write(self, stop: Arc<AtomicBool>) -> Result<Written> {
        let update = self
            .client
            .prepare(&format!(
                "UPDATE {} SET updated_at = clock_timestamp(), quantity = coalesce(quantity, 0) + 1 WHERE id = $1",
                self.table
            ))
            .await?;
        let mut rng = SplitMix(self.seed);
        let mut tick = tokio::time::interval_at(self.start, self.every);
        let every_ms = (self.every.as_millis() as u64).max(1);
        let mut w = Written::default();
        while !stop.load(Ordering::Relaxed) {
            let ticks = if self.held_one_in > 0 && rng.below(self.held_one_in) == 0 {
                let ms = HELD_MS.0 + rng.below(HELD_MS.1 - HELD_MS.0 + 1);
                (ms / every_ms).max(2)
            } else {
                1
            };
            tick.tick().await;
            self.client.batch_execute("BEGIN").await?;
            let (mut touched, mut ids) = (0, Vec::new());
            let mut done = Ok(());
            for t in 0..ticks {
                if t > 0 {
                    tick.tick().await;
                }
                let id = 1 + rng.below(self.rows);
                match self.client.execute(&update, &[&(id as i64)]).await {
                    Ok(n) => {
                        touched += n;
                        ids.push(id);
                    }
                    Err(e) => {
                        done = Err(e);
                        break;
                    }
                }
            }
            if done.is_ok() {
                done = self.client.batch_execute("COMMIT").await;
            }
            match done {
                Ok(()) => {
                    w.updates += touched;
                    w.ids.extend(ids);
                    w.transactions += 1;
                    w.held += u64::from(ticks > 1);
                }
                Err(e) if e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED) => {
                    self.client.batch_execute("ROLLBACK").await?;
                    w.aborted += 1;
                }
                Err(e) => return Err(e).context(format!("updating {}", self.table)),
            }
        }
        Ok(w)
    }
}

/// splitmix64: the same row ids for the same seed, without a crate for it.
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}
