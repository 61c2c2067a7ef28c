//! Process-wide settings (environment) and AWS clients, built once and passed by
//! reference: the CLI builds them per command, the Lambda once per container.

use aws_config::SdkConfig;

use crate::secrets::SecretClients;
use crate::stage::compress::Codec;

/// The loader's environment, the same names for the CLI and the Lambda function.
///
/// [`Settings::from_lookup`] checks every `LOADER_*` and `IMPORT_*` variable, those it
/// keeps here and those read elsewhere ([`crate::sync::Timing`],
/// [`crate::lambda::FanOut`], the deadline margin), so a bad one stops the CLI and the
/// function at start-up, by name, before any work.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// `LOADER_STATE_TABLE`: the DynamoDB table holding jobs, marks, leases and runs.
    pub state_table: Option<String>,
    /// `LOADER_STAGING_BUCKET` / `LOADER_STAGING_PREFIX`.
    pub staging_bucket: Option<String>,
    pub staging_prefix: String,
    /// `LOADER_COPY_ROLE_ARN`: the COPY role when a job names none.
    pub copy_role_arn: Option<String>,
    /// `LOADER_SCHEDULE_GROUP` / `LOADER_SCHEDULER_ROLE_ARN`.
    pub schedule_group: Option<String>,
    pub scheduler_role_arn: Option<String>,
    /// `LOADER_FUNCTION_NAME`, else `AWS_LAMBDA_FUNCTION_NAME`.
    pub function_name: Option<String>,
    /// The function's ARN, which schedules target (`LOADER_FUNCTION_ARN`).
    pub function_arn: Option<String>,
    /// `IMPORT_ROW_LIMIT` / `IMPORT_CHUNK_SIZE` (checked: whole numbers of at least 1);
    /// a table's own value wins where they are used.
    pub import_row_limit: Option<String>,
    pub import_chunk_size: Option<String>,
    /// `LOADER_S3_FORCE_PATH_STYLE=true` for S3-compatible endpoints (the local stack).
    pub s3_force_path_style: bool,
    /// `LOADER_SHOW_REJECTED_VALUES=true`: a value Redshift refused appears in the
    /// load error (stored in DynamoDB, the run history, logs, the failure queue). Off by
    /// default: the error then tells column, line, reason and the value's length only.
    pub show_rejected_values: bool,
    /// `LOADER_FILES_PER_CHUNK`: how many files each chunk is staged as (1 to
    /// [`MAX_FILES_PER_CHUNK`]); unset, one per slice of the destination cluster, at
    /// most [`crate::warehouse::slices::MAX_FILES`].
    pub files_per_chunk: Option<usize>,
    /// `LOADER_STAGING_COMPRESSION`: `zstd` (the default) or `gzip` (level 1).
    pub staging_compression: Codec,
}

/// The most `LOADER_FILES_PER_CHUNK` may ask for (each file in flight holds its own
/// buffers: [`crate::stage::upload`]).
pub const MAX_FILES_PER_CHUNK: usize = 64;

#[derive(Debug, thiserror::Error)]
#[error("{name} is not set: {what}")]
pub struct MissingSetting {
    pub name: &'static str,
    pub what: &'static str,
}

/// Every setting that cannot be used as given, one per line, each starting with its
/// variable's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct BadSettings(pub Vec<String>);

impl std::fmt::Display for BadSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

/// Every variable the loader reads (`LOADER_SETTLE_SECONDS` is no longer used, and
/// says so).
pub const KNOWN: &[&str] = &[
    "LOADER_STATE_TABLE",
    "LOADER_STAGING_BUCKET",
    "LOADER_STAGING_PREFIX",
    "LOADER_COPY_ROLE_ARN",
    "LOADER_SCHEDULE_GROUP",
    "LOADER_SCHEDULER_ROLE_ARN",
    "LOADER_FUNCTION_NAME",
    "LOADER_FUNCTION_ARN",
    "LOADER_S3_FORCE_PATH_STYLE",
    "LOADER_SHOW_REJECTED_VALUES",
    "LOADER_FILES_PER_CHUNK",
    "LOADER_STAGING_COMPRESSION",
    "LOADER_CATCHUP_WINDOW",
    "LOADER_LOOKBACK_SECONDS",
    "LOADER_LEASE_SECONDS",
    "LOADER_TABLE_CONCURRENCY",
    "LOADER_TABLES_PER_INVOCATION",
    "LOADER_FANOUT_LIMIT",
    "LOADER_DEADLINE_MARGIN_SECONDS",
    "LOADER_SETTLE_SECONDS",
    "IMPORT_ROW_LIMIT",
    "IMPORT_CHUNK_SIZE",
];

