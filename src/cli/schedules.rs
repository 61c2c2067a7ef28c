//! `schedules sync | list`.

use std::process::ExitCode;

use super::render::{table, Output};
use crate::app::App;
use crate::error::Error;
use crate::scheduler::{Change, Scheduler};

fn scheduler(app: &App) -> crate::Result<Scheduler> {
    Scheduler::new(app.clients.scheduler.clone(), &app.settings)
        .map_err(|e| Error::Failed(e.to_string()))
}

pub async fn sync(out: &Output) -> crate::Result<ExitCode> {
    let app = App::from_env().await?;
    let changes = Scheduler::sync_stored(&app).await?;
    if out.json {
        out.print_json(&serde_json::Value::Array(
            changes.iter().map(crate::lambda::change_json).collect(),
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(["schedule", "change", "expression", "timezone", "note"]);
    for c in &changes {
        let row = match c {
            Change::Created(d) | Change::Updated(d) | Change::Unchanged(d) => vec![
                d.name.clone(),
                match c {
                    Change::Created(_) => "created",
                    Change::Updated(_) => "updated",
                    _ => "unchanged",
                }
                .to_string(),
                d.expression.clone(),
                d.timezone.clone(),
                d.note.clone().unwrap_or_default(),
            ],
            Change::Deleted(name) => vec![
                name.clone(),
                "deleted".into(),
                String::new(),
                String::new(),
                String::new(),
            ],
        };
        t.add_row(row);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

pub async fn list(out: &Output) -> crate::Result<ExitCode> {
    let app = App::from_env().await?;
    let existing = scheduler(&app)?
        .list()
        .await
        .map_err(|e| Error::Failed(e.to_string()))?;
    let now = chrono::Utc::now();
    if out.json {
        let list: Vec<_> = existing
            .iter()
            .map(|e| {
                let (next, why) = match e.next_fires(now, NEXT) {
                    Ok(f) => (f.iter().map(|t| t.to_rfc3339()).collect(), None),
                    Err(why) => (Vec::new(), Some(why)),
                };
                serde_json::json!({"schedule": e.name, "expression": e.expression, "timezone": e.timezone, "enabled": e.enabled, "input": e.input, "next_fires": next, "next_fires_unknown": why})
            })
            .collect();
        out.print_json(&serde_json::Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table([
        "schedule",
        "expression",
        "timezone",
        "state",
        "next fires (local)",
    ]);
    for e in &existing {
        let next = match (e.next_fires(now, NEXT), e.timezone.parse()) {
            (Ok(f), Ok(tz)) => f
                .iter()
                .map(|t| crate::fire::describe(*t, tz, now))
                .collect::<Vec<_>>()
                .join("\n"),
            (Err(why), _) => format!("unknown: {why}"),
            (_, Err(_)) => format!("unknown time zone {:?}", e.timezone),
        };
        t.add_row(vec![
            e.name.clone(),
            e.expression.clone(),
            e.timezone.clone(),
            if e.enabled { "enabled" } else { "disabled" }.to_string(),
            if e.enabled { next } else { String::new() },
        ]);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

/// How many upcoming fire times `list` shows per schedule.
const NEXT: usize = 3;
