//! `jobs apply | list | show | delete`.

use std::path::Path;
use std::process::ExitCode;

use chrono::Utc;

use super::render::{table, Output};
use crate::app::App;
use crate::config::{Format, Job};
use crate::error::{Error, Result};
use crate::setup::{Decisions, DECISIONS, SETUP_ERROR};

/// Reads, validates and stores a job; prints the change as a unified diff of the YAML.
pub async fn apply(out: &Output, file: &Path, dry_run: bool) -> Result<ExitCode> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::File {
        path: file.display().to_string(),
        reason: e.to_string(),
    })?;
    let path = file.display().to_string();
    // One mistake a line, each after the file's name (as compilers print them).
    let job = Job::parse(&text, Format::from_path(file)).map_err(|e| Error::File {
        reason: e.to_string().replace('\n', &format!("\n{path}: ")),
        path,
    })?;
    let app = App::from_env().await?;
    let current = app.store.get_job(&job.name).await?;
    let before = current
        .as_ref()
        .map(|c| to_yaml(&c.job))
        .unwrap_or_default();
    let after = to_yaml(&job);
    let diff = similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header("stored", file.display().to_string().as_str())
        .to_string();
    let unchanged = current.as_ref().is_some_and(|c| c.job == job);

    let (status, version) = if unchanged {
        ("unchanged", current.as_ref().map(|c| c.version))
    } else if dry_run {
        ("would change", current.as_ref().map(|c| c.version))
    } else {
        let version = app
            .store
            .put_job(&job, current.as_ref().map(|c| c.version), Utc::now())
            .await?;
        (
            if current.is_some() {
                "updated"
            } else {
                "created"
            },
            Some(version),
        )
    };
    if out.json {
        out.print_json(&serde_json::json!({
            "job": job.name, "status": status, "version": version, "diff": diff,
        }));
    } else {
        if !unchanged {
            print!("{diff}");
        }
        match version {
            Some(v) => println!("job {}: {status} (version {v})", job.name),
            None => println!("job {}: {status}", job.name),
        }
        if status == "created" {
            println!(
                "next: redshift-loader setup {}   (creates the tables in Redshift and picks keys)",
                job.name
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn list(out: &Output) -> Result<ExitCode> {
    let app = App::from_env().await?;
    let jobs = app.store.list_jobs().await?;
    if out.json {
        let list: Vec<_> = jobs
            .iter()
            .map(|j| {
                serde_json::json!({
                    "name": j.job.name, "version": j.version,
                    "updated_at": j.updated_at.to_rfc3339(), "job": j.job,
                })
            })
            .collect();
        out.print_json(&serde_json::Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    if jobs.is_empty() {
        println!("no jobs yet; create one with `redshift-loader jobs apply -f JOB.yaml`");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table([
        "job", "tables", "every", "at", "state", "version", "updated",
    ]);
    for j in &jobs {
        let enabled = j.job.tables.iter().filter(|t| !t.disabled).count();
        t.add_row(vec![
            j.job.name.clone(),
            format!("{enabled}/{}", j.job.tables.len()),
            format!("{}s", j.job.frequency),
            j.job.at.as_ref().map(|a| a.0.join(",")).unwrap_or_default(),
            if j.job.disabled {
                "disabled"
            } else {
                "enabled"
            }
            .into(),
            j.version.to_string(),
            j.updated_at.format("%Y-%m-%d %H:%M:%SZ").to_string(),
        ]);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

pub async fn show(out: &Output, name: &str) -> Result<ExitCode> {
    let app = App::from_env().await?;
    let stored = app.store.require_job(name).await?;
    let mut tables = Vec::new();
    for t in &stored.job.tables {
        let decisions = app
            .store
            .get_table_document(name, &t.source, DECISIONS)
            .await?
            .and_then(|d| serde_json::from_value::<Decisions>(d).ok());
        let error = app
            .store
            .get_table_document(name, &t.source, SETUP_ERROR)
            .await?;
        tables.push((t, decisions, error));
    }
    if out.json {
        let tables: Vec<_> = tables
            .iter()
            .map(|(t, d, e)| serde_json::json!({"source": t.source, "setup": d, "setup_error": e}))
            .collect();
        out.print_json(&serde_json::json!({
            "job": stored.job, "version": stored.version,
            "updated_at": stored.updated_at.to_rfc3339(), "tables": tables,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "# job {} (version {}, updated {})",
        name,
        stored.version,
        stored.updated_at.to_rfc3339()
    );
    print!("{}", to_yaml(&stored.job));
    let mut t = table([
        "table",
        "redshift table",
        "mode",
        "primary key",
        "updated key",
        "setup",
    ]);
    for (cfg, decisions, error) in &tables {
        let setup = match (decisions, error) {
            (_, Some(e)) => format!(
                "failed: {}",
                e.get("message").and_then(|m| m.as_str()).unwrap_or("?")
            ),
            (None, None) => "not set up yet".into(),
            (Some(d), None) if d.warnings.is_empty() => "ok".into(),
            (Some(d), None) => format!("ok, {} warning(s)", d.warnings.len()),
        };
        let row = match decisions {
            Some(d) => vec![
                cfg.source.to_string(),
                d.destination.to_string(),
                d.copy_mode.value.to_string(),
                d.primary_key.value.join(", "),
                d.updated_key.value.clone().unwrap_or_default(),
                setup,
            ],
            None => vec![
                cfg.source.to_string(),
                String::new(),
                cfg.copy_mode.map(|m| m.to_string()).unwrap_or_default(),
                cfg.primary_key
                    .as_ref()
                    .map(|k| k.0.join(", "))
                    .unwrap_or_default(),
                cfg.updated_key.clone().unwrap_or_default(),
                setup,
            ],
        };
        t.add_row(row);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

pub async fn delete(out: &Output, name: &str) -> Result<ExitCode> {
    let app = App::from_env().await?;
    app.store.delete_job(name, Utc::now()).await?;
    if out.json {
        out.print_json(&serde_json::json!({"job": name, "status": "deleted"}));
    } else {
        println!("job {name}: deleted (its Redshift tables are left alone)");
    }
    Ok(ExitCode::SUCCESS)
}

fn to_yaml(job: &Job) -> String {
    serde_yaml_ng::to_string(job).expect("a job always serializes")
}