impl Settings {
    /// Reads and checks the settings through `lookup` (the environment in production):
    /// every bad one is reported, by name.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, BadSettings> {
        let get = |k: &str| {
            lookup(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut bad = Vec::new();
        let mut checked = |name: &str, check: fn(&str) -> Result<(), String>| {
            let value = get(name)?;
            match check(&value) {
                Ok(()) => Some(value),
                Err(reason) => {
                    bad.push(format!("{name}: {reason}"));
                    None
                }
            }
        };
        let mut settings = Settings {
            state_table: checked("LOADER_STATE_TABLE", check::table_name),
            staging_bucket: checked("LOADER_STAGING_BUCKET", check::bucket_name),
            staging_prefix: checked("LOADER_STAGING_PREFIX", check::key_prefix)
                .unwrap_or_else(|| "staging".into()),
            copy_role_arn: checked("LOADER_COPY_ROLE_ARN", check::role_arn),
            schedule_group: checked("LOADER_SCHEDULE_GROUP", check::schedule_group),
            scheduler_role_arn: checked("LOADER_SCHEDULER_ROLE_ARN", check::role_arn),
            function_name: checked("LOADER_FUNCTION_NAME", check::function_name)
                .or_else(|| get("AWS_LAMBDA_FUNCTION_NAME")),
            function_arn: checked("LOADER_FUNCTION_ARN", check::function_arn),
            import_row_limit: checked("IMPORT_ROW_LIMIT", |v| {
                crate::config::parse_rows(v).map(drop)
            }),
            import_chunk_size: checked("IMPORT_CHUNK_SIZE", |v| {
                crate::config::parse_rows(v).map(drop)
            }),
            s3_force_path_style: false,
            show_rejected_values: false,
            files_per_chunk: None,
            staging_compression: Codec::default(),
        };
        if let Some(v) = get("LOADER_FILES_PER_CHUNK") {
            match check::files_per_chunk(&v) {
                Ok(n) => settings.files_per_chunk = Some(n),
                Err(reason) => bad.push(format!("LOADER_FILES_PER_CHUNK: {reason}")),
            }
        }
        if let Some(v) = get("LOADER_STAGING_COMPRESSION") {
            match Codec::parse(&v) {
                Ok(codec) => settings.staging_compression = codec,
                Err(reason) => bad.push(format!("LOADER_STAGING_COMPRESSION: {reason}")),
            }
        }
        if let Some(v) = get("LOADER_S3_FORCE_PATH_STYLE") {
            match check::flag(&v) {
                Ok(on) => settings.s3_force_path_style = on,
                Err(reason) => bad.push(format!("LOADER_S3_FORCE_PATH_STYLE: {reason}")),
            }
        }
        if let Some(v) = get("LOADER_SHOW_REJECTED_VALUES") {
            match check::flag(&v) {
                Ok(on) => settings.show_rejected_values = on,
                Err(reason) => bad.push(format!("LOADER_SHOW_REJECTED_VALUES: {reason}")),
            }
        }
        // Read where they are used; checked here so that a bad one stops every command.
        if let Err(e) = crate::sync::Timing::from_lookup(&lookup) {
            bad.push(e);
        }
        if let Err(e) = crate::lambda::FanOut::from_lookup(&lookup) {
            bad.push(e);
        }
        if let Err(e) = crate::lambda::deadline_margin(&lookup) {
            bad.push(e);
        }
        if bad.is_empty() {
            Ok(settings)
        } else {
            Err(BadSettings(bad))
        }
    }

    /// From the process environment; a `LOADER_*` or `IMPORT_*` variable the loader
    /// does not read (a typo, most likely) is logged as a warning.
    pub fn from_env() -> Result<Settings, BadSettings> {
        for name in unknown(std::env::vars_os().filter_map(|(k, _)| k.into_string().ok())) {
            tracing::warn!(variable = %name, "{name} is not a setting of redshift-loader and is ignored; see README for the settings");
        }
        Settings::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn state_table(&self) -> Result<&str, MissingSetting> {
        self.state_table.as_deref().ok_or(MissingSetting {
            name: "LOADER_STATE_TABLE",
            what: "name the DynamoDB table that holds jobs and state (the SAM stack's StateTable output)",
        })
    }
}

/// PURE: the `LOADER_*` and `IMPORT_*` names among `names` that the loader does not
/// read, sorted.
pub fn unknown(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with("LOADER_") || n.starts_with("IMPORT_"))
        .filter(|n| !KNOWN.contains(&n.as_str()))
        .collect();
    out.sort();
    out
}

/// What each setting must look like (PURE). Messages say what was expected.
mod check {
    fn chars_ok(v: &str, extra: &str) -> bool {
        v.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    }

