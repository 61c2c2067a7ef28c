//! `make bench`: throughput and memory of the pipeline against the single-stream limit,
//! on the local stack (source PostgreSQL, moto, the Redshift emulator).
//!
//! `cargo bench --bench pipeline -- [--rows N] [--reps R] [--rss-rows M] ...`
//!
//! Every measure runs `--reps` times; the table shows medians. Nothing here asserts a
//! time: what is asserted is that each end-to-end load holds exactly the source's rows
//! (count and checksum), so a fast wrong answer cannot pass. The churn scenario
//! (`churn.rs`) counts rows loaded per update under a steady update load instead.

mod child;
mod churn;
mod data;
mod parallel;
mod report;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use futures_util::StreamExt;

use redshift_loader::app::App;
use redshift_loader::aws::{Clients, Settings};
use redshift_loader::config::{Format, Job, TableRef};
use redshift_loader::setup::{self, Decisions, DECISIONS};
use redshift_loader::source::extract::extract_chunk;
use redshift_loader::source::query::{self, Chunk, KeyColumn};
use redshift_loader::stage::sink::NullSink;
use redshift_loader::stage::upload::ChunkUpload;
use redshift_loader::sync::Report;
use redshift_loader::warehouse::types::Load;
use testkit::stack::{EnvNames, Stack};

use child::run_cli;
use report::{Measure, Results};

#[derive(Debug, Parser)]
#[command(about = "Benchmarks redshift-loader's pipeline on the local stack")]
struct Opts {
    /// Rows of the benchmark table.
    #[arg(long, default_value_t = 2_000_000)]
    rows: u64,
    /// Repetitions of each measure (the table shows medians).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Rows of the second peak-RSS load (default 4 × --rows; 0 skips it).
    #[arg(long)]
    rss_rows: Option<u64>,
    /// IMPORT_CHUNK_SIZE of the larger load: memory does not depend on it (chunks
    /// stream), but the emulator's merge into a growing table costs rows × chunks, so
    /// large chunks keep that run short.
    #[arg(long, default_value_t = 1_000_000)]
    rss_chunk_size: u64,
    /// Rows changed before each incremental run.
    #[arg(long, default_value_t = 1_000)]
    changed: u64,
    /// Rows of the small table the incremental run is compared with.
    #[arg(long, default_value_t = 10_000)]
    small_rows: u64,
    /// IMPORT_CHUNK_SIZE for the CLI runs (default: the loader's own default).
    #[arg(long)]
    chunk_size: Option<u64>,
    /// Where the JSON goes (default target/bench/results.json).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The redshift-loader binary the CLI runs use (default: the one cargo built).
    #[arg(long)]
    loader: Option<PathBuf>,
    /// Rows of the table the steady update load runs on (0 skips the churn scenario).
    #[arg(long, default_value_t = 100_000)]
    churn_rows: u64,
    /// Loader runs during the update load (one more follows once it stopped).
    #[arg(long, default_value_t = 20)]
    churn_runs: u32,
    /// Seconds from the start of one of those runs to the next (a short `frequency`).
    #[arg(long, default_value_t = 2.0)]
    churn_interval: f64,
    /// Updates per second, over all writer sessions.
    #[arg(long, default_value_t = 200)]
    churn_rate: u32,
    /// Writer sessions.
    #[arg(long, default_value_t = 4)]
    churn_writers: u32,
    /// One writer transaction in this many stays open 200-500 ms, updating a row at
    /// each of its session's ticks (0: every transaction is one UPDATE, committed at once).
    #[arg(long, default_value_t = 10)]
    churn_held: u64,
    /// LOADER_LOOKBACK_SECONDS of the comparison run (0 skips it).
    #[arg(long, default_value_t = 600)]
    churn_lookback: u64,
    /// Only the churn scenario (no throughput, incremental or memory measures).
    #[arg(long)]
    churn_only: bool,
    /// Tables of the parallel scenario (0 skips it): one job, loaded one table at a time
    /// and with LOADER_TABLE_CONCURRENCY=4.
    #[arg(long, default_value_t = 16)]
    parallel_tables: u32,
    /// Rows of each of those tables.
    #[arg(long, default_value_t = 50_000)]
    parallel_rows: u64,
    /// Only the parallel scenario.
    #[arg(long)]
    parallel_only: bool,
    /// LOADER_STAGING_COMPRESSION for every run, in process and CLI (`zstd` or `gzip`;
    /// default: the loader's own).
    #[arg(long)]
    compression: Option<String>,
    /// LOADER_FILES_PER_CHUNK for every run (default: the CLI asks the emulator, which
    /// reports testkit's DEFAULT_SLICES slices; the in-process extracts use as many).
    #[arg(long)]
    files: Option<usize>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let opts = Opts::parse();
    ensure!(
        opts.rows >= opts.changed && opts.reps >= 1,
        "need rows >= changed, reps >= 1"
    );
    ensure!(
        opts.churn_interval > 0.0 && opts.churn_rate >= 1 && opts.churn_writers >= 1,
        "need churn interval > 0, churn rate >= 1, churn writers >= 1"
    );
    let bench = Bench::start(&opts).await?;
    let mut measures = Vec::new();
    let mut verified = Vec::new();
    let (mut source_bytes, mut staged) = (0, 0);
    let only = opts.churn_only || opts.parallel_only;
    if !only {
        (source_bytes, staged) = pipeline(&bench, &opts, &mut measures, &mut verified).await?;
    }
    if opts.parallel_tables > 0 && !opts.churn_only {
        parallel::create(&bench, opts.parallel_tables, opts.parallel_rows).await?;
        for concurrency in [1, 4] {
            let (measure, checks) = parallel::measure(
                &bench,
                opts.parallel_tables,
                opts.parallel_rows,
                concurrency,
            )
            .await?;
            measures.push(measure);
            verified.push(format!(
                "{} tables of parallel_c{concurrency} (first: {})",
                checks.len(),
                checks.first().cloned().unwrap_or_default()
            ));
        }
    }
    if opts.churn_rows > 0 && !opts.parallel_only {
        let load = churn::Load {
            rows: opts.churn_rows,
            runs: opts.churn_runs,
            interval: std::time::Duration::from_secs_f64(opts.churn_interval),
            rate: opts.churn_rate,
            writers: opts.churn_writers,
            held_one_in: opts.churn_held,
        };
        let mut lookbacks = vec![0];
        if opts.churn_lookback > 0 {
            lookbacks.push(opts.churn_lookback);
        }
        for lookback in lookbacks {
            let (measure, check) = churn::measure(&bench, &load, lookback).await?;
            measures.push(measure);
            verified.push(check);
        }
    }

