//! AWS errors a user can act on: a missing bucket, table, function, schedule group,
//! secret or parameter, a permission the role lacks, refused credentials, throttling,
//! an endpoint that cannot be reached — each told in one line that says what failed,
//! on what, and what to check. Never the SDK's debug structure.
//!
//! [`Facts::of`] takes what matters out of an SDK error (the service's error code and
//! message, the HTTP status, whether the request got out at all); everything after that
//! is pure: [`classify`] decides by error code and status (never by the message),
//! [`explain`] writes the line. Every service goes through here: S3 (staging),
//! DynamoDB (state), Lambda (continuations), EventBridge Scheduler, Secrets Manager
//! and SSM.

use std::fmt;

use aws_sdk_s3::error::ProvideErrorMetadata;

/// Every client's `SdkError` is this one type (the SDK crates share their runtime).
pub type SdkError<E> = aws_sdk_s3::error::SdkError<E>;

/// What a call was about: the thing, and the setting (or job field) that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// The staging bucket (`LOADER_STAGING_BUCKET`).
    Bucket(&'a str),
    /// An object in the staging bucket.
    Object { bucket: &'a str, key: &'a str },
    /// The state table (`LOADER_STATE_TABLE`).
    StateTable(&'a str),
    /// The function continuations invoke (`LOADER_FUNCTION_NAME`).
    Function(&'a str),
    /// The schedule group (`LOADER_SCHEDULE_GROUP`).
    ScheduleGroup(&'a str),
    /// One schedule of the group.
    Schedule { group: &'a str, name: &'a str },
    /// A Secrets Manager secret a job names; `field` is where (`source.url_secret`).
    Secret { id: &'a str, field: &'a str },
    /// An SSM parameter a job names; `field` is where (`destination.url_ssm`).
    Parameter { name: &'a str, field: &'a str },
}

impl Resource<'_> {
    fn service(&self) -> &'static str {
        match self {
            Resource::Bucket(_) | Resource::Object { .. } => "S3",
            Resource::StateTable(_) => "DynamoDB",
            Resource::Function(_) => "Lambda",
            Resource::ScheduleGroup(_) | Resource::Schedule { .. } => "EventBridge Scheduler",
            Resource::Secret { .. } => "Secrets Manager",
            Resource::Parameter { .. } => "SSM",
        }
    }

    /// The IAM action prefix (`s3:`).
    fn iam(&self) -> &'static str {
        match self {
            Resource::Bucket(_) | Resource::Object { .. } => "s3",
            Resource::StateTable(_) => "dynamodb",
            Resource::Function(_) => "lambda",
            Resource::ScheduleGroup(_) | Resource::Schedule { .. } => "scheduler",
            Resource::Secret { .. } => "secretsmanager",
            Resource::Parameter { .. } => "ssm",
        }
    }

    /// Where its name comes from.
    fn setting(&self) -> String {
        match self {
            Resource::Bucket(_) | Resource::Object { .. } => "LOADER_STAGING_BUCKET".into(),
            Resource::StateTable(_) => "LOADER_STATE_TABLE".into(),
            Resource::Function(_) => "LOADER_FUNCTION_NAME".into(),
            Resource::ScheduleGroup(_) | Resource::Schedule { .. } => {
                "LOADER_SCHEDULE_GROUP".into()
            }
            Resource::Secret { field, .. } | Resource::Parameter { field, .. } => {
                format!("the job's {field}")
            }
        }
    }
}

impl fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Bucket(b) => write!(f, "S3 bucket {b}"),
            Resource::Object { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            Resource::StateTable(t) => write!(f, "DynamoDB table {t}"),
            Resource::Function(n) => write!(f, "Lambda function {n}"),
            Resource::ScheduleGroup(g) => write!(f, "schedule group {g}"),
            Resource::Schedule { group, name } => write!(f, "schedule {name} in group {group}"),
            Resource::Secret { id, .. } => write!(f, "secret {id}"),
            Resource::Parameter { name, .. } => write!(f, "SSM parameter {name}"),
        }
    }
}

/// How far the request got.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Reached {
    /// The service answered with an error.
    #[default]
    Answered,
    /// No connection (DNS, refused, TLS, no route).
    Unreachable,
    /// No answer in time.
    TimedOut,
    /// An answer that is not the service's (a proxy, the wrong endpoint).
    Unreadable,
    /// Never sent: no credentials were found.
    NoCredentials,
    /// Never sent; why (a bad endpoint, ...).
    NotSent(String),
}