    /// A DynamoDB table name (3–255 of `A-Za-z0-9_.-`) or a table ARN.
    pub fn table_name(v: &str) -> Result<(), String> {
        let ok = if v.starts_with("arn:") {
            v.split(':').nth(2) == Some("dynamodb") && v.contains(":table/")
        } else {
            (3..=255).contains(&v.len()) && chars_ok(v, "_.-")
        };
        ok.then_some(()).ok_or_else(|| {
            format!("expected a DynamoDB table name (3 to 255 letters, digits, '_', '.' or '-') or its ARN, got {v:?}")
        })
    }

    /// A number of files per chunk, 1 to [`super::MAX_FILES_PER_CHUNK`].
    pub fn files_per_chunk(v: &str) -> Result<usize, String> {
        v.parse::<usize>()
            .ok()
            .filter(|n| (1..=super::MAX_FILES_PER_CHUNK).contains(n))
            .ok_or_else(|| {
                format!(
                    "expected a whole number of files from 1 to {} (unset: one per slice of the cluster), got {v:?}",
                    super::MAX_FILES_PER_CHUNK
                )
            })
    }

    /// An S3 bucket name: not a URL, not a path (names from before 2018 may hold upper
    /// case and `_`, so those pass).
    pub fn bucket_name(v: &str) -> Result<(), String> {
        if v.starts_with("arn:") {
            // An access point or another S3 resource ARN.
            return (v.split(':').nth(2).is_some_and(|s| s.starts_with("s3")))
                .then_some(())
                .ok_or_else(|| format!("expected an S3 bucket name or S3 ARN, got {v:?}"));
        }
        let ok = (3..=255).contains(&v.len())
            && chars_ok(v, "._-")
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric());
        ok.then_some(()).ok_or_else(|| {
            format!("expected a bucket name such as my-staging-bucket (3 to 63 lowercase letters, digits, '.' or '-'; no s3:// and no path), got {v:?}")
        })
    }

    /// A key prefix inside the bucket (`staging`, `loader/staging/`).
    pub fn key_prefix(v: &str) -> Result<(), String> {
        if v.starts_with("s3://") {
            return Err(format!(
                "expected a key prefix inside LOADER_STAGING_BUCKET such as staging (no s3://), got {v:?}"
            ));
        }
        if v.chars().any(|c| c.is_control() || c == '\\') || v.len() > 512 {
            return Err(format!(
                "expected a key prefix such as staging (no control characters or '\\', at most 512 bytes), got {v:?}"
            ));
        }
        Ok(())
    }

    pub fn role_arn(v: &str) -> Result<(), String> {
        crate::config::is_role_arn(v).then_some(()).ok_or_else(|| {
            format!("expected an IAM role ARN (arn:aws:iam::123456789012:role/name), got {v:?}")
        })
    }

    /// An EventBridge Scheduler group name.
    pub fn schedule_group(v: &str) -> Result<(), String> {
        ((1..=64).contains(&v.len()) && chars_ok(v, "-_."))
            .then_some(())
            .ok_or_else(|| {
                format!("expected a schedule group name (1 to 64 letters, digits, '-', '_' or '.'), got {v:?}")
            })
    }

    /// A Lambda function name, `name:alias`, or an ARN.
    pub fn function_name(v: &str) -> Result<(), String> {
        ((1..=170).contains(&v.len()) && chars_ok(v, "-_.:$"))
            .then_some(())
            .ok_or_else(|| {
                format!("expected a Lambda function name or ARN (letters, digits, '-', '_'; e.g. shop-loader), got {v:?}")
            })
    }

