//! EventBridge Scheduler: one schedule per enabled job, in the stack's schedule group,
//! invoking the function with `{"action":"run","job":"<name>"}`, and one more with
//! `{"action":"verify","job":"<name>"}` for a job with `verify_at`. `sync` makes the
//! group match the jobs: creates, updates, deletes.

use std::collections::BTreeMap;

use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode, ScheduleState, Target};
use chrono::{DateTime, Utc};

use crate::aws::{MissingSetting, Settings};
use crate::aws_error::{AwsError, Resource, SdkError};
use crate::config::Job;
use crate::fire::Expression;
use crate::schedule::{self, At};
use aws_sdk_scheduler::error::ProvideErrorMetadata;

/// Schedules this loader owns are named `job-<job name>` (job names are already
/// letters, digits, `-` and `_`).
pub fn schedule_name(job: &str) -> String {
    format!("job-{job}")
}

/// A job's `verify_at` schedule: `verify-<job name>`.
pub fn verify_schedule_name(job: &str) -> String {
    format!("verify-{job}")
}

/// The schedules a job gets: its runs, and its verify when it has `verify_at`; none
/// when it is disabled.
pub fn desired_all(job: &Job) -> Vec<Desired> {
    let Some(run) = desired(job) else {
        return Vec::new();
    };
    let mut out = vec![run];
    if let Some(at) = job.verify_at.as_ref().and_then(|a| At::parse(&a.0).ok()) {
        // An hour's frequency: an 'HH:**' window fires once, on the hour.
        let s = schedule::schedule(3600, Some(&at), job.tz.as_deref());
        out.push(Desired {
            name: verify_schedule_name(&job.name),
            expression: s.expression,
            timezone: s.timezone,
            input: serde_json::json!({"action": "verify", "job": job.name}).to_string(),
            note: s.note,
        });
    }
    out
}

/// What one job's schedule should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub name: String,
    pub expression: String,
    pub timezone: String,
    pub input: String,
    pub note: Option<String>,
}