/// What an SDK error tells.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    /// The service's error code (`NoSuchBucket`, `AccessDeniedException`).
    pub code: Option<String>,
    pub message: Option<String>,
    /// The HTTP status of the answer, when there was one.
    pub status: Option<u16>,
    pub reached: Reached,
}

impl Facts {
    pub fn of<E>(e: &SdkError<E>) -> Facts
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        match e {
            SdkError::ServiceError(se) => Facts {
                code: se.err().code().map(str::to_string),
                message: se.err().message().map(str::to_string),
                status,
                reached: Reached::Answered,
            },
            SdkError::TimeoutError(_) => Facts {
                reached: Reached::TimedOut,
                ..Facts::default()
            },
            SdkError::DispatchFailure(d) if d.is_timeout() => Facts {
                reached: Reached::TimedOut,
                ..Facts::default()
            },
            SdkError::DispatchFailure(d) if d.is_io() => Facts {
                reached: Reached::Unreachable,
                ..Facts::default()
            },
            SdkError::ResponseError(_) => Facts {
                status,
                reached: Reached::Unreadable,
                ..Facts::default()
            },
            // Credentials that cannot be found, an endpoint that does not parse: the
            // request never left, and the SDK says why only in text. The innermost
            // error says it best (the outer ones print the whole request).
            other => {
                let chain = crate::connect::error_chain(other);
                let mut innermost: &dyn std::error::Error = other;
                while let Some(s) = innermost.source() {
                    innermost = s;
                }
                Facts {
                    reached: if chain.contains("credential") {
                        Reached::NoCredentials
                    } else {
                        Reached::NotSent(innermost.to_string())
                    },
                    ..Facts::default()
                }
            }
        }
    }
}

/// The failures a user can do something about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The bucket, table, function, group, secret or parameter does not exist.
    NotFound,
    /// The role lacks a permission (or a KMS key's).
    AccessDenied,
    /// The credentials were refused, expired, or none were found.
    Credentials,
    /// Too many requests: passes with time.
    Throttled,
    /// The service failed on its side: passes with time.
    Unavailable,
    /// No connection or no answer: may pass with time.
    Unreachable,
    /// The bucket is in another region.
    WrongRegion,
    /// An answer that is not the service's: a wrong endpoint.
    Unreadable,
    Other,
}

impl Class {
    /// Whether running the same thing again later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Class::Throttled | Class::Unavailable | Class::Unreachable
        )
    }
}

/// PURE: by error code, then HTTP status; never by the message.
pub fn classify(f: &Facts) -> Class {
    match &f.reached {
        Reached::Unreachable | Reached::TimedOut => return Class::Unreachable,
        Reached::Unreadable => return Class::Unreadable,
        Reached::NoCredentials => return Class::Credentials,
        Reached::NotSent(_) => return Class::Other,
        Reached::Answered => {}
    }
    match f.code.as_deref() {
        Some(
            "NoSuchBucket"
            | "NoSuchKey"
            | "NotFound"
            | "NoSuchUpload"
            | "ResourceNotFoundException"
            | "ParameterNotFound"
            | "ParameterVersionNotFound",
        ) => Class::NotFound,
        Some(
            "AccessDenied"
            | "AccessDeniedException"
            | "Forbidden"
            | "AllAccessDisabled"
            | "KMSAccessDeniedException"
            | "KMS.AccessDeniedException"
            | "DecryptionFailure"
            | "UnauthorizedOperation"
            | "AuthorizationErrorException",
        ) => Class::AccessDenied,
        Some(
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "TokenRefreshRequired"
            | "InvalidSignatureException"
            | "MissingAuthenticationToken"
            | "MissingAuthenticationTokenException"
            | "IncompleteSignature"
            | "AuthFailure"
            | "RequestExpired"
            | "RequestTimeTooSkewed",
        ) => Class::Credentials,
        Some(
            "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "SlowDown"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "LimitExceededException"
            | "ServiceQuotaExceededException"
            | "TooManyUpdates"
            | "EC2ThrottledException",
        ) => Class::Throttled,
        Some(
            "InternalError"
            | "InternalFailure"
            | "InternalServerError"
            | "InternalServerException"
            | "InternalServiceError"
            | "InternalServiceErrorException"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "ServiceException",
        ) => Class::Unavailable,
        Some(
            "PermanentRedirect"
            | "AuthorizationHeaderMalformed"
            | "IllegalLocationConstraintException",
        ) => Class::WrongRegion,
        Some(_) => Class::Other,
        None => match f.status {
            Some(301 | 307) => Class::WrongRegion,
            Some(403) => Class::AccessDenied,
            Some(404) => Class::NotFound,
            Some(429) => Class::Throttled,
            Some(s) if s >= 500 => Class::Unavailable,
            _ => Class::Other,
        },
    }
}