    report::compare(
        &mut measures,
        "baseline_gzip",
        &[
            "baseline_gzip",
            "baseline_raw",
            "ours_null",
            "ours_s3",
            "ours_e2e",
        ],
    );
    let results = Results {
        machine: report::machine(),
        rows: if only { 0 } else { opts.rows },
        repetitions: opts.reps,
        source_csv_bytes: source_bytes,
        staged_bytes: staged,
        compression: format!("{:?}", bench.app.settings.staging_compression).to_lowercase(),
        measures,
        verified,
    };
    if only {
        println!(
            "\n{}, {} CPUs; medians over the runs:",
            results.machine.cpu_model, results.machine.cpus
        );
    } else {
        println!(
            "\n{} rows, {:.1} MB of source CSV, {:.1} MB staged ({}, {} files a chunk); {}, {} CPUs; medians of {}:",
            results.rows,
            source_bytes as f64 / 1e6,
            staged as f64 / 1e6,
            results.compression,
            bench.files,
            results.machine.cpu_model,
            results.machine.cpus,
            results.repetitions
        );
    }
    println!("{}", report::table(&results));
    println!("{}", report::legend(&results));
    let split = report::split(&results, "baseline_raw");
    if !split.is_empty() {
        println!("end-to-end loads, by step:\n{split}");
    }
    let churn = report::churn(&results);
    if !churn.is_empty() {
        println!("under a steady update load:\n{churn}");
    }
    println!("verified (count|checksum equal on both sides):");
    for v in &results.verified {
        println!("  {v}");
    }
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench/results.json"));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&results)? + "\n")?;
    println!("written to {}", out.display());
    Ok(())
}

