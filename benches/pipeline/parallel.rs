//! Tables in parallel: one job of many equal tables loaded from scratch by
//! `redshift-loader run`, once one table at a time (`LOADER_TABLE_CONCURRENCY=1`) and once
//! with the default of 4, each into a schema of its own. Wall time, CPU and the
//! process's peak RSS; every table checked against its source.

use anyhow::{Context, Result};
use redshift_loader::config::{Format, Job};
use redshift_loader::setup;

use super::{data, step, Bench};
use crate::report::Measure;

/// Creates `tables` source tables of `rows` rows each (`par_0`, `par_1`, ...), once.
pub async fn create(bench: &Bench, tables: u32, rows: u64) -> Result<()> {
    step(&format!("parallel: {tables} tables of {rows} rows each"));
    let src = bench.source().await?;
    for t in 0..tables {
        src.batch_execute(&data::create_table(&format!("par_{t}"), rows))
            .await?;
        src.batch_execute(&format!("VACUUM ANALYZE par_{t}"))
            .await?;
    }
    Ok(())
}

/// Loads the tables into schema `par_c<concurrency>` with that concurrency.
pub async fn measure(
    bench: &Bench,
    tables: u32,
    rows: u64,
    concurrency: usize,
) -> Result<(Measure, Vec<String>)> {
    let name = format!("parallel_c{concurrency}");
    let mut list = String::new();
    for t in 0..tables {
        list.push_str(&format!("  - source: public.par_{t}\n"));
    }
    let yaml = format!(
        "name: {name}\n\
         source:\n  url: {}\n\
         destination:\n  url: {}\n  schema: par_c{concurrency}\n  iam_role: arn:aws:iam::123456789012:role/redshift-copy\n\
         frequency: 300\n\
         tables:\n{list}",
        bench.stack.source.url(&bench.names.source_db),
        bench.stack.redshift_url(&bench.names.warehouse_db),
    );
    let job = Job::parse(&yaml, Format::Yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = chrono::Utc::now();
    bench.app.store.put_job(&job, None, now).await?;
    for o in setup::run(&bench.app, &job, &setup::Options::default(), now).await? {
        o.result.with_context(|| format!("setup of {}", o.table))?;
    }
    step(&format!(
        "{name}: redshift-loader run of {tables} tables, LOADER_TABLE_CONCURRENCY={concurrency}"
    ));
    let level = concurrency.to_string();
    let run = bench
        .run_with(&name, &[("LOADER_TABLE_CONCURRENCY", level.as_str())])
        .await?;
    let mut verified = Vec::new();
    for t in 0..tables {
        let table = format!("par_{t}");
        let sum = bench.source_checksum(&table).await?;
        verified.push(
            bench
                .verify(&table, &format!("par_c{concurrency}"), &sum)
                .await?,
        );
    }
    bench.drop_schema(&format!("par_c{concurrency}")).await?;
    let measure = Measure::of_run(
        &name,
        &format!(
            "redshift-loader run of one job of {tables} tables × {rows} rows, first load, {concurrency} table(s) at once"
        ),
        tables as u64 * rows,
        &run,
    );
    Ok((measure, verified))
}
