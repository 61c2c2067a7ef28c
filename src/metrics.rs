//! PURE: what one table run reports to the operators — a summary of numbers for the log
//! line, and the same as a CloudWatch embedded-metric-format (EMF) document, which the
//! Lambda prints on its own stdout line so CloudWatch Logs turns it into metrics
//! (namespace [`NAMESPACE`]; the alarms in `template.yaml` watch them).

use serde_json::{json, Value};

pub const NAMESPACE: &str = "RedshiftLoader";

/// One table's run, as measured.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRun<'a> {
    pub job: &'a str,
    pub table: String,
    pub run_id: &'a str,
    pub rows: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub lag_seconds: Option<i64>,
    pub failed: bool,
    /// Values cut or nulled to fit their columns.
    pub values_cut: u64,
    /// Rows deleted from Redshift because the source no longer has them.
    pub rows_deleted: u64,
}

impl TableRun<'_> {
    pub fn rows_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            (self.rows as f64 / self.seconds).round()
        } else {
            0.0
        }
    }

    /// The EMF document: metrics per (Job, Table) and, with no dimensions, across all
    /// jobs (what the stack's alarms watch). LagSeconds is left out when unknown.
    pub fn emf(&self, timestamp_ms: i64) -> Value {
        let mut metrics = vec![
            json!({"Name": "RowsLoaded", "Unit": "Count"}),
            json!({"Name": "BytesStaged", "Unit": "Bytes"}),
            json!({"Name": "Failures", "Unit": "Count"}),
            json!({"Name": "ValuesCut", "Unit": "Count"}),
            json!({"Name": "RowsDeleted", "Unit": "Count"}),
        ];
        let mut doc = json!({
            "Job": self.job,
            "Table": &self.table,
            "RunId": self.run_id,
            "RowsLoaded": self.rows,
            "BytesStaged": self.bytes,
            "Failures": u8::from(self.failed),
            "ValuesCut": self.values_cut,
            "RowsDeleted": self.rows_deleted,
            "Seconds": self.seconds,
        });
        if let Some(lag) = self.lag_seconds {
            metrics.push(json!({"Name": "LagSeconds", "Unit": "Seconds"}));
            doc["LagSeconds"] = json!(lag);
        }
        doc["_aws"] = json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Job", "Table"], []],
                "Metrics": metrics,
            }],
        });
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(failed: bool, lag: Option<i64>) -> TableRun<'static> {
        TableRun {
            job: "shop",
            table: "public.orders".into(),
            run_id: "cli-1",
            rows: 5000,
            bytes: 112_746,
            seconds: 2.0,
            lag_seconds: lag,
            failed,
            values_cut: 0,
            rows_deleted: 3,
        }
    }

    #[test]
    fn emf_names_every_metric_it_carries() {
        let doc = run(false, Some(5)).emf(1_764_000_000_000);
        assert_eq!(
            doc,
            json!({
                "Job": "shop", "Table": "public.orders", "RunId": "cli-1",
                "RowsLoaded": 5000, "BytesStaged": 112746, "Failures": 0, "Seconds": 2.0,
                "ValuesCut": 0, "RowsDeleted": 3, "LagSeconds": 5,
                "_aws": {"Timestamp": 1_764_000_000_000i64, "CloudWatchMetrics": [{
                    "Namespace": "RedshiftLoader",
                    "Dimensions": [["Job", "Table"], []],
                    "Metrics": [
                        {"Name": "RowsLoaded", "Unit": "Count"},
                        {"Name": "BytesStaged", "Unit": "Bytes"},
                        {"Name": "Failures", "Unit": "Count"},
                        {"Name": "ValuesCut", "Unit": "Count"},
                        {"Name": "RowsDeleted", "Unit": "Count"},
                        {"Name": "LagSeconds", "Unit": "Seconds"},
                    ],
                }]},
            })
        );
        assert_eq!(run(false, Some(5)).rows_per_second(), 2500.0);
    }

    #[test]
    fn a_failure_counts_one_and_an_unknown_lag_is_not_a_metric() {
        let doc = run(true, None).emf(0);
        assert_eq!(doc["Failures"], 1);
        assert!(doc.get("LagSeconds").is_none());
        let names: Vec<&str> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert!(!names.contains(&"LagSeconds"));
        // Every metric named in the directive is a member of the document.
        for n in names {
            assert!(doc.get(n).is_some(), "{n}");
        }
    }
}