/// Throughput against the single-stream limit, end-to-end loads, the incremental runs
/// and the larger load's peak memory; returns the source's CSV bytes and the bytes
/// staged for them.
async fn pipeline(
    bench: &Bench,
    opts: &Opts,
    measures: &mut Vec<Measure>,
    verified: &mut Vec<String>,
) -> Result<(u64, u64)> {
    let rss_rows = opts.rss_rows.unwrap_or(4 * opts.rows);

    step(&format!(
        "generating {} rows (and {} small)",
        opts.rows, opts.small_rows
    ));
    let src = bench.source().await?;
    for (table, rows) in [("big", opts.rows), ("small", opts.small_rows)] {
        src.batch_execute(&data::create_table(table, rows)).await?;
        src.batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await?;
    }
    let big_sum = bench.source_checksum("big").await?;

    step("setup of the end-to-end job (its decisions give the extract's SQL)");
    let first = bench.setup_job("e2e1", "e2e_1", "big").await?;
    let extract = Extract::from_decisions(&first, "big")?;
    // The whole table in one stream, in the loader's keyset order.
    let source_bytes = bench.count_source_bytes(&extract.sql).await?;
    eprintln!("  source CSV: {:.1} MB", source_bytes as f64 / 1e6);

    step("baseline: psql COPY | gzip -1 > /dev/null, and psql COPY > /dev/null");
    let (mut gz, mut gz_cpu) = (Vec::new(), Vec::new());
    let (mut raw, mut raw_cpu) = (Vec::new(), Vec::new());
    for _ in 0..opts.reps {
        let (seconds, cpu) = bench.psql_copy(&extract.sql, true).await?;
        gz.push(seconds);
        gz_cpu.push(cpu);
        let (seconds, cpu) = bench.psql_copy(&extract.sql, false).await?;
        raw.push(seconds);
        raw_cpu.push(cpu);
    }
    measures.push(Measure::new(
        "baseline_gzip",
        "psql -c \"COPY (SELECT ...) TO STDOUT (FORMAT csv, NULL '\\N')\" | gzip -1 > /dev/null",
        opts.rows,
        source_bytes,
        gz,
    )
    .with_cpu(gz_cpu));
    measures.push(
        Measure::new(
            "baseline_raw",
            "the same psql COPY > /dev/null (no compression)",
            opts.rows,
            source_bytes,
            raw,
        )
        .with_cpu(raw_cpu),
    );

    step("ours: extract + encode + compress to a null sink, and to S3 (moto)");
    let (mut null, mut null_cpu) = (Vec::new(), Vec::new());
    let (mut s3, mut s3_cpu) = (Vec::new(), Vec::new());
    let mut staged = 0;
    for rep in 0..opts.reps {
        let (seconds, cpu, _) = bench.ours(&extract, None, opts.rows).await?;
        null.push(seconds);
        null_cpu.push(cpu);
        let prefix = format!("bench/ours-s3-{rep}");
        let (seconds, cpu, bytes) = bench.ours(&extract, Some(&prefix), opts.rows).await?;
        s3.push(seconds);
        s3_cpu.push(cpu);
        staged = bytes;
    }
    measures.push(
        Measure::new(
            "ours_null",
            "extract_chunk (whole table, one stream) → encoder → one compressor per file → null sinks, in process",
            opts.rows,
            source_bytes,
            null,
        )
        .with_cpu(null_cpu),
    );
    measures.push(
        Measure::new(
            "ours_s3",
            "the same into S3 (moto), one object per file, by multipart upload, 5 MiB parts",
            opts.rows,
            source_bytes,
            s3,
        )
        .with_cpu(s3_cpu),
    );

    step("ours, end to end: redshift-loader run (initial load into the emulator)");
    let (mut e2e, mut e2e_cpu) = (Vec::new(), Vec::new());
    let (mut rss, mut e2e_reports) = (Vec::new(), Vec::new());
    for rep in 1..=opts.reps {
        let (job, schema) = (format!("e2e{rep}"), format!("e2e_{rep}"));
        if rep > 1 {
            bench.setup_job(&job, &schema, "big").await?;
        }
        let (run, report) = bench.run_report(&job, &[]).await?;
        e2e_reports.push(report);
        eprintln!(
            "  {job}: {:.1} s, peak RSS {:.1} MiB",
            run.seconds, run.peak_rss_mib
        );
        e2e.push(run.seconds);
        e2e_cpu.push(run.cpu_seconds);
        rss.push(run.peak_rss_mib);
        verified.push(bench.verify("big", &schema, &big_sum).await?);
        if rep > 1 {
            bench.drop_schema(&schema).await?;
        }
    }
    measures.push(
        Measure::new(
            "ours_e2e",
            "redshift-loader run JOB --force (CLI child, fresh Redshift table): extract → S3 → COPY → merge, every chunk",
            opts.rows,
            source_bytes,
            e2e,
        )
        .with_cpu(e2e_cpu)
        .with_rss(rss)
        .with_redshift(report::RedshiftSplit::of(&e2e_reports)),
    );

    step(&format!(
        "incremental: {} changed rows in {} vs {} rows",
        opts.changed, opts.rows, opts.small_rows
    ));
    bench.setup_job("small", "small", "small").await?;
    bench.run("small").await?;
    let mut inc_big = Vec::new();
    let mut inc_small = Vec::new();
    let (mut rss_big, mut rss_small) = (Vec::new(), Vec::new());
    let (mut cpu_big, mut cpu_small) = (Vec::new(), Vec::new());
    for round in 0..opts.reps as u64 {
        src.batch_execute(&data::update_rows("big", opts.rows, opts.changed, round))
            .await?;
        let run = bench.run("e2e1").await?;
        inc_big.push(run.seconds);
        cpu_big.push(run.cpu_seconds);
        rss_big.push(run.peak_rss_mib);
        src.batch_execute(&data::update_rows(
            "small",
            opts.small_rows,
            opts.changed,
            round,
        ))
        .await?;
        let run = bench.run("small").await?;
        inc_small.push(run.seconds);
        cpu_small.push(run.cpu_seconds);
        rss_small.push(run.peak_rss_mib);
    }
    let big_sum = bench.source_checksum("big").await?;
    verified.push(bench.verify("big", "e2e_1", &big_sum).await?);
    let small_sum = bench.source_checksum("small").await?;
    verified.push(bench.verify("small", "small", &small_sum).await?);
    measures.push(
        Measure::new(
            "incr_big",
            &format!(
                "redshift-loader run after {} rows of the {}-row table changed",
                opts.changed, opts.rows
            ),
            opts.changed,
            0,
            inc_big,
        )
        .with_cpu(cpu_big)
        .with_rss(rss_big),
    );
    measures.push(
        Measure::new(
            "incr_small",
            &format!("the same on a {}-row table", opts.small_rows),
            opts.changed,
            0,
            inc_small,
        )
        .with_cpu(cpu_small)
        .with_rss(rss_small),
    );

    deletes(bench, opts, measures, verified).await?;

    if rss_rows > 0 {
        step(&format!("peak RSS at {rss_rows} rows"));
        src.batch_execute(&data::create_table("big4", rss_rows))
            .await?;
        src.batch_execute("VACUUM ANALYZE big4").await?;
        let sum = bench.source_checksum("big4").await?;
        bench.setup_job("rss4", "rss4", "big4").await?;
        let chunk = opts.rss_chunk_size.to_string();
        let run = bench
            .run_with("rss4", &[("IMPORT_CHUNK_SIZE", chunk.as_str())])
            .await?;
        eprintln!(
            "  rss4: {:.1} s, peak RSS {:.1} MiB",
            run.seconds, run.peak_rss_mib
        );
        verified.push(bench.verify("big4", "rss4", &sum).await?);
        bench.drop_schema("rss4").await?;
        src.batch_execute("DROP TABLE big4").await?;
        measures.push(
            Measure::of_run(
                "ours_e2e_large",
                &format!(
                    "redshift-loader run, initial load of the larger table (once, IMPORT_CHUNK_SIZE={})",
                    opts.rss_chunk_size
                ),
                rss_rows,
                &run,
            ),
        );
    }
    Ok((source_bytes, staged))
}

