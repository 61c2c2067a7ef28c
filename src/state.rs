//! DynamoDB: jobs, per-table state, leases and run history in one table.
//!
//! | pk          | sk                    | holds                                          |
//! |-------------|-----------------------|------------------------------------------------|
//! | `JOB#shop`  | `CONFIG`              | the job as applied (secret references only)   |
//! | `JOB#shop`  | `TABLE#public.orders` | setup's decisions, mark, last success/error    |
//! | `JOB#shop`  | `LEASE#public.orders` | owner run id, `expires_at`                     |
//! | `JOB#shop`  | `RUN#<ts>#<run_id>`   | run history (`expires_at` is the TTL)          |
//! | `JOB#shop`  | `DELIVERY#<key>`      | an event already delivered (TTL `expires_at`)  |
//!
//! Every write that can race is conditional.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use crate::aws_error::{AwsError, Resource};
use crate::config::{Job, TableRef};

pub const CONFIG_SK: &str = "CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("job {job} does not exist; create it with `redshift-loader jobs apply -f FILE`")]
    NoSuchJob { job: String },
    #[error("job {job} was changed by someone else while this command ran; run it again")]
    Conflict { job: String },
    #[error("job {job}: table {table} is being loaded by run {owner} (lease until {expires_at}); wait for it to finish or for the lease to expire")]
    LeaseHeld {
        job: String,
        table: String,
        owner: String,
        expires_at: DateTime<Utc>,
    },
    /// This run's lease was taken over (it expired, and another run took it): what it
    /// was about to commit is rolled back.
    #[error("job {job}: table {table}: this run lost its lease{} before committing; the chunk was rolled back and the other run goes on", holder.as_deref().map(|h| format!(" to run {h}")).unwrap_or_default())]
    LeaseLost {
        job: String,
        table: String,
        holder: Option<String>,
    },
    /// A DynamoDB call failed: one line that says on what and what to check.
    #[error(transparent)]
    Dynamo(AwsError),
    #[error("DynamoDB table {table}: item {pk}/{sk} is unreadable ({reason}); it was not written by this version of redshift-loader")]
    Corrupt {
        table: String,
        pk: String,
        sk: String,
        reason: String,
    },
}

impl StateError {
    /// Throttling and network trouble pass; everything else needs a person.
    pub fn is_retryable(&self) -> bool {
        match self {
            StateError::Dynamo(e) => e.is_retryable(),
            StateError::Conflict { .. } => true,
            _ => false,
        }
    }
}

/// A job as stored, with the version its next conditional write must name.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredJob {
    pub job: Job,
    pub version: u64,
    pub updated_at: DateTime<Utc>,
}

/// A lease on one table of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub table: String,
    pub owner: String,
    pub expires_at: DateTime<Utc>,
}

/// One `TABLE#` item as stored: its attributes holding JSON documents (by attribute
/// name) and its number attributes (counters).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableItem {
    pub table: String,
    pub documents: std::collections::BTreeMap<String, serde_json::Value>,
    pub counters: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone)]
pub struct Store {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

pub fn job_pk(job: &str) -> String {
    format!("JOB#{job}")
}

pub fn table_sk(table: &TableRef) -> String {
    format!("TABLE#{table}")
}

pub fn lease_sk(table: &TableRef) -> String {
    format!("LEASE#{table}")
}

type Item = HashMap<String, AttributeValue>;

impl Store {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Store {
        Store {
            client,
            table: table.into(),
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    fn dynamo_error<E>(&self, operation: &'static str, e: SdkError<E>) -> StateError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        StateError::Dynamo(AwsError::of(
            operation,
            Resource::StateTable(&self.table),
            &e,
        ))
    }