/// The IAM action behind an operation (`s3:PutObject` for every part of an upload).
fn action(resource: &Resource<'_>, operation: &str) -> String {
    let op = match (resource.iam(), operation) {
        ("s3", "CreateMultipartUpload" | "UploadPart" | "CompleteMultipartUpload") => "PutObject",
        ("s3", "ListObjectsV2" | "HeadBucket") => "ListBucket",
        ("s3", "DeleteObjects") => "DeleteObject",
        ("lambda", "Invoke") => "InvokeFunction",
        (_, op) => op,
    };
    format!("{}:{op}", resource.iam())
}

/// PURE: the line for `operation` on `resource` that failed with `facts`.
pub fn explain(operation: &str, resource: &Resource<'_>, facts: &Facts) -> String {
    let service = resource.service();
    let setting = resource.setting();
    let code = || match (&facts.code, facts.status) {
        (Some(c), _) => c.clone(),
        (None, Some(s)) => format!("HTTP {s}"),
        (None, None) => "no code".into(),
    };
    match classify(facts) {
        Class::NotFound => {
            let missing = match (resource, facts.code.as_deref()) {
                (Resource::Object { bucket, .. }, Some("NoSuchBucket")) => {
                    Resource::Bucket(bucket).to_string()
                }
                (Resource::Schedule { group, .. }, _) if operation == "CreateSchedule" => {
                    Resource::ScheduleGroup(group).to_string()
                }
                (Resource::Object { .. }, _) => format!("S3 object {resource}"),
                _ => resource.to_string(),
            };
            format!("{missing} does not exist — check {setting} and AWS_REGION")
        }
        Class::AccessDenied => {
            let action = action(resource, operation);
            let kms = match (resource, facts.code.as_deref()) {
                (_, Some("KMSAccessDeniedException" | "KMS.AccessDeniedException" | "DecryptionFailure"))
                | (Resource::Secret { .. } | Resource::Parameter { .. }, _) => {
                    " (and kms:Decrypt on its KMS key)"
                }
                (Resource::Schedule { .. }, _) if operation != "DeleteSchedule" => {
                    " (and iam:PassRole on LOADER_SCHEDULER_ROLE_ARN)"
                }
                _ => "",
            };
            format!(
                "{service} denied {action} on {resource} — allow {action} on it{kms} to the function's role (or, for the CLI, your AWS credentials)"
            )
        }
        Class::Credentials => format!(
            "{service} refused the AWS credentials for {operation} on {resource} ({}) — check AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, and renew an expired session",
            match &facts.reached {
                Reached::NoCredentials => "none were found".to_string(),
                _ => code(),
            }
        ),
        Class::Throttled => format!(
            "{service} throttled {operation} on {resource} ({}) — it passes with time and the next run goes on; if it persists, raise the service's quota or capacity, or lower LOADER_TABLE_CONCURRENCY",
            code()
        ),
        Class::Unavailable => format!(
            "{service} failed {operation} on {resource} on its side ({}) — it passes with time and the next run goes on",
            code()
        ),
        Class::Unreachable => format!(
            "{service} could not be reached for {operation} on {resource}{} — check the network (inside a VPC: a VPC endpoint or NAT), AWS_REGION and AWS_ENDPOINT_URL*",
            if facts.reached == Reached::TimedOut { " (no answer in time)" } else { "" }
        ),
        Class::WrongRegion => format!(
            "{resource} is in another region than AWS_REGION — set AWS_REGION to its region, or check {setting}"
        ),
        Class::Unreadable => format!(
            "{service} answered {operation} on {resource} with something that is not an AWS response{} — check AWS_ENDPOINT_URL* and any proxy in between",
            facts.status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
        ),
        Class::Other => match (&facts.reached, &facts.message) {
            (Reached::NotSent(why), _) => format!(
                "{operation} on {resource} could not be sent to {service}: {why} — check AWS_ENDPOINT_URL* and AWS_REGION"
            ),
            (_, Some(m)) if !m.is_empty() => format!(
                "{service} refused {operation} on {resource}: {}: {m} — check {setting}",
                code()
            ),
            _ => format!(
                "{service} refused {operation} on {resource}: {} — check {setting}",
                code()
            ),
        },
    }
}

/// One line and its class for an SDK error: what [`explain`] and [`classify`] make of
/// it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}")]
pub struct AwsError {
    pub line: String,
    pub class: Class,
}