/// `verify` (keys and content) and `deletes: reconcile` on the big table (loaded and
/// updated above), with 0 and then 100 rows deleted at the source: time, and keys
/// shipped against the table's rows.
async fn deletes(
    bench: &Bench,
    opts: &Opts,
    measures: &mut Vec<Measure>,
    verified: &mut Vec<String>,
) -> Result<()> {
    step(&format!(
        "deletes: verify and reconcile on {} rows, 0 and 100 deleted",
        opts.rows
    ));
    let src = bench.source().await?;
    // `verify` as an operator runs it: keys and content, pending rows told apart.
    let verify = |deleted: u64| async move {
        let log = bench.logs.path().join(format!("verify_{deleted}.log"));
        let out = bench.logs.path().join(format!("verify_{deleted}.json"));
        let run = child::run_cli_exiting(
            &bench.loader,
            &["verify", "e2e1", "--json"],
            &bench.env_with(&[]),
            &log,
            Some(&out),
            &[3],
        )
        .await?;
        let printed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out)?)
            .context("`verify e2e1 --json` printed no JSON")?;
        let v = &printed["tables"][0]["verdict"];
        let count = |kind: &str| v[kind]["count"].as_u64().unwrap_or(u64::MAX);
        ensure!(
            count("only_redshift") == deleted
                && count("only_source") == 0
                && count("differ") == 0
                && v["not_compared"].as_array().is_some_and(Vec::is_empty),
            "expected {deleted} rows in Redshift only and every column compared: {printed}"
        );
        let (ranges, shipped) = (
            v["ranges"].as_u64().unwrap_or_default(),
            v["keys_transferred"].as_u64().unwrap_or_default(),
        );
        eprintln!(
            "  verify, {deleted} deleted: {:.2} s, {ranges} ranges, {shipped} keys shipped",
            run.seconds
        );
        Ok::<_, anyhow::Error>((run, shipped))
    };
    let reconcile_job = |name: &str| -> Result<Job> {
        let yaml = format!(
            "name: {name}\n\
             source:\n  url: {}\n\
             destination:\n  url: {}\n  schema: e2e_1\n  iam_role: arn:aws:iam::123456789012:role/redshift-copy\n\
             frequency: 300\n\
             deletes: reconcile\nreconcile_every: 0\n\
             tables:\n  - source: public.big\n",
            bench.stack.source.url(&bench.names.source_db),
            bench.stack.redshift_url(&bench.names.warehouse_db),
        );
        Job::parse(&yaml, Format::Yaml).map_err(|e| anyhow::anyhow!("{e}"))
    };
    // The same job (its decisions and mark), now reconciling.
    let version = bench.app.store.require_job("e2e1").await?.version;
    bench
        .app
        .store
        .put_job(&reconcile_job("e2e1")?, Some(version), chrono::Utc::now())
        .await?;
    for deleted in [0u64, 100] {
        if let Some(every) = opts.rows.checked_div(deleted) {
            let every = every.max(1);
            src.batch_execute(&format!(
                "DELETE FROM big WHERE id IN (SELECT id FROM big WHERE id % {every} = 7 ORDER BY id LIMIT {deleted})"
            ))
            .await?;
        }
        let (verified_run, shipped) = verify(deleted).await?;
        let (run, report) = bench.run_report("e2e1", &[]).await?;
        ensure!(
            report.rows_deleted == deleted,
            "the reconcile deleted {} rows, expected {deleted}",
            report.rows_deleted
        );
        let r = report.reconcile.clone().unwrap_or_default();
        eprintln!(
            "  run with reconcile, {deleted} deleted: {:.2} s, {} keys shipped",
            run.seconds, r.keys_transferred
        );
        measures.push(
            Measure::of_run(
                &format!("verify_{deleted}"),
                &format!(
                    "redshift-loader verify (keys and content), {deleted} rows deleted at the source: {shipped} keys shipped for {} rows",
                    opts.rows
                ),
                opts.rows,
                &verified_run,
            ),
        );
        measures.push(
            Measure::of_run(
                &format!("reconcile_{deleted}"),
                &format!(
                    "redshift-loader run with deletes: reconcile, nothing new to load, {deleted} rows deleted at the source: {} keys shipped",
                    r.keys_transferred
                ),
                opts.rows,
                &run,
            ),
        );
    }
    let sum = bench.source_checksum("big").await?;
    verified.push(bench.verify("big", "e2e_1", &sum).await?);
    Ok(())
}

