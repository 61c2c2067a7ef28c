//! Least privilege in `template.yaml`: the function's role allows exactly the actions
//! of the AWS SDK operations `src/` calls (plus the few the platform needs on the
//! function's behalf), and the COPY role trusts Redshift only for this account.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml_ng::Value;

/// Every SDK operation of the clients we use that a change could plausibly add, and
/// the IAM action it needs. An operation not listed here cannot be checked: add it.
const OPERATIONS: &[(&str, &str, &str)] = &[
    // (SDK crate, fluent method, IAM action)
    ("aws_sdk_s3", "put_object", "s3:PutObject"),
    // Multipart uploads are authorised by s3:PutObject (create, parts, complete).
    ("aws_sdk_s3", "create_multipart_upload", "s3:PutObject"),
    ("aws_sdk_s3", "upload_part", "s3:PutObject"),
    ("aws_sdk_s3", "complete_multipart_upload", "s3:PutObject"),
    (
        "aws_sdk_s3",
        "abort_multipart_upload",
        "s3:AbortMultipartUpload",
    ),
    (
        "aws_sdk_s3",
        "list_multipart_uploads",
        "s3:ListBucketMultipartUploads",
    ),
    ("aws_sdk_s3", "list_parts", "s3:ListMultipartUploadParts"),
    ("aws_sdk_s3", "list_objects_v2", "s3:ListBucket"),
    ("aws_sdk_s3", "list_objects", "s3:ListBucket"),
    ("aws_sdk_s3", "head_bucket", "s3:ListBucket"),
    ("aws_sdk_s3", "delete_object", "s3:DeleteObject"),
    ("aws_sdk_s3", "delete_objects", "s3:DeleteObject"),
    ("aws_sdk_s3", "get_object", "s3:GetObject"),
    ("aws_sdk_s3", "head_object", "s3:GetObject"),
    ("aws_sdk_s3", "copy_object", "s3:PutObject"),
    ("aws_sdk_s3", "get_bucket_location", "s3:GetBucketLocation"),
    ("aws_sdk_dynamodb", "get_item", "dynamodb:GetItem"),
    ("aws_sdk_dynamodb", "put_item", "dynamodb:PutItem"),
    ("aws_sdk_dynamodb", "update_item", "dynamodb:UpdateItem"),
    ("aws_sdk_dynamodb", "delete_item", "dynamodb:DeleteItem"),
    ("aws_sdk_dynamodb", "query", "dynamodb:Query"),
    ("aws_sdk_dynamodb", "scan", "dynamodb:Scan"),
    (
        "aws_sdk_dynamodb",
        "batch_get_item",
        "dynamodb:BatchGetItem",
    ),
    (
        "aws_sdk_dynamodb",
        "batch_write_item",
        "dynamodb:BatchWriteItem",
    ),
    (
        "aws_sdk_dynamodb",
        "describe_table",
        "dynamodb:DescribeTable",
    ),
    ("aws_sdk_dynamodb", "transact_get_items", "dynamodb:GetItem"),
    ("aws_sdk_lambda", "invoke", "lambda:InvokeFunction"),
    ("aws_sdk_lambda", "invoke_async", "lambda:InvokeFunction"),
    ("aws_sdk_lambda", "get_function", "lambda:GetFunction"),
    (
        "aws_sdk_scheduler",
        "create_schedule",
        "scheduler:CreateSchedule",
    ),
    (
        "aws_sdk_scheduler",
        "update_schedule",
        "scheduler:UpdateSchedule",
    ),
    (
        "aws_sdk_scheduler",
        "delete_schedule",
        "scheduler:DeleteSchedule",
    ),
    ("aws_sdk_scheduler", "get_schedule", "scheduler:GetSchedule"),
    (
        "aws_sdk_scheduler",
        "list_schedules",
        "scheduler:ListSchedules",
    ),
    (
        "aws_sdk_scheduler",
        "get_schedule_group",
        "scheduler:GetScheduleGroup",
    ),
    ("aws_sdk_scheduler", "tag_resource", "scheduler:TagResource"),
    (
        "aws_sdk_secretsmanager",
        "get_secret_value",
        "secretsmanager:GetSecretValue",
    ),
    (
        "aws_sdk_secretsmanager",
        "describe_secret",
        "secretsmanager:DescribeSecret",
    ),
    ("aws_sdk_ssm", "get_parameter", "ssm:GetParameter"),
    ("aws_sdk_ssm", "get_parameters", "ssm:GetParameters"),
    (
        "aws_sdk_ssm",
        "get_parameters_by_path",
        "ssm:GetParametersByPath",
    ),
];