impl AwsError {
    pub fn of<E>(operation: &str, resource: Resource<'_>, e: &SdkError<E>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let facts = Facts::of(e);
        AwsError {
            line: explain(operation, &resource, &facts),
            class: classify(&facts),
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.class.is_retryable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(code: &str, message: &str, status: u16) -> Facts {
        Facts {
            code: Some(code.into()),
            message: Some(message.into()),
            status: Some(status),
            reached: Reached::Answered,
        }
    }

    fn reached(r: Reached) -> Facts {
        Facts {
            reached: r,
            ..Facts::default()
        }
    }

    /// Operation, resource, facts → the exact line and class.
    #[test]
    fn each_failure_is_one_line_that_says_what_to_check() {
        let object = Resource::Object {
            bucket: "stage-b",
            key: "staging/j/part-00001.csv.gz",
        };
        let table = Resource::StateTable("loader-state");
        let secret = Resource::Secret {
            id: "prod/source",
            field: "source.url_secret",
        };
        let parameter = Resource::Parameter {
            name: "/prod/redshift",
            field: "destination.url_ssm",
        };
        let schedule = Resource::Schedule {
            group: "loader",
            name: "job-shop",
        };
        let cases: Vec<(&str, Resource, Facts, Class, &str)> = vec![
            ("PutObject", object, answered("NoSuchBucket", "The specified bucket does not exist", 404), Class::NotFound,
             "S3 bucket stage-b does not exist — check LOADER_STAGING_BUCKET and AWS_REGION"),
            ("GetObject", object, answered("NoSuchKey", "nope", 404), Class::NotFound,
             "S3 object s3://stage-b/staging/j/part-00001.csv.gz does not exist — check LOADER_STAGING_BUCKET and AWS_REGION"),
            ("HeadBucket", Resource::Bucket("stage-b"), Facts { status: Some(404), ..Facts::default() }, Class::NotFound,
             "S3 bucket stage-b does not exist — check LOADER_STAGING_BUCKET and AWS_REGION"),
            ("Scan", table, answered("ResourceNotFoundException", "Requested resource not found", 400), Class::NotFound,
             "DynamoDB table loader-state does not exist — check LOADER_STATE_TABLE and AWS_REGION"),
            ("GetSecretValue", secret, answered("ResourceNotFoundException", "Secrets Manager can't find the specified secret.", 400), Class::NotFound,
             "secret prod/source does not exist — check the job's source.url_secret and AWS_REGION"),
            ("GetParameter", parameter, answered("ParameterNotFound", "", 400), Class::NotFound,
             "SSM parameter /prod/redshift does not exist — check the job's destination.url_ssm and AWS_REGION"),
            ("CreateSchedule", schedule, answered("ResourceNotFoundException", "Schedule group loader does not exist.", 404), Class::NotFound,
             "schedule group loader does not exist — check LOADER_SCHEDULE_GROUP and AWS_REGION"),
            ("Invoke", Resource::Function("fn"), answered("ResourceNotFoundException", "Function not found", 404), Class::NotFound,
             "Lambda function fn does not exist — check LOADER_FUNCTION_NAME and AWS_REGION"),
            ("UploadPart", object, answered("AccessDenied", "Access Denied", 403), Class::AccessDenied,
             "S3 denied s3:PutObject on s3://stage-b/staging/j/part-00001.csv.gz — allow s3:PutObject on it to the function's role (or, for the CLI, your AWS credentials)"),
            ("TransactWriteItems", table, answered("AccessDeniedException", "User: arn:aws:sts::1:assumed-role/x is not authorized", 400), Class::AccessDenied,
             "DynamoDB denied dynamodb:TransactWriteItems on DynamoDB table loader-state — allow dynamodb:TransactWriteItems on it to the function's role (or, for the CLI, your AWS credentials)"),
            ("GetSecretValue", secret, answered("AccessDeniedException", "", 400), Class::AccessDenied,
             "Secrets Manager denied secretsmanager:GetSecretValue on secret prod/source — allow secretsmanager:GetSecretValue on it (and kms:Decrypt on its KMS key) to the function's role (or, for the CLI, your AWS credentials)"),
            ("Invoke", Resource::Function("fn"), answered("AccessDeniedException", "", 403), Class::AccessDenied,
             "Lambda denied lambda:InvokeFunction on Lambda function fn — allow lambda:InvokeFunction on it to the function's role (or, for the CLI, your AWS credentials)"),
            ("CreateSchedule", schedule, answered("AccessDeniedException", "", 403), Class::AccessDenied,
             "EventBridge Scheduler denied scheduler:CreateSchedule on schedule job-shop in group loader — allow scheduler:CreateSchedule on it (and iam:PassRole on LOADER_SCHEDULER_ROLE_ARN) to the function's role (or, for the CLI, your AWS credentials)"),
            ("GetItem", table, answered("UnrecognizedClientException", "The security token included in the request is invalid.", 400), Class::Credentials,
             "DynamoDB refused the AWS credentials for GetItem on DynamoDB table loader-state (UnrecognizedClientException) — check AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, and renew an expired session"),
            ("GetItem", table, reached(Reached::NoCredentials), Class::Credentials,
             "DynamoDB refused the AWS credentials for GetItem on DynamoDB table loader-state (none were found) — check AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, and renew an expired session"),
            ("PutItem", table, answered("ProvisionedThroughputExceededException", "", 400), Class::Throttled,
             "DynamoDB throttled PutItem on DynamoDB table loader-state (ProvisionedThroughputExceededException) — it passes with time and the next run goes on; if it persists, raise the service's quota or capacity, or lower LOADER_TABLE_CONCURRENCY"),
            ("UploadPart", object, answered("SlowDown", "Please reduce your request rate.", 503), Class::Throttled,
             "S3 throttled UploadPart on s3://stage-b/staging/j/part-00001.csv.gz (SlowDown) — it passes with time and the next run goes on; if it persists, raise the service's quota or capacity, or lower LOADER_TABLE_CONCURRENCY"),
            ("Invoke", Resource::Function("fn"), Facts { status: Some(502), ..Facts::default() }, Class::Unavailable,
             "Lambda failed Invoke on Lambda function fn on its side (HTTP 502) — it passes with time and the next run goes on"),
            ("Scan", table, reached(Reached::Unreachable), Class::Unreachable,
             "DynamoDB could not be reached for Scan on DynamoDB table loader-state — check the network (inside a VPC: a VPC endpoint or NAT), AWS_REGION and AWS_ENDPOINT_URL*"),
            ("GetParameter", parameter, reached(Reached::TimedOut), Class::Unreachable,
             "SSM could not be reached for GetParameter on SSM parameter /prod/redshift (no answer in time) — check the network (inside a VPC: a VPC endpoint or NAT), AWS_REGION and AWS_ENDPOINT_URL*"),
            ("PutObject", object, answered("PermanentRedirect", "The bucket you are attempting to access must be addressed using the specified endpoint.", 301), Class::WrongRegion,
             "s3://stage-b/staging/j/part-00001.csv.gz is in another region than AWS_REGION — set AWS_REGION to its region, or check LOADER_STAGING_BUCKET"),
            ("Scan", table, Facts { status: Some(200), reached: Reached::Unreadable, ..Facts::default() }, Class::Unreadable,
             "DynamoDB answered Scan on DynamoDB table loader-state with something that is not an AWS response (HTTP 200) — check AWS_ENDPOINT_URL* and any proxy in between"),
            ("Query", table, answered("ValidationException", "The provided key element does not match the schema", 400), Class::Other,
             "DynamoDB refused Query on DynamoDB table loader-state: ValidationException: The provided key element does not match the schema — check LOADER_STATE_TABLE"),
            ("PutObject", object, reached(Reached::NotSent("endpoint is not a valid URI: invalid uri character".into())), Class::Other,
             "PutObject on s3://stage-b/staging/j/part-00001.csv.gz could not be sent to S3: endpoint is not a valid URI: invalid uri character — check AWS_ENDPOINT_URL* and AWS_REGION"),
            ("DeleteSchedule", schedule, answered("ConflictException", "", 409), Class::Other,
             "EventBridge Scheduler refused DeleteSchedule on schedule job-shop in group loader: ConflictException — check LOADER_SCHEDULE_GROUP"),
        ];
        for (operation, resource, facts, class, line) in cases {
            assert_eq!(classify(&facts), class, "{operation} {resource} {facts:?}");
            assert_eq!(explain(operation, &resource, &facts), line);
            assert!(!line.contains("Error {") && !line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn only_passing_trouble_is_retried() {
        for (class, retry) in [
            (Class::Throttled, true),
            (Class::Unavailable, true),
            (Class::Unreachable, true),
            (Class::NotFound, false),
            (Class::AccessDenied, false),
            (Class::Credentials, false),
            (Class::WrongRegion, false),
            (Class::Unreadable, false),
            (Class::Other, false),
        ] {
            assert_eq!(class.is_retryable(), retry, "{class:?}");
        }
    }
}