fn step(what: &str) {
    eprintln!("\n== {what}");
}

/// The extract of the benchmark table exactly as the loader runs it, minus the LIMIT.
struct Extract {
    sql: String,
    loads: Vec<Load>,
    keep: Vec<usize>,
}

impl Extract {
    fn from_decisions(d: &Decisions, table: &str) -> Result<Extract> {
        let columns: Vec<_> = d.live_columns().collect();
        let position = |name: &str| {
            columns
                .iter()
                .position(|c| c.source == name)
                .with_context(|| format!("column {name} is not extracted"))
        };
        let key = |name: &str| -> Result<KeyColumn> {
            Ok(KeyColumn {
                name: name.into(),
                pg_type: columns[position(name)?].source_type.clone(),
            })
        };
        ensure!(
            d.updated_key.value.as_deref() == Some("updated_at"),
            "setup chose updated key {:?}, expected updated_at",
            d.updated_key.value
        );
        let keys = vec![key("updated_at")?, key("id")?];
        let select: Vec<String> = columns.iter().map(|c| c.select.clone()).collect();
        let table = TableRef::new("public", table);
        let sql = query::copy_out(&query::chunk_select(&Chunk {
            table: &table,
            select: &select,
            keys: &keys,
            after: None,
            floor: None,
            upto: None,
            unseen: None,
            unseen_after: None,
            limit: None,
        }));
        Ok(Extract {
            sql,
            loads: columns.iter().map(|c| c.load).collect(),
            keep: vec![position("updated_at")?, position("id")?],
        })
    }
}