    /// The job, or `None` when it does not exist.
    pub async fn get_job(&self, name: &str) -> Result<Option<StoredJob>, StateError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(name)))
            .key("sk", s(CONFIG_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.dynamo_error("GetItem", e))?;
        out.item().map(|item| self.decode_job(item)).transpose()
    }

    /// The job, or [`StateError::NoSuchJob`].
    pub async fn require_job(&self, name: &str) -> Result<StoredJob, StateError> {
        self.get_job(name)
            .await?
            .ok_or_else(|| StateError::NoSuchJob {
                job: name.to_string(),
            })
    }

    fn decode_job(&self, item: &Item) -> Result<StoredJob, StateError> {
        let corrupt = |reason: String| StateError::Corrupt {
            table: self.table.clone(),
            pk: get_s(item, "pk").unwrap_or_default(),
            sk: get_s(item, "sk").unwrap_or_default(),
            reason,
        };
        let config = get_s(item, "config").ok_or_else(|| corrupt("no config".into()))?;
        let job: Job =
            serde_json::from_str(&config).map_err(|e| corrupt(format!("config: {e}")))?;
        let version = get_n(item, "version").ok_or_else(|| corrupt("no version".into()))?;
        let updated_at = get_s(item, "updated_at")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| corrupt("no updated_at".into()))?;
        Ok(StoredJob {
            job,
            version,
            updated_at,
        })
    }

    /// Creates (`expected_version` None) or replaces the job, only if nobody changed it
    /// since it was read. Returns the new version.
    pub async fn put_job(
        &self,
        job: &Job,
        expected_version: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<u64, StateError> {
        let version = expected_version.map_or(1, |v| v + 1);
        let config = serde_json::to_string(job).expect("a job always serializes");
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(job_pk(&job.name)))
            .item("sk", s(CONFIG_SK))
            .item("config", s(config))
            .item("version", n(version))
            .item("updated_at", s(now.to_rfc3339()));
        put = match expected_version {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(v) => put
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(v)),
        };
        match put.send().await {
            Ok(_) => Ok(version),
            Err(e) if is_condition_failed(&e) => Err(StateError::Conflict {
                job: job.name.clone(),
            }),
            Err(e) => Err(self.dynamo_error("PutItem", e)),
        }
    }

    /// Every job, sorted by name.
    pub async fn list_jobs(&self) -> Result<Vec<StoredJob>, StateError> {
        let mut jobs = Vec::new();
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :config")
            .expression_attribute_values(":config", s(CONFIG_SK))
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.dynamo_error("Scan", e))?;
            for item in page.items() {
                jobs.push(self.decode_job(item)?);
            }
        }
        jobs.sort_by(|a, b| a.job.name.cmp(&b.job.name));
        Ok(jobs)
    }

    /// Every item of a job (config, tables, leases, runs).
    async fn job_items(&self, name: &str) -> Result<Vec<Item>, StateError> {
        let mut items = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(job_pk(name)))
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.dynamo_error("Query", e))?;
            items.extend(page.items().iter().cloned());
        }
        Ok(items)
    }

    /// Leases on the job's tables that have not expired at `now`.
    pub async fn held_leases(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Lease>, StateError> {
        let items = self.job_items(name).await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let sk = get_s(item, "sk")?;
                let table = sk.strip_prefix("LEASE#")?.to_string();
                let expires_at = DateTime::from_timestamp(get_n(item, "expires_at")? as i64, 0)?;
                let owner = get_s(item, "owner").unwrap_or_default();
                (expires_at > now).then_some(Lease {
                    table,
                    owner,
                    expires_at,
                })
            })
            .collect())
    }

    /// Deletes the job and all its state; refuses while a table is being loaded.
    pub async fn delete_job(&self, name: &str, now: DateTime<Utc>) -> Result<(), StateError> {
        self.require_job(name).await?;
        if let Some(lease) = self.held_leases(name, now).await?.into_iter().next() {
            return Err(StateError::LeaseHeld {
                job: name.to_string(),
                table: lease.table,
                owner: lease.owner,
                expires_at: lease.expires_at,
            });
        }
        // The config goes first so no new run starts; then everything else.
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(name)))
            .key("sk", s(CONFIG_SK))
            .send()
            .await
            .map_err(|e| self.dynamo_error("DeleteItem", e))?;
        for item in self.job_items(name).await? {
            let (Some(pk), Some(sk)) = (item.get("pk"), item.get("sk")) else {
                continue;
            };
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", pk.clone())
                .key("sk", sk.clone())
                .send()
                .await
                .map_err(|e| self.dynamo_error("DeleteItem", e))?;
        }
        Ok(())
    }

    /// Stores a JSON document under `attribute` of the job's `TABLE#` item, leaving the
    /// item's other attributes (mark, run results) alone.
    pub async fn put_table_document(
        &self,
        job: &str,
        table: &TableRef,
        attribute: &str,
        document: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        self.update_table_document(job, table, attribute, document, None, now)
            .await
    }

    /// One UpdateItem: `attribute` set to `document`, and, when given, `amount` added to
    /// the number attribute `counter`.
    async fn update_table_document(
        &self,
        job: &str,
        table: &TableRef,
        attribute: &str,
        document: &serde_json::Value,
        counter: Option<(&str, u64)>,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(job)))
            .key("sk", s(table_sk(table)))
            .update_expression("SET #doc = :doc, updated_at = :now")
            .expression_attribute_names("#doc", attribute)
            .expression_attribute_values(":doc", s(document.to_string()))
            .expression_attribute_values(":now", s(now.to_rfc3339()));
        if let Some((counter, amount)) = counter {
            update = update
                .update_expression("SET #doc = :doc, updated_at = :now ADD #counter :amount")
                .expression_attribute_names("#counter", counter)
                .expression_attribute_values(":amount", n(amount));
        }
        update
            .send()
            .await
            .map_err(|e| self.dynamo_error("UpdateItem", e))?;
        Ok(())
    }

    /// Takes the table's lease for `owner` until `expires_at`, unless someone else
    /// holds an unexpired one.
    pub async fn acquire_lease(
        &self,
        job: &str,
        table: &TableRef,
        owner: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        self.take_lease(job, table, owner, None, now, expires_at)
            .await
    }

    /// Like [`Store::acquire_lease`], and also takes over a lease `previous` still holds
    /// (the invocation a continuation continues hands its leases over this way; a second
    /// delivery of the same continuation then finds them taken).
    pub async fn take_lease(
        &self,
        job: &str,
        table: &TableRef,
        owner: &str,
        previous: Option<&str>,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(job_pk(job)))
            .item("sk", s(lease_sk(table)))
            .item("owner", s(owner))
            .item("expires_at", n(expires_at.timestamp().max(0) as u64))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now OR #owner = :owner OR #owner = :previous",
            )
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":now", n(now.timestamp().max(0) as u64))
            .expression_attribute_values(":owner", s(owner))
            // No owner is empty: without a previous owner the last test never holds.
            .expression_attribute_values(":previous", s(previous.unwrap_or_default()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => {
                let holder = self
                    .held_leases(job, now)
                    .await?
                    .into_iter()
                    .find(|l| l.table == table.to_string());
                let (owner, expires_at) = holder
                    .map(|l| (l.owner, l.expires_at))
                    .unwrap_or_else(|| ("another run".into(), expires_at));
                Err(StateError::LeaseHeld {
                    job: job.to_string(),
                    table: table.to_string(),
                    owner,
                    expires_at,
                })
            }
            Err(e) => Err(self.dynamo_error("PutItem", e)),
        }
    }

    /// Extends `owner`'s lease to `until`, only while `owner` still holds it (expired or
    /// not, as long as nobody took it since): the fence checked before every commit.
    pub async fn renew_lease(
        &self,
        job: &str,
        table: &TableRef,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(job)))
            .key("sk", s(lease_sk(table)))
            .update_expression("SET expires_at = :until")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":until", n(until.timestamp().max(0) as u64))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => {
                let holder = self
                    .held_leases(job, now)
                    .await?
                    .into_iter()
                    .find(|l| l.table == table.to_string());
                Err(StateError::LeaseLost {
                    job: job.to_string(),
                    table: table.to_string(),
                    holder: holder.map(|l| l.owner),
                })
            }
            Err(e) => Err(self.dynamo_error("UpdateItem", e)),
        }
    }

    /// Gives the lease back (only if `owner` still holds it).
    pub async fn release_lease(
        &self,
        job: &str,
        table: &TableRef,
        owner: &str,
    ) -> Result<(), StateError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(job)))
            .key("sk", s(lease_sk(table)))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(self.dynamo_error("DeleteItem", e)),
        }
    }

    /// Stores `document` under `attribute` of the table's item and renews the table's
    /// lease until `lease_until`, in one transaction that holds only while `owner` still
    /// holds the lease: a run that lost its lease can neither move the mark nor take the
    /// lease back.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_table_document_leased(
        &self,
        job: &str,
        table: &TableRef,
        owner: &str,
        attribute: &str,
        document: &serde_json::Value,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<(), StateError> {
        use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
        let renew = Update::builder()
            .table_name(&self.table)
            .key("pk", s(job_pk(job)))
            .key("sk", s(lease_sk(table)))
            .update_expression("SET expires_at = :until")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":until", n(lease_until.timestamp().max(0) as u64))
            .build()
            .expect("complete lease update");
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(job_pk(job)))
            .key("sk", s(table_sk(table)))
            .update_expression("SET #doc = :doc, updated_at = :now")
            .expression_attribute_names("#doc", attribute)
            .expression_attribute_values(":doc", s(document.to_string()))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .build()
            .expect("complete update");
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(renew).build())
            .transact_items(TransactWriteItem::builder().update(update).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if format!("{e:?}").contains("ConditionalCheckFailed") => {
                Err(StateError::LeaseLost {
                    job: job.to_string(),
                    table: table.to_string(),
                    holder: None,
                })
            }
            Err(e) => Err(self.dynamo_error("TransactWriteItems", e)),
        }
    }

    /// Claims one delivery of an event (`key`: a scheduled time, a continuation's hop)
    /// for `claimant` (the Lambda request id, which Lambda's own retries of an event
    /// keep), kept `keep` long: true for the first claimant, and for it again; false for
    /// any other delivery of the same event.
    pub async fn claim_delivery(
        &self,
        job: &str,
        key: &str,
        claimant: &str,
        now: DateTime<Utc>,
        keep: chrono::Duration,
    ) -> Result<bool, StateError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(job_pk(job)))
            .item("sk", s(format!("DELIVERY#{key}")))
            .item("claimant", s(claimant))
            .item("at", s(now.to_rfc3339()))
            .item("expires_at", n((now + keep).timestamp().max(0) as u64))
            .condition_expression("attribute_not_exists(pk) OR claimant = :claimant")
            .expression_attribute_values(":claimant", s(claimant))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(self.dynamo_error("PutItem", e)),
        }
    }

    /// Appends one run-history item (`RUN#<at>#<run_id>#<table>`), kept for `keep`
    /// through the table's TTL attribute.
    pub async fn put_run(
        &self,
        job: &str,
        table: &TableRef,
        run_id: &str,
        at: DateTime<Utc>,
        document: &serde_json::Value,
        keep: chrono::Duration,
    ) -> Result<(), StateError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(job_pk(job)))
            .item(
                "sk",
                s(format!(
                    "RUN#{}#{run_id}#{table}",
                    at.format("%Y-%m-%dT%H:%M:%S%.6fZ")
                )),
            )
            .item("run", s(document.to_string()))
            .item("expires_at", n((at + keep).timestamp().max(0) as u64))
            .send()
            .await
            .map_err(|e| self.dynamo_error("PutItem", e))?;
        Ok(())
    }

    /// The job's run history, newest first, at most `limit` items.
    pub async fn runs(&self, job: &str, limit: i32) -> Result<Vec<serde_json::Value>, StateError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :run)")
            .expression_attribute_values(":pk", s(job_pk(job)))
            .expression_attribute_values(":run", s("RUN#"))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(|e| self.dynamo_error("Query", e))?;
        Ok(out
            .items()
            .iter()
            .filter_map(|item| get_s(item, "run"))
            .filter_map(|text| serde_json::from_str(&text).ok())
            .collect())
    }

    /// The job's run history, newest first: at most `limit` items, only `table`'s when
    /// given (pages through the history until enough match).
    pub async fn runs_of(
        &self,
        job: &str,
        table: Option<&TableRef>,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>, StateError> {
        let suffix = table.map(|t| format!("#{t}"));
        let mut found = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :run)")
            .expression_attribute_values(":pk", s(job_pk(job)))
            .expression_attribute_values(":run", s("RUN#"))
            .scan_index_forward(false)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.dynamo_error("Query", e))?;
            for item in page.items() {
                let sk = get_s(item, "sk").unwrap_or_default();
                if suffix.as_ref().is_some_and(|x| !sk.ends_with(x.as_str())) {
                    continue;
                }
                if let Some(doc) = get_s(item, "run").and_then(|t| serde_json::from_str(&t).ok()) {
                    found.push(doc);
                }
                if found.len() >= limit {
                    return Ok(found);
                }
            }
        }
        Ok(found)
    }

    /// Every `TABLE#` item of the job: its JSON documents and its counters.
    pub async fn table_items(&self, job: &str) -> Result<Vec<TableItem>, StateError> {
        let items = self.job_items(job).await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let sk = get_s(item, "sk")?;
                let table = sk.strip_prefix("TABLE#")?.to_string();
                let mut documents = std::collections::BTreeMap::new();
                let mut counters = std::collections::BTreeMap::new();
                for (k, v) in item {
                    if let Ok(text) = v.as_s() {
                        if let Ok(doc) = serde_json::from_str::<serde_json::Value>(text) {
                            documents.insert(k.clone(), doc);
                        }
                    } else if let Some(count) = v.as_n().ok().and_then(|n| n.parse().ok()) {
                        counters.insert(k.clone(), count);
                    }
                }
                Some(TableItem {
                    table,
                    documents,
                    counters,
                })
            })
            .collect())
    }

    /// Like [`Store::put_table_document`], and adds `amount` to the number attribute
    /// counter `(name, amount)` in the same write.
    pub async fn put_table_document_counting(
        &self,
        job: &str,
        table: &TableRef,
        attribute: &str,
        document: &serde_json::Value,
        counter: (&str, u64),
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        self.update_table_document(job, table, attribute, document, Some(counter), now)
            .await
    }

    /// Removes attributes of the job's `TABLE#` item (no-op when absent).
    pub async fn remove_table_attributes(
        &self,
        job: &str,
        table: &TableRef,
        attributes: &[&str],
    ) -> Result<(), StateError> {
        if attributes.is_empty() {
            return Ok(());
        }
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(job)))
            .key("sk", s(table_sk(table)))
            .condition_expression("attribute_exists(pk)");
        let mut names = Vec::new();
        for (i, a) in attributes.iter().enumerate() {
            update = update.expression_attribute_names(format!("#a{i}"), *a);
            names.push(format!("#a{i}"));
        }
        match update
            .update_expression(format!("REMOVE {}", names.join(", ")))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(self.dynamo_error("UpdateItem", e)),
        }
    }

    /// Forgets everything about one table of the job (setup's decisions, the mark, run
    /// results); refuses while the table is being loaded.
    pub async fn reset_table(
        &self,
        job: &str,
        table: &TableRef,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let key = table.to_string();
        if let Some(lease) = self
            .held_leases(job, now)
            .await?
            .into_iter()
            .find(|l| l.table == key)
        {
            return Err(StateError::LeaseHeld {
                job: job.to_string(),
                table: lease.table,
                owner: lease.owner,
                expires_at: lease.expires_at,
            });
        }
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(job)))
            .key("sk", s(table_sk(table)))
            .send()
            .await
            .map_err(|e| self.dynamo_error("DeleteItem", e))?;
        Ok(())
    }

    /// The JSON document under `attribute` of the job's `TABLE#` item, if any.
    pub async fn get_table_document(
        &self,
        job: &str,
        table: &TableRef,
        attribute: &str,
    ) -> Result<Option<serde_json::Value>, StateError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(job)))
            .key("sk", s(table_sk(table)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.dynamo_error("GetItem", e))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let Some(text) = get_s(item, attribute) else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                table: self.table.clone(),
                pk: job_pk(job),
                sk: table_sk(table),
                reason: format!("{attribute}: {e}"),
            })
    }
}

fn is_condition_failed<E, R>(e: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    matches!(e, SdkError::ServiceError(se) if se.err().code() == Some("ConditionalCheckFailedException"))
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s(item: &Item, key: &str) -> Option<String> {
    item.get(key)?.as_s().ok().cloned()
}

fn get_n(item: &Item, key: &str) -> Option<u64> {
    item.get(key)?.as_n().ok()?.parse().ok()
}