    /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`.
    pub fn function_arn(v: &str) -> Result<(), String> {
        let parts: Vec<&str> = v.split(':').collect();
        let ok = matches!(parts.as_slice(),
            ["arn", partition, "lambda", region, account, "function", name, rest @ ..]
                if partition.starts_with("aws")
                    && !region.is_empty()
                    && account.len() == 12
                    && account.chars().all(|c| c.is_ascii_digit())
                    && !name.is_empty()
                    && chars_ok(name, "-_")
                    && rest.len() <= 1);
        ok.then_some(()).ok_or_else(|| {
            format!("expected a Lambda function ARN (arn:aws:lambda:eu-west-1:123456789012:function:name), got {v:?}")
        })
    }

    pub fn flag(v: &str) -> Result<bool, String> {
        match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => Ok(true),
            "0" | "false" | "no" => Ok(false),
            _ => Err(format!("expected true or false, got {v:?}")),
        }
    }
}

/// Every AWS client the loader uses, from one SDK configuration.
#[derive(Debug, Clone)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub secrets: SecretClients,
    /// For continuations: the function invoking itself.
    pub lambda: aws_sdk_lambda::Client,
    pub scheduler: aws_sdk_scheduler::Client,
}

/// The SDK's configuration from the standard environment (region, credentials,
/// `AWS_ENDPOINT_URL*`), at the behaviour version every client here is built for.
pub async fn sdk_config() -> SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

impl Clients {
    /// From the standard SDK environment (region, credentials, `AWS_ENDPOINT_URL*`).
    pub async fn from_env(settings: &Settings) -> Clients {
        Clients::new(&sdk_config().await, settings)
    }

    pub fn new(sdk: &SdkConfig, settings: &Settings) -> Clients {
        let s3 = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(settings.s3_force_path_style)
            .build();
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(s3),
            secrets: SecretClients {
                secrets_manager: aws_sdk_secretsmanager::Client::new(sdk),
                ssm: aws_sdk_ssm::Client::new(sdk),
            },
            lambda: aws_sdk_lambda::Client::new(sdk),
            scheduler: aws_sdk_scheduler::Client::new(sdk),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{unknown, Settings};
    use crate::stage::compress::Codec;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let env: HashMap<&str, &str> = pairs.iter().copied().collect();
        Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).map_err(|e| e.to_string())
    }

    #[test]
    fn settings_read_names_and_defaults() {
        let s = settings(&[
            ("LOADER_STATE_TABLE", "state"),
            ("AWS_LAMBDA_FUNCTION_NAME", "fn"),
            ("LOADER_S3_FORCE_PATH_STYLE", "TRUE"),
            ("LOADER_COPY_ROLE_ARN", "  "),
            ("LOADER_STAGING_BUCKET", " my-bucket "),
            ("IMPORT_ROW_LIMIT", "1_000"),
        ])
        .unwrap();
        assert_eq!(s.state_table.as_deref(), Some("state"));
        assert_eq!(s.function_name.as_deref(), Some("fn"));
        assert_eq!(s.staging_prefix, "staging");
        assert_eq!(s.staging_bucket.as_deref(), Some("my-bucket"));
        assert_eq!(s.copy_role_arn, None);
        assert_eq!(s.import_row_limit.as_deref(), Some("1_000"));
        assert!(s.s3_force_path_style);
        assert!(!s.show_rejected_values);
        let empty = settings(&[]).unwrap();
        assert!(!empty.s3_force_path_style);
        assert!(!empty.show_rejected_values);
        assert_eq!(empty.files_per_chunk, None);
        assert_eq!(empty.staging_compression, Codec::Zstd);
        let staging = settings(&[
            ("LOADER_FILES_PER_CHUNK", " 3 "),
            ("LOADER_STAGING_COMPRESSION", "gzip"),
        ])
        .unwrap();
        assert_eq!(staging.files_per_chunk, Some(3));
        assert_eq!(staging.staging_compression, Codec::Gzip);
        assert!(
            settings(&[("LOADER_SHOW_REJECTED_VALUES", "true")])
                .unwrap()
                .show_rejected_values
        );
        assert_eq!(
            empty.state_table().unwrap_err().to_string(),
            "LOADER_STATE_TABLE is not set: name the DynamoDB table that holds jobs and state (the SAM stack's StateTable output)"
        );
    }

    #[test]
    fn what_the_stack_and_the_template_set_is_accepted() {
        let s = settings(&[
            ("LOADER_STATE_TABLE", "shop-StateTable-1ABCDEF"),
            ("LOADER_STAGING_BUCKET", "shop-stagingbucket-1x2y3z.eu"),
            ("LOADER_STAGING_PREFIX", "loader/staging/"),
            (
                "LOADER_COPY_ROLE_ARN",
                "arn:aws:iam::123456789012:role/redshift-copy",
            ),
            ("LOADER_SCHEDULE_GROUP", "redshift-loader"),
            (
                "LOADER_SCHEDULER_ROLE_ARN",
                "arn:aws-cn:iam::123456789012:role/path/sched",
            ),
            ("LOADER_FUNCTION_NAME", "shop-loader:live"),
            (
                "LOADER_FUNCTION_ARN",
                "arn:aws:lambda:eu-west-1:123456789012:function:shop-loader",
            ),
            ("LOADER_S3_FORCE_PATH_STYLE", "no"),
            ("LOADER_CATCHUP_WINDOW", "6h"),
            ("LOADER_LEASE_SECONDS", "20m"),
            ("LOADER_TABLE_CONCURRENCY", "8"),
            ("LOADER_TABLES_PER_INVOCATION", "16"),
            ("LOADER_FANOUT_LIMIT", "4"),
            ("LOADER_DEADLINE_MARGIN_SECONDS", "3m"),
            ("LOADER_FILES_PER_CHUNK", "16"),
            ("LOADER_STAGING_COMPRESSION", "zstd"),
            ("IMPORT_ROW_LIMIT", "5000000"),
            ("IMPORT_CHUNK_SIZE", "100_000"),
        ]);
        assert!(s.is_ok(), "{s:?}");
        assert!(settings(&[(
            "LOADER_STATE_TABLE",
            "arn:aws:dynamodb:eu-west-1:123456789012:table/state"
        )])
        .is_ok());
    }

    /// Each bad value is refused with its name and what was expected.
    #[test]
    fn every_bad_setting_is_refused_by_name() {
        for (name, value, message) in [
            ("IMPORT_ROW_LIMIT", "abc", "IMPORT_ROW_LIMIT: expected a whole number of rows of at least 1, got \"abc\""),
            ("IMPORT_ROW_LIMIT", "0", "IMPORT_ROW_LIMIT: expected a whole number of rows of at least 1, got \"0\""),
            ("IMPORT_CHUNK_SIZE", "1e5", "IMPORT_CHUNK_SIZE: expected a whole number of rows of at least 1, got \"1e5\""),
            ("IMPORT_CHUNK_SIZE", "-5", "IMPORT_CHUNK_SIZE: expected a whole number of rows of at least 1, got \"-5\""),
            ("LOADER_DEADLINE_MARGIN_SECONDS", "soon", "LOADER_DEADLINE_MARGIN_SECONDS: \"soon\" is not a duration; write 90s, 15m, 2h, 1d or seconds"),
            ("LOADER_DEADLINE_MARGIN_SECONDS", "15m", "LOADER_DEADLINE_MARGIN_SECONDS: \"15m\" is as long as Lambda's longest timeout (15m); keep it well under the function's timeout"),
            ("LOADER_LEASE_SECONDS", "20", "LOADER_LEASE_SECONDS: \"20\" is too short; at least 60 s"),
            ("LOADER_LOOKBACK_SECONDS", "10 minutes", "LOADER_LOOKBACK_SECONDS: \"10 minutes\": unknown unit \" minutes\"; write 90s, 15m, 2h, 1d or seconds"),
            ("LOADER_CATCHUP_WINDOW", "-5", "LOADER_CATCHUP_WINDOW: \"-5\" is not a duration; write 90s, 15m, 2h, 1d or seconds"),
            ("LOADER_TABLE_CONCURRENCY", "0", "LOADER_TABLE_CONCURRENCY: \"0\" is not a number of tables from 1 to 64"),
            ("LOADER_TABLES_PER_INVOCATION", "many", "LOADER_TABLES_PER_INVOCATION: \"many\" is not a whole number from 1 to 10000"),
            ("LOADER_FANOUT_LIMIT", "0", "LOADER_FANOUT_LIMIT: \"0\" is not a whole number from 1 to 1000"),
            ("LOADER_S3_FORCE_PATH_STYLE", "on", "LOADER_S3_FORCE_PATH_STYLE: expected true or false, got \"on\""),
            ("LOADER_SHOW_REJECTED_VALUES", "show", "LOADER_SHOW_REJECTED_VALUES: expected true or false, got \"show\""),
            ("LOADER_FILES_PER_CHUNK", "0", "LOADER_FILES_PER_CHUNK: expected a whole number of files from 1 to 64 (unset: one per slice of the cluster), got \"0\""),
            ("LOADER_FILES_PER_CHUNK", "auto", "LOADER_FILES_PER_CHUNK: expected a whole number of files from 1 to 64 (unset: one per slice of the cluster), got \"auto\""),
            ("LOADER_FILES_PER_CHUNK", "65", "LOADER_FILES_PER_CHUNK: expected a whole number of files from 1 to 64 (unset: one per slice of the cluster), got \"65\""),
            ("LOADER_STAGING_COMPRESSION", "bzip2", "LOADER_STAGING_COMPRESSION: expected zstd or gzip, got \"bzip2\""),
            ("LOADER_STAGING_BUCKET", "s3://my-bucket/staging", "LOADER_STAGING_BUCKET: expected a bucket name such as my-staging-bucket (3 to 63 lowercase letters, digits, '.' or '-'; no s3:// and no path), got \"s3://my-bucket/staging\""),
            ("LOADER_STAGING_BUCKET", "my bucket", "LOADER_STAGING_BUCKET: expected a bucket name such as my-staging-bucket (3 to 63 lowercase letters, digits, '.' or '-'; no s3:// and no path), got \"my bucket\""),
            ("LOADER_STAGING_PREFIX", "s3://b/staging", "LOADER_STAGING_PREFIX: expected a key prefix inside LOADER_STAGING_BUCKET such as staging (no s3://), got \"s3://b/staging\""),
            ("LOADER_STATE_TABLE", "my table", "LOADER_STATE_TABLE: expected a DynamoDB table name (3 to 255 letters, digits, '_', '.' or '-') or its ARN, got \"my table\""),
            ("LOADER_COPY_ROLE_ARN", "redshift-copy", "LOADER_COPY_ROLE_ARN: expected an IAM role ARN (arn:aws:iam::123456789012:role/name), got \"redshift-copy\""),
            ("LOADER_SCHEDULER_ROLE_ARN", "arn:aws:iam::123:role/x", "LOADER_SCHEDULER_ROLE_ARN: expected an IAM role ARN (arn:aws:iam::123456789012:role/name), got \"arn:aws:iam::123:role/x\""),
            ("LOADER_SCHEDULE_GROUP", "my group", "LOADER_SCHEDULE_GROUP: expected a schedule group name (1 to 64 letters, digits, '-', '_' or '.'), got \"my group\""),
            ("LOADER_FUNCTION_NAME", "my function", "LOADER_FUNCTION_NAME: expected a Lambda function name or ARN (letters, digits, '-', '_'; e.g. shop-loader), got \"my function\""),
            ("LOADER_FUNCTION_ARN", "shop-loader", "LOADER_FUNCTION_ARN: expected a Lambda function ARN (arn:aws:lambda:eu-west-1:123456789012:function:name), got \"shop-loader\""),
        ] {
            assert_eq!(settings(&[(name, value)]).unwrap_err(), message, "{name}={value}");
        }
    }

    #[test]
    fn all_bad_settings_are_reported_at_once() {
        assert_eq!(
            settings(&[("IMPORT_ROW_LIMIT", "abc"), ("LOADER_LEASE_SECONDS", "x"), ("LOADER_STATE_TABLE", "a b")]).unwrap_err(),
            "LOADER_STATE_TABLE: expected a DynamoDB table name (3 to 255 letters, digits, '_', '.' or '-') or its ARN, got \"a b\"\n\
             IMPORT_ROW_LIMIT: expected a whole number of rows of at least 1, got \"abc\"\n\
             LOADER_LEASE_SECONDS: \"x\" is not a duration; write 90s, 15m, 2h, 1d or seconds"
        );
    }

    #[test]
    fn unknown_loader_variables_are_named() {
        let names = [
            "LOADER_LEASE_SECOND",
            "PATH",
            "LOADER_STATE_TABLE",
            "IMPORT_ROWS",
            "LOADER_SETTLE_SECONDS",
        ];
        assert_eq!(
            unknown(names.iter().map(|n| n.to_string())),
            ["IMPORT_ROWS", "LOADER_LEASE_SECOND"]
        );
    }
}