/// The stack, this benchmark's names on it, and the loader's `App` wired to them.
struct Bench {
    stack: &'static Stack,
    names: EnvNames,
    env: Vec<(String, String)>,
    app: App,
    /// Files per chunk of the in-process extracts (what the CLI's runs use too).
    files: usize,
    logs: tempfile::TempDir,
    psql: PathBuf,
    loader: PathBuf,
}

impl Bench {
    async fn start(opts: &Opts) -> Result<Bench> {
        step("starting the local stack");
        let stack = testkit::stack::shared();
        let names = EnvNames {
            state_table: stack.state_table().await?,
            bucket: stack.moto.create_bucket().await?,
            source_db: stack.source_db().await?,
            warehouse_db: stack.warehouse_db().await?,
        };
        let mut env = stack.env(&names);
        if let Some(n) = opts.chunk_size {
            env.push(("IMPORT_CHUNK_SIZE".into(), n.to_string()));
        }
        if let Some(c) = &opts.compression {
            env.push(("LOADER_STAGING_COMPRESSION".into(), c.clone()));
        }
        if let Some(n) = opts.files {
            env.push(("LOADER_FILES_PER_CHUNK".into(), n.to_string()));
        }
        let lookup: HashMap<String, String> = env.iter().cloned().collect();
        let settings = Settings::from_lookup(|k| lookup.get(k).cloned()).unwrap();
        let sdk = stack.moto.sdk_config().await;
        let clients = Clients::new(&sdk, &settings);
        let app = App::new(settings, clients)?;
        Ok(Bench {
            stack,
            names,
            env,
            app,
            files: opts
                .files
                .unwrap_or(testkit::redshift::DEFAULT_SLICES as usize),
            logs: tempfile::tempdir()?,
            psql: psql_binary(),
            loader: opts
                .loader
                .clone()
                .unwrap_or_else(|| env!("CARGO_BIN_EXE_redshift-loader").into()),
        })
    }

    async fn source(&self) -> Result<tokio_postgres::Client> {
        self.stack.source.connect(&self.names.source_db).await
    }