/// The schedule a job gets, or `None` when it is disabled.
pub fn desired(job: &Job) -> Option<Desired> {
    if job.disabled {
        return None;
    }
    let at = job.at.as_ref().and_then(|a| At::parse(&a.0).ok());
    let s = schedule::schedule(job.frequency, at.as_ref(), job.tz.as_deref());
    Some(Desired {
        name: schedule_name(&job.name),
        expression: s.expression,
        timezone: s.timezone,
        // EventBridge Scheduler fills in the time this fire was scheduled for and the
        // attempt's id: `at` and the frequency guard are judged by the former, and a
        // second delivery of it does nothing.
        input: serde_json::json!({
            "action": "run", "job": job.name,
            "scheduled_time": "<aws.scheduler.scheduled-time>",
            "execution_id": "<aws.scheduler.execution-id>",
        })
        .to_string(),
        note: s.note,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Created(Desired),
    Updated(Desired),
    Unchanged(Desired),
    Deleted(String),
}

/// A schedule as it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub name: String,
    pub expression: String,
    pub timezone: String,
    pub input: String,
    pub enabled: bool,
    /// Where a `rate(...)` counts from: the schedule's start date, else its creation.
    pub anchor: Option<DateTime<Utc>>,
}

impl Existing {
    /// The next `n` times it fires after `now`, or why that cannot be said.
    pub fn next_fires(&self, now: DateTime<Utc>, n: usize) -> Result<Vec<DateTime<Utc>>, String> {
        let tz: chrono_tz::Tz = self
            .timezone
            .parse()
            .map_err(|_| format!("unknown time zone {:?}", self.timezone))?;
        let fires = Expression::parse(&self.expression)?.next(tz, now, self.anchor, n);
        if fires.is_empty() {
            return Err("no start or creation date to count the rate from".into());
        }
        Ok(fires)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Setting(#[from] MissingSetting),
    /// A Scheduler call failed: the line says on what and what to check.
    #[error(transparent)]
    Api(#[from] AwsError),
    #[error("schedule {name}: its target cannot be built: {reason}")]
    Target { name: String, reason: String },
}

pub struct Scheduler {
    client: aws_sdk_scheduler::Client,
    group: String,
    role_arn: String,
    function_arn: String,
}

impl Scheduler {
    pub fn new(
        client: aws_sdk_scheduler::Client,
        settings: &Settings,
    ) -> Result<Scheduler, SchedulerError> {
        let need = |v: &Option<String>, name: &'static str, what: &'static str| {
            v.clone().ok_or(MissingSetting { name, what })
        };
        Ok(Scheduler {
            client,
            group: need(&settings.schedule_group, "LOADER_SCHEDULE_GROUP", "name the schedule group (the SAM stack's ScheduleGroup output)")?,
            role_arn: need(&settings.scheduler_role_arn, "LOADER_SCHEDULER_ROLE_ARN", "name the role schedules invoke the function with (the SAM stack's SchedulerRoleArn output)")?,
            function_arn: need(&settings.function_arn, "LOADER_FUNCTION_ARN", "name the function schedules invoke (its ARN)")?,
        })
    }

    fn api<E>(&self, operation: &'static str, name: Option<&str>, e: SdkError<E>) -> SchedulerError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let group = &self.group;
        let resource = match name {
            Some(name) => Resource::Schedule { group, name },
            None => Resource::ScheduleGroup(group),
        };
        SchedulerError::Api(AwsError::of(operation, resource, &e))
    }

    /// The group's schedules.
    pub async fn list(&self) -> Result<Vec<Existing>, SchedulerError> {
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_schedules()
                .group_name(&self.group)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| self.api("ListSchedules", None, e))?;
            names.extend(
                out.schedules()
                    .iter()
                    .filter_map(|s| s.name().map(str::to_string)),
            );
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        let mut existing = Vec::new();
        for name in names {
            let s = self
                .client
                .get_schedule()
                .group_name(&self.group)
                .name(&name)
                .send()
                .await
                .map_err(|e| self.api("GetSchedule", Some(&name), e))?;
            existing.push(Existing {
                name,
                expression: s.schedule_expression().unwrap_or_default().to_string(),
                timezone: s
                    .schedule_expression_timezone()
                    .unwrap_or("UTC")
                    .to_string(),
                input: s
                    .target()
                    .and_then(|t| t.input())
                    .unwrap_or_default()
                    .to_string(),
                enabled: s.state() != Some(&ScheduleState::Disabled),
                anchor: s
                    .start_date()
                    .or(s.creation_date())
                    .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
            });
        }
        existing.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(existing)
    }

    /// Makes the group hold exactly the schedules of the enabled jobs.
    pub async fn sync(&self, jobs: &[Job]) -> Result<Vec<Change>, SchedulerError> {
        let existing: BTreeMap<String, Existing> = self
            .list()
            .await?
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect();
        let wanted: Vec<Desired> = jobs.iter().flat_map(desired_all).collect();
        let mut changes = Vec::new();
        for d in &wanted {
            match existing.get(&d.name) {
                Some(e)
                    if e.expression == d.expression
                        && e.timezone == d.timezone
                        && e.input == d.input
                        && e.enabled =>
                {
                    changes.push(Change::Unchanged(d.clone()))
                }
                Some(_) => {
                    self.client
                        .update_schedule()
                        .group_name(&self.group)
                        .name(&d.name)
                        .schedule_expression(&d.expression)
                        .schedule_expression_timezone(&d.timezone)
                        .state(ScheduleState::Enabled)
                        .flexible_time_window(off())
                        .target(self.target(d)?)
                        .send()
                        .await
                        .map_err(|e| self.api("UpdateSchedule", Some(&d.name), e))?;
                    changes.push(Change::Updated(d.clone()));
                }
                None => {
                    self.client
                        .create_schedule()
                        .group_name(&self.group)
                        .name(&d.name)
                        .schedule_expression(&d.expression)
                        .schedule_expression_timezone(&d.timezone)
                        .state(ScheduleState::Enabled)
                        .flexible_time_window(off())
                        .target(self.target(d)?)
                        .description("redshift-loader job schedule (managed by `redshift-loader schedules sync`)")
                        .send()
                        .await
                        .map_err(|e| self.api("CreateSchedule", Some(&d.name), e))?;
                    changes.push(Change::Created(d.clone()));
                }
            }
        }
        for name in existing.keys() {
            let ours = name.starts_with("job-") || name.starts_with("verify-");
            if ours && !wanted.iter().any(|d| &d.name == name) {
                self.client
                    .delete_schedule()
                    .group_name(&self.group)
                    .name(name)
                    .send()
                    .await
                    .map_err(|e| self.api("DeleteSchedule", Some(name), e))?;
                changes.push(Change::Deleted(name.clone()));
            }
        }
        Ok(changes)
    }

    /// Makes the group match the jobs stored in DynamoDB (`schedules sync`, and the
    /// `sync_schedules` event).
    pub async fn sync_stored(app: &crate::app::App) -> crate::Result<Vec<Change>> {
        let jobs: Vec<Job> = app
            .store
            .list_jobs()
            .await?
            .into_iter()
            .map(|s| s.job)
            .collect();
        let failed = |e: SchedulerError| crate::Error::Failed(e.to_string());
        Scheduler::new(app.clients.scheduler.clone(), &app.settings)
            .map_err(failed)?
            .sync(&jobs)
            .await
            .map_err(failed)
    }

    fn target(&self, d: &Desired) -> Result<Target, SchedulerError> {
        Target::builder()
            .arn(&self.function_arn)
            .role_arn(&self.role_arn)
            .input(&d.input)
            .build()
            .map_err(|e| SchedulerError::Target {
                name: d.name.clone(),
                reason: e.to_string(),
            })
    }
}

fn off() -> FlexibleTimeWindow {
    FlexibleTimeWindow::builder()
        .mode(FlexibleTimeWindowMode::Off)
        .build()
        .expect("mode is set")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Format;

    #[test]
    fn a_job_gets_its_schedule_unless_disabled() {
        let yaml = "name: shop\nsource: {url_env: S}\ndestination: {url_env: D}\nfrequency: 900\nat: '09:**,10:**'\ntz: Europe/London\ntables: [{source: public.t}]\n";
        let mut job = Job::parse(yaml, Format::Yaml).unwrap();
        let d = desired(&job).unwrap();
        assert_eq!(d.name, "job-shop");
        assert_eq!(d.expression, "cron(0/15 9,10 * * ? *)");
        assert_eq!(d.timezone, "Europe/London");
        assert_eq!(
            d.input,
            r#"{"action":"run","execution_id":"<aws.scheduler.execution-id>","job":"shop","scheduled_time":"<aws.scheduler.scheduled-time>"}"#
        );
        job.disabled = true;
        assert_eq!(desired(&job), None);
        assert!(desired_all(&job).is_empty());
    }

    #[test]
    fn verify_at_adds_a_verify_schedule() {
        let yaml = "name: shop\nsource: {url_env: S}\ndestination: {url_env: D}\nfrequency: 300\ntz: Europe/London\nverify_at: '03:30'\ntables: [{source: public.t}]\n";
        let job = Job::parse(yaml, Format::Yaml).unwrap();
        let all = desired_all(&job);
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].name, "verify-shop");
        assert_eq!(all[1].expression, "cron(30 3 * * ? *)");
        assert_eq!(all[1].timezone, "Europe/London");
        assert_eq!(all[1].input, r#"{"action":"verify","job":"shop"}"#);
    }
}
