//! Process-wide settings (environment) and AWS clients, built once and passed by
//! reference: the CLI builds them per command, the Lambda once per container.

use aws_config::SdkConfig;

use crate::secrets::SecretClients;

/// The loader's environment, the same names for the CLI and the Lambda function.
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
    /// `IMPORT_ROW_LIMIT` / `IMPORT_CHUNK_SIZE`, checked where they are used.
    pub import_row_limit: Option<String>,
    pub import_chunk_size: Option<String>,
    /// `LOADER_S3_FORCE_PATH_STYLE=true` for S3-compatible endpoints (the local stack).
    pub s3_force_path_style: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{name} is not set: {what}")]
pub struct MissingSetting {
    pub name: &'static str,
    pub what: &'static str,
}

impl Settings {
    /// Reads the settings through `lookup` (the environment in production).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Settings {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        Settings {
            state_table: get("LOADER_STATE_TABLE"),
            staging_bucket: get("LOADER_STAGING_BUCKET"),
            staging_prefix: get("LOADER_STAGING_PREFIX").unwrap_or_else(|| "staging".into()),
            copy_role_arn: get("LOADER_COPY_ROLE_ARN"),
            schedule_group: get("LOADER_SCHEDULE_GROUP"),
            scheduler_role_arn: get("LOADER_SCHEDULER_ROLE_ARN"),
            function_name: get("LOADER_FUNCTION_NAME").or_else(|| get("AWS_LAMBDA_FUNCTION_NAME")),
            function_arn: get("LOADER_FUNCTION_ARN"),
            import_row_limit: get("IMPORT_ROW_LIMIT"),
            import_chunk_size: get("IMPORT_CHUNK_SIZE"),
            s3_force_path_style: get("LOADER_S3_FORCE_PATH_STYLE")
                .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes")),
        }
    }

    pub fn from_env() -> Settings {
        Settings::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn state_table(&self) -> Result<&str, MissingSetting> {
        self.state_table.as_deref().ok_or(MissingSetting {
            name: "LOADER_STATE_TABLE",
            what: "name the DynamoDB table that holds jobs and state (the SAM stack's StateTable output)",
        })
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

impl Clients {
    /// From the standard SDK environment (region, credentials, `AWS_ENDPOINT_URL*`).
    pub async fn from_env(settings: &Settings) -> Clients {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Clients::new(&sdk, settings)
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
    use super::Settings;
    use std::collections::HashMap;

    #[test]
    fn settings_read_names_and_defaults() {
        let env: HashMap<&str, &str> = [
            ("LOADER_STATE_TABLE", "state"),
            ("AWS_LAMBDA_FUNCTION_NAME", "fn"),
            ("LOADER_S3_FORCE_PATH_STYLE", "TRUE"),
            ("LOADER_COPY_ROLE_ARN", "  "),
        ]
        .into();
        let s = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string()));
        assert_eq!(s.state_table.as_deref(), Some("state"));
        assert_eq!(s.function_name.as_deref(), Some("fn"));
        assert_eq!(s.staging_prefix, "staging");
        assert_eq!(s.copy_role_arn, None);
        assert!(s.s3_force_path_style);
        let empty = Settings::from_lookup(|_| None);
        assert_eq!(
            empty.state_table().unwrap_err().to_string(),
            "LOADER_STATE_TABLE is not set: name the DynamoDB table that holds jobs and state (the SAM stack's StateTable output)"
        );
    }
}