    /// The loader's own pinned source session.
    async fn session(&self) -> Result<tokio_postgres::Client> {
        let url = self.stack.source.url(&self.names.source_db);
        let db = redshift_loader::secrets::parse_url(
            redshift_loader::secrets::Role::Source,
            &url.into(),
            "bench",
        )?;
        Ok(redshift_loader::source::open(&db).await?)
    }

    async fn source_checksum(&self, table: &str) -> Result<String> {
        text(&self.source().await?, &data::checksum(table)).await
    }

    /// Stores a job copying `public.<table>` into `<schema>.<table>` and sets it up.
    async fn setup_job(&self, name: &str, schema: &str, table: &str) -> Result<Decisions> {
        let yaml = format!(
            "name: {name}\n\
             source:\n  url: {}\n\
             destination:\n  url: {}\n  schema: {schema}\n  iam_role: arn:aws:iam::123456789012:role/redshift-copy\n\
             frequency: 300\n\
             tables:\n  - source: public.{table}\n",
            self.stack.source.url(&self.names.source_db),
            self.stack.redshift_url(&self.names.warehouse_db),
        );
        let job = Job::parse(&yaml, Format::Yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
        let now = chrono::Utc::now();
        self.app.store.put_job(&job, None, now).await?;
        for o in setup::run(&self.app, &job, &setup::Options::default(), now).await? {
            o.result.with_context(|| format!("setup of {}", o.table))?;
        }
        let doc = self
            .app
            .store
            .get_table_document(name, &TableRef::new("public", table), DECISIONS)
            .await?
            .context("setup stored no decisions")?;
        Ok(serde_json::from_value(doc)?)
    }

    /// `redshift-loader run JOB --force` as a child process.
    async fn run(&self, job: &str) -> Result<child::ChildRun> {
        self.run_with(job, &[]).await
    }

    /// The same with `extra` environment variables (overriding the stack's).
    async fn run_with(&self, job: &str, extra: &[(&str, &str)]) -> Result<child::ChildRun> {
        let log = self.logs.path().join(format!("{job}.log"));
        run_cli(
            &self.loader,
            &["run", job, "--force"],
            &self.env_with(extra),
            &log,
            None,
        )
        .await
    }

    /// `redshift-loader run JOB --force --json` with `extra` environment variables, for
    /// a job of one table: the run, and the table's report from its output.
    async fn run_report(
        &self,
        job: &str,
        extra: &[(&str, &str)],
    ) -> Result<(child::ChildRun, Report)> {
        let log = self.logs.path().join(format!("{job}.log"));
        let out = self.logs.path().join(format!("{job}.json"));
        let args = ["run", job, "--force", "--json"];
        let run = run_cli(&self.loader, &args, &self.env_with(extra), &log, Some(&out)).await?;
        let printed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out)?)
            .with_context(|| format!("`run {job} --json` printed no JSON"))?;
        let report = match printed["tables"].as_array().map(Vec::as_slice) {
            Some([table]) if table["ok"] == true => {
                serde_json::from_value(table["report"].clone())?
            }
            _ => bail!("`run {job} --json` did not report one loaded table: {printed}"),
        };
        Ok((run, report))
    }

    /// The stack's environment with `extra` added (overriding it).
    fn env_with(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .env
            .iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .cloned()
            .collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    /// Compares `public.<table>` at the source with `<schema>.<table>` in the warehouse.
    async fn verify(&self, table: &str, schema: &str, source_sum: &str) -> Result<String> {
        let warehouse = self
            .stack
            .warehouse
            .connect(&self.names.warehouse_db)
            .await?;
        let loaded = text(&warehouse, &data::checksum(&format!("{schema}.{table}"))).await?;
        if loaded != source_sum {
            bail!(
                "{schema}.{table} differs from its source: warehouse {loaded}, source {source_sum}"
            );
        }
        Ok(format!("public.{table} → {schema}.{table}: {loaded}"))
    }

    async fn drop_schema(&self, schema: &str) -> Result<()> {
        let warehouse = self
            .stack
            .warehouse
            .connect(&self.names.warehouse_db)
            .await?;
        warehouse
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await?;
        Ok(())
    }

    /// The size of the extract's CSV (and a warm-up: the table is in cache afterwards).
    async fn count_source_bytes(&self, sql: &str) -> Result<u64> {
        let session = self.session().await?;
        let stream = session.copy_out(sql).await?;
        futures_util::pin_mut!(stream);
        let mut bytes = 0u64;
        while let Some(piece) = stream.next().await {
            bytes += piece?.len() as u64;
        }
        Ok(bytes)
    }

    /// The single-stream limit: psql's COPY, through `gzip -1` or not, into /dev/null.
    /// Returns the seconds and the CPU seconds of psql (and gzip).
    async fn psql_copy(&self, sql: &str, gzip: bool) -> Result<(f64, f64)> {
        let sink = if gzip {
            "| gzip -1 > /dev/null"
        } else {
            "> /dev/null"
        };
        let cpu_before = child::cpu_seconds(&child::usage(libc::RUSAGE_CHILDREN));
        let started = Instant::now();
        let status = tokio::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "set -o pipefail; \"$PSQL\" -X -q -v ON_ERROR_STOP=1 -d \"$URL\" -c \"$SQL\" {sink}"
            ))
            .env("PSQL", &self.psql)
            .env("URL", self.stack.source.url(&self.names.source_db))
            .env("SQL", sql)
            // The loader's pinned session settings, so both print the same text.
            .env(
                "PGOPTIONS",
                "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=3 -c bytea_output=hex",
            )
            .stdin(Stdio::null())
            .status()
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        ensure!(status.success(), "psql COPY failed: {status}");
        let cpu = child::cpu_seconds(&child::usage(libc::RUSAGE_CHILDREN)) - cpu_before;
        Ok((seconds, cpu))
    }

    /// Our extract of the whole table into null sinks (`prefix` None) or into S3 under
    /// `prefix`; returns the seconds, this process's CPU seconds and the compressed bytes.
    async fn ours(&self, e: &Extract, prefix: Option<&str>, rows: u64) -> Result<(f64, f64, u64)> {
        let session = self.session().await?;
        let s3 = &self.app.clients.s3;
        let codec = self.app.settings.staging_compression;
        let upload = match prefix {
            None => ChunkUpload::with_sinks(self.files, codec, |_| NullSink::default()),
            Some(prefix) => {
                ChunkUpload::to_s3(s3.clone(), &self.names.bucket, prefix, self.files, codec)
            }
        };
        let cpu_before = child::cpu_seconds(&child::usage(libc::RUSAGE_SELF));
        let started = Instant::now();
        let out = extract_chunk(
            &session,
            None,
            &e.sql,
            e.loads.clone(),
            e.keep.clone(),
            Vec::new(),
            true,
            upload,
        )
        .await?;
        let seconds = started.elapsed().as_secs_f64();
        let cpu = child::cpu_seconds(&child::usage(libc::RUSAGE_SELF)) - cpu_before;
        ensure!(
            out.stats.rows == rows,
            "extracted {} rows, expected {rows}",
            out.stats.rows
        );
        if prefix.is_some() {
            for object in &out.staged.objects {
                let head = s3
                    .head_object()
                    .bucket(&self.names.bucket)
                    .key(&object.key)
                    .send()
                    .await?;
                ensure!(
                    head.content_length() == Some(object.bytes as i64),
                    "S3 holds {:?} bytes of {}, {} were uploaded",
                    head.content_length(),
                    object.key,
                    object.bytes
                );
                s3.delete_object()
                    .bucket(&self.names.bucket)
                    .key(&object.key)
                    .send()
                    .await?;
            }
        }
        Ok((seconds, cpu, out.staged.bytes()))
    }
}

/// The first column of the first row, as text.
async fn text(client: &tokio_postgres::Client, sql: &str) -> Result<String> {
    client.batch_execute("SET TimeZone = 'UTC'").await?;
    let rows = client.simple_query(sql).await?;
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .with_context(|| format!("`{sql}` returned nothing"))
}

/// The newest installed PostgreSQL's psql, else the one on PATH.
fn psql_binary() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("bin/psql"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| PathBuf::from("psql"))
}