/// DynamoDB's TransactWriteItems has no action of its own: each item is authorised
/// by the action of its kind, so the test reads which kinds `src/` builds.
const TRANSACT_ITEMS: &[(&str, &str)] = &[
    (".put(", "dynamodb:PutItem"),
    (".update(", "dynamodb:UpdateItem"),
    (".delete(", "dynamodb:DeleteItem"),
    (".condition_check(", "dynamodb:ConditionCheckItem"),
];

/// Actions the function's role needs without an SDK call in `src/`.
const PLATFORM: &[(&str, &str)] = &[
    (
        "sqs:SendMessage",
        "Lambda sends a failed asynchronous invocation to the OnFailure destination with the function's role",
    ),
    (
        "iam:PassRole",
        "CreateSchedule and UpdateSchedule pass SchedulerRole to EventBridge Scheduler",
    ),
];

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path.display().to_string(), text));
        }
    }
}

/// The IAM actions `src/` needs, each with where it is needed.
fn actions_used() -> BTreeSet<String> {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let all: String = files.iter().map(|(_, t)| t.as_str()).collect();
    // Every AWS SDK crate `src/` uses must be known here, or its calls go unchecked.
    let known: BTreeSet<&str> = OPERATIONS.iter().map(|(c, _, _)| *c).collect();
    for (path, text) in &files {
        for (i, _) in text.match_indices("aws_sdk_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                known.contains(name.as_str()),
                "{path} uses {name}: list its operations and IAM actions in tests/template.rs"
            );
        }
    }
    let mut used = BTreeSet::new();
    for (_, method, action) in OPERATIONS {
        if all.contains(&format!(".{method}()")) {
            used.insert(action.to_string());
        }
    }
    if all.contains(".transact_write_items()") {
        for (builder, action) in TRANSACT_ITEMS {
            if all.contains(&format!("TransactWriteItem::builder(){builder}")) {
                used.insert(action.to_string());
            }
        }
    }
    used
}

fn template() -> Value {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml"))
        .unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// The actions the function's inline policies allow.
fn actions_granted(t: &Value) -> BTreeSet<String> {
    let policies = &t["Resources"]["Loader"]["Properties"]["Policies"];
    let mut granted = BTreeSet::new();
    for policy in policies.as_sequence().expect("Loader Policies is a list") {
        for statement in policy["Statement"].as_sequence().expect("a Statement list") {
            assert_eq!(statement["Effect"].as_str(), Some("Allow"));
            for a in strings(&statement["Action"]) {
                assert!(!a.contains('*'), "wildcard action {a}: name each action");
                assert!(granted.insert(a.clone()), "{a} is granted twice");
            }
        }
    }
    granted
}

#[test]
fn the_function_role_allows_exactly_the_actions_the_code_calls() {
    let mut needed = actions_used();
    for (action, _why) in PLATFORM {
        needed.insert(action.to_string());
    }
    let granted = actions_granted(&template());
    let missing: Vec<_> = needed.difference(&granted).collect();
    let unused: Vec<_> = granted.difference(&needed).collect();
    assert!(
        missing.is_empty() && unused.is_empty(),
        "template.yaml Loader Policies: missing {missing:?} (the code calls them), unused {unused:?} (nothing calls them)"
    );
}

#[test]
fn the_code_calls_what_the_template_is_checked_against() {
    // The scan itself: these calls exist today, so a broken scan cannot pass as "none".
    let used = actions_used();
    for action in [
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListBucket",
        "s3:DeleteObject",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "lambda:InvokeFunction",
        "scheduler:CreateSchedule",
        "secretsmanager:GetSecretValue",
        "ssm:GetParameter",
    ] {
        assert!(
            used.contains(action),
            "{action} not found in src/: {used:?}"
        );
    }
    // The function only stages: Redshift reads the files with the COPY role.
    assert!(!used.contains("s3:GetObject"), "{used:?}");
}

#[test]
fn redshift_assumes_the_copy_role_only_for_this_account() {
    let t = template();
    let statements = t["Resources"]["CopyRole"]["Properties"]["AssumeRolePolicyDocument"]
        ["Statement"]
        .as_sequence()
        .expect("CopyRole trust statements")
        .clone();
    assert!(!statements.is_empty());
    for s in &statements {
        let principals = strings(&s["Principal"]["Service"]);
        assert!(
            principals.iter().all(|p| p.starts_with("redshift")),
            "{principals:?}"
        );
        let account = &s["Condition"]["StringEquals"]["aws:SourceAccount"];
        match account {
            Value::Tagged(tagged) => {
                assert_eq!(tagged.tag, "Ref");
                assert_eq!(tagged.value.as_str(), Some("AWS::AccountId"));
            }
            other => {
                panic!("CopyRole trust needs aws:SourceAccount: !Ref AWS::AccountId, got {other:?}")
            }
        }
    }
}
