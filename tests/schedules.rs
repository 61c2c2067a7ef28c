//! `schedules sync` against moto's EventBridge Scheduler: one schedule per enabled job.

use std::time::Duration;

use redshift_loader::app::App;
use redshift_loader::scheduler::{Change, Scheduler};

use crate::support::World;

/// The world's app with a schedule group of its own (moto's groups are shared).
async fn with_group(w: &World) -> App {
    let mut app = w.app.clone();
    let group = testkit::moto::unique_name("group");
    app.clients
        .scheduler
        .create_schedule_group()
        .name(&group)
        .send()
        .await
        .unwrap();
    app.settings.schedule_group = Some(group);
    app
}

fn job_yaml(w: &World, name: &str, extra: &str) -> redshift_loader::config::Job {
    let yaml = w
        .job_yaml(name, "  - source: public.t\n")
        .replace("frequency: 300\n", extra);
    redshift_loader::config::Job::parse(&yaml, redshift_loader::config::Format::Yaml).unwrap()
}

#[tokio::test]
async fn sync_keeps_one_schedule_per_enabled_job() {
    let w = World::new().await;
    let app = with_group(&w).await;
    let scheduler = Scheduler::new(app.clients.scheduler.clone(), &app.settings).unwrap();
    let mut shop = job_yaml(
        &w,
        "shop",
        "frequency: 900\nat: '09:**,10:**'\ntz: Europe/London\n",
    );
    let mut crm = job_yaml(&w, "crm", "frequency: 300\n");

    let changes = scheduler.sync(&[shop.clone(), crm.clone()]).await.unwrap();
    assert!(
        matches!(&changes[0], Change::Created(d) if d.name == "job-shop"),
        "{changes:?}"
    );
    assert!(
        matches!(&changes[1], Change::Created(d) if d.name == "job-crm"),
        "{changes:?}"
    );
    let listed = scheduler.list().await.unwrap();
    let shop_schedule = listed.iter().find(|e| e.name == "job-shop").unwrap();
    assert_eq!(shop_schedule.expression, "cron(0/15 9,10 * * ? *)");
    assert_eq!(shop_schedule.timezone, "Europe/London");
    assert_eq!(
        shop_schedule.input,
        r#"{"action":"run","execution_id":"<aws.scheduler.execution-id>","job":"shop","scheduled_time":"<aws.scheduler.scheduled-time>"}"#
    );
    assert_eq!(
        listed
            .iter()
            .find(|e| e.name == "job-crm")
            .unwrap()
            .expression,
        "rate(5 minutes)"
    );

    // Nothing changed: nothing to do. A changed frequency: updated.
    let again = scheduler.sync(&[shop.clone(), crm.clone()]).await.unwrap();
    assert!(
        again.iter().all(|c| matches!(c, Change::Unchanged(_))),
        "{again:?}"
    );
    crm.frequency = 3600;
    let changes = scheduler.sync(&[shop.clone(), crm.clone()]).await.unwrap();
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::Updated(d) if d.expression == "rate(1 hour)")),
        "{changes:?}"
    );

    // A disabled job and a deleted one lose their schedules.
    shop.disabled = true;
    let changes = scheduler.sync(&[shop.clone()]).await.unwrap();
    assert!(
        changes.contains(&Change::Deleted("job-shop".into())),
        "{changes:?}"
    );
    assert!(
        changes.contains(&Change::Deleted("job-crm".into())),
        "{changes:?}"
    );
    assert!(scheduler.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn verify_at_gives_a_job_a_verify_schedule_of_its_own() {
    let w = World::new().await;
    let app = with_group(&w).await;
    let scheduler = Scheduler::new(app.clients.scheduler.clone(), &app.settings).unwrap();
    let mut shop = job_yaml(&w, "shop", "frequency: 300\nverify_at: 'Monday 03:00'\n");
    let changes = scheduler.sync(std::slice::from_ref(&shop)).await.unwrap();
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::Created(d) if d.name == "verify-shop")),
        "{changes:?}"
    );
    let listed = scheduler.list().await.unwrap();
    let verify = listed.iter().find(|e| e.name == "verify-shop").unwrap();
    assert_eq!(verify.expression, "cron(0 3 ? * 2 *)", "Monday is day 2");
    assert_eq!(verify.input, r#"{"action":"verify","job":"shop"}"#);
    // Without verify_at the verify schedule goes; the run schedule stays.
    shop.verify_at = None;
    let changes = scheduler.sync(std::slice::from_ref(&shop)).await.unwrap();
    assert!(
        changes.contains(&Change::Deleted("verify-shop".into())),
        "{changes:?}"
    );
    let names: Vec<String> = scheduler
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec!["job-shop".to_string()]);
}

#[tokio::test]
async fn the_sync_schedules_event_and_the_cli_do_the_same() {
    let w = World::new().await;
    let app = with_group(&w).await;
    let job = job_yaml(&w, "events", "frequency: 600\n");
    app.store
        .put_job(&job, None, chrono::Utc::now())
        .await
        .unwrap();
    let handler = redshift_loader::lambda::Handler::from_lookup(app.clone(), |_| None).unwrap();
    let payload: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/sync_schedules.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let out = handler
        .handle(payload, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(out["changes"][0]["change"], "created", "{out}");
    assert_eq!(out["changes"][0]["expression"], "rate(10 minutes)");

    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_redshift-loader"))
        .args(["--json", "schedules", "list"])
        .env_clear()
        .envs(w.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env(
            "LOADER_SCHEDULE_GROUP",
            app.settings.schedule_group.as_deref().unwrap(),
        )
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(listed[0]["schedule"], "job-events");
    assert_eq!(listed[0]["expression"], "rate(10 minutes)");
    // The rate counts from the schedule's creation: three fires ten minutes apart.
    let fires: Vec<chrono::DateTime<chrono::Utc>> = listed[0]["next_fires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(fires.len(), 3, "{listed}");
    assert_eq!((fires[1] - fires[0]).num_minutes(), 10);
    assert!(fires[0] > chrono::Utc::now() - chrono::Duration::seconds(5));

    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_redshift-loader"))
        .args(["schedules", "list"])
        .env_clear()
        .envs(w.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env(
            "LOADER_SCHEDULE_GROUP",
            app.settings.schedule_group.as_deref().unwrap(),
        )
        .output()
        .unwrap();
    let human = String::from_utf8_lossy(&cli.stdout);
    assert!(human.contains("next fires"), "{human}");
    assert!(
        human.contains("(in 9m)") || human.contains("(in 10m)"),
        "{human}"
    );
}
