//! Redshift DDL as text. Every name goes through [`crate::quote`]; types come from
//! [`super::types`] already normalised.

use crate::config::TableRef;
use crate::quote::{ident, literal, qualified};
use crate::stage::compress::Codec;

/// One column of a Redshift table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    /// The Redshift name (see [`crate::quote::redshift_column_name`]).
    pub name: String,
    pub redshift_type: String,
    pub not_null: bool,
}

/// `CREATE SCHEMA IF NOT EXISTS "s"`.
pub fn create_schema(schema: &str) -> String {
    format!("CREATE SCHEMA IF NOT EXISTS {}", ident(schema))
}

/// `CREATE TABLE IF NOT EXISTS` for a target table. `table` holds the Redshift schema
/// and name. The primary key is informational in Redshift (never enforced), but it
/// documents the merge key and helps the planner. Without a `dist_key` Redshift picks
/// the distribution (`DISTSTYLE AUTO`); without a sort key, the sort key
/// (`SORTKEY AUTO`, also Redshift's default, written out so the printed DDL says so).
pub fn create_table(
    table: &TableRef,
    columns: &[ColumnDef],
    primary_key: &[String],
    sort_key: &[String],
    dist_key: Option<&str>,
) -> String {
    let mut lines: Vec<String> = columns
        .iter()
        .map(|c| {
            let not_null = if c.not_null { " NOT NULL" } else { "" };
            format!("  {} {}{not_null}", ident(&c.name), c.redshift_type)
        })
        .collect();
    if !primary_key.is_empty() {
        lines.push(format!("  PRIMARY KEY ({})", ident_list(primary_key)));
    }
    let mut sql = format!(
        "CREATE TABLE IF NOT EXISTS {} (\n{}\n)\n",
        qualified(&table.schema, &table.name),
        lines.join(",\n")
    );
    match dist_key {
        Some(key) => sql.push_str(&format!("DISTSTYLE KEY\nDISTKEY ({})\n", ident(key))),
        None => sql.push_str("DISTSTYLE AUTO\n"),
    }
    if sort_key.is_empty() {
        sql.push_str("SORTKEY AUTO");
    } else {
        sql.push_str(&format!("SORTKEY ({})", ident_list(sort_key)));
    }
    sql
}

/// `ALTER TABLE "s"."t" ADD COLUMN "c" TYPE`. Redshift adds one column per statement,
/// and a NOT NULL column needs a DEFAULT for the rows already there, so the column is
/// always added as nullable, whatever `column.not_null` says.
pub fn add_column(table: &TableRef, column: &ColumnDef) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN {} {}",
        qualified(&table.schema, &table.name),
        ident(&column.name),
        column.redshift_type
    )
}

/// `ALTER TABLE "s"."t" ALTER COLUMN "c" TYPE VARCHAR(n)`: Redshift changes a type in
/// place only to widen a VARCHAR, and not inside a transaction block.
pub fn alter_column_type(table: &TableRef, column: &str, redshift_type: &str) -> String {
    format!(
        "ALTER TABLE {} ALTER COLUMN {} TYPE {redshift_type}",
        qualified(&table.schema, &table.name),
        ident(column)
    )
}

/// How a COPY reads the staged files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFrom<'a> {
    /// `s3://bucket/.../manifest.json`.
    pub manifest_url: &'a str,
    pub iam_role: &'a str,
    pub region: Option<&'a str>,
    /// How the staged files are compressed (`GZIP` or `ZSTD`).
    pub compression: Codec,
}

/// `COPY "t" ("a", ...) FROM 's3://.../manifest.json' ... MANIFEST`: compressed CSV
/// with `\N` for NULL (see [`crate::encode`]), every file mandatory, no automatic
/// compression analysis or statistics on the staging table.
pub fn copy_from_manifest(table: &str, columns: &[String], from: &CopyFrom) -> String {
    let mut sql = format!(
        "COPY {table} ({}) FROM {} IAM_ROLE {} FORMAT AS CSV {} NULL AS {} MANIFEST \
         TIMEFORMAT 'auto' DATEFORMAT 'auto'",
        ident_list(columns),
        literal(from.manifest_url),
        literal(from.iam_role),
        from.compression.copy_option(),
        literal("\\N"),
    );
    if let Some(region) = from.region {
        sql.push_str(&format!(" REGION {}", literal(region)));
    }
    sql.push_str(" COMPUPDATE OFF STATUPDATE OFF");
    sql
}

/// `CREATE TEMP TABLE "stage" (...)`: the target's loaded columns, with SUPER columns
/// as VARCHAR(65535) (they arrive as JSON text and go through `JSON_PARSE`).
pub fn create_stage(stage: &str, columns: &[ColumnDef]) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| {
            let t = if c.redshift_type == "SUPER" {
                "VARCHAR(65535)"
            } else {
                c.redshift_type.as_str()
            };
            format!("{} {t}", ident(&c.name))
        })
        .collect();
    format!("CREATE TEMP TABLE {} ({})", ident(stage), cols.join(", "))
}

/// Keeps one row per key in the stage: the last one loaded (`row_order`, the line the
/// extract wrote it on, grows with the cursor, so the last is the newest).
pub fn dedupe_stage(stage: &str, key: &[String], row_order: &str) -> String {
    let s = ident(stage);
    let o = ident(row_order);
    let on: Vec<String> = key
        .iter()
        .map(|k| format!("d.{k} = {s}.{k}", k = ident(k)))
        .collect();
    format!(
        "DELETE FROM {s} USING {s} AS d WHERE {} AND d.{o} > {s}.{o}",
        on.join(" AND ")
    )
}

/// PURE: one row, one boolean: true when no staged row can have a key already in the
/// target, so the chunk may be appended without `DELETE ... USING`. Exact, from the first
/// key column alone: rows with equal keys have equal first columns, and a staged minimum
/// above the target's maximum leaves no first column equal. An empty target (its
/// maximum NULL) is true; key columns are never NULL. Costs a scan of the target's first
/// key column (a zone-map read when it leads the sort key) and of the stage's.
pub fn stage_keys_are_new(target: &TableRef, stage: &str, key: &[String]) -> String {
    let first = key.first().map(|k| ident(k)).unwrap_or_default();
    format!(
        "SELECT COALESCE((SELECT MIN({first}) FROM {}) > (SELECT MAX({first}) FROM {}), TRUE)",
        ident(stage),
        qualified(&target.schema, &target.name)
    )
}

/// `DELETE FROM target USING stage WHERE <key matches>`: rows about to be replaced.
pub fn delete_matching(target: &TableRef, stage: &str, key: &[String]) -> String {
    let t = qualified(&target.schema, &target.name);
    let s = ident(stage);
    let on: Vec<String> = key
        .iter()
        .map(|k| format!("{t}.{k} = {s}.{k}", k = ident(k)))
        .collect();
    format!("DELETE FROM {t} USING {s} WHERE {}", on.join(" AND "))
}

/// `INSERT INTO target (cols) SELECT cols FROM stage`, `JSON_PARSE` for SUPER columns.
pub fn insert_from_stage(target: &TableRef, stage: &str, columns: &[ColumnDef]) -> String {
    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    let exprs: Vec<String> = columns
        .iter()
        .map(|c| {
            if c.redshift_type == "SUPER" {
                format!("JSON_PARSE({})", ident(&c.name))
            } else {
                ident(&c.name)
            }
        })
        .collect();
    format!(
        "INSERT INTO {} ({}) SELECT {} FROM {}",
        qualified(&target.schema, &target.name),
        ident_list(&names),
        exprs.join(", "),
        ident(stage)
    )
}

fn ident_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| ident(n))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, redshift_type: &str, not_null: bool) -> ColumnDef {
        ColumnDef {
            name: name.into(),
            redshift_type: redshift_type.into(),
            not_null,
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn schemas_are_created_if_missing() {
        assert_eq!(
            create_schema("shop"),
            r#"CREATE SCHEMA IF NOT EXISTS "shop""#
        );
        assert_eq!(
            create_schema("my \"shop\""),
            r#"CREATE SCHEMA IF NOT EXISTS "my ""shop""""#
        );
    }

    #[test]
    fn a_table_with_a_key_sorts_by_it_and_lets_redshift_distribute() {
        let sql = create_table(
            &TableRef::new("shop", "orders"),
            &[
                column("id", "BIGINT", true),
                column("customer", "VARCHAR(400)", false),
                column("amount", "DECIMAL(12,2)", false),
                column("updated_at", "TIMESTAMPTZ", true),
            ],
            &names(&["id"]),
            &names(&["updated_at", "id"]),
            None,
        );
        assert_eq!(
            sql,
            r#"CREATE TABLE IF NOT EXISTS "shop"."orders" (
  "id" BIGINT NOT NULL,
  "customer" VARCHAR(400),
  "amount" DECIMAL(12,2),
  "updated_at" TIMESTAMPTZ NOT NULL,
  PRIMARY KEY ("id")
)
DISTSTYLE AUTO
SORTKEY ("updated_at", "id")"#
        );
    }

    #[test]
    fn a_dist_key_makes_the_table_key_distributed() {
        let sql = create_table(
            &TableRef::new("shop", "order_items"),
            &[
                column("order_id", "BIGINT", true),
                column("line", "INTEGER", true),
            ],
            &names(&["order_id", "line"]),
            &names(&["order_id"]),
            Some("order_id"),
        );
        assert_eq!(
            sql,
            r#"CREATE TABLE IF NOT EXISTS "shop"."order_items" (
  "order_id" BIGINT NOT NULL,
  "line" INTEGER NOT NULL,
  PRIMARY KEY ("order_id", "line")
)
DISTSTYLE KEY
DISTKEY ("order_id")
SORTKEY ("order_id")"#
        );
    }

    #[test]
    fn a_table_without_keys_has_no_primary_key_and_an_automatic_sort_key() {
        let sql = create_table(
            &TableRef::new("public", "countries"),
            &[column("code", "VARCHAR(8)", false)],
            &[],
            &[],
            None,
        );
        assert_eq!(
            sql,
            r#"CREATE TABLE IF NOT EXISTS "public"."countries" (
  "code" VARCHAR(8)
)
DISTSTYLE AUTO
SORTKEY AUTO"#
        );
    }

    #[test]
    fn odd_names_are_quoted_everywhere() {
        let sql = create_table(
            &TableRef::new("Sales \"EU\"", "order items"),
            &[
                column("Id", "BIGINT", true),
                column("größe", "VARCHAR(40)", false),
                column("a\"b", "SUPER", false),
                column("select", "BOOLEAN", false),
                column("表", "DATE", false),
            ],
            &names(&["Id"]),
            &names(&["a\"b"]),
            Some("größe"),
        );
        assert_eq!(
            sql,
            r#"CREATE TABLE IF NOT EXISTS "Sales ""EU"""."order items" (
  "Id" BIGINT NOT NULL,
  "größe" VARCHAR(40),
  "a""b" SUPER,
  "select" BOOLEAN,
  "表" DATE,
  PRIMARY KEY ("Id")
)
DISTSTYLE KEY
DISTKEY ("größe")
SORTKEY ("a""b")"#
        );
    }

    #[test]
    fn columns_are_added_one_at_a_time_and_nullable() {
        let table = TableRef::new("shop", "orders");
        assert_eq!(
            add_column(&table, &column("note", "VARCHAR(1000)", false)),
            r#"ALTER TABLE "shop"."orders" ADD COLUMN "note" VARCHAR(1000)"#
        );
        assert_eq!(
            add_column(&table, &column("Region \"x\"", "INTEGER", true)),
            r#"ALTER TABLE "shop"."orders" ADD COLUMN "Region ""x""" INTEGER"#
        );
    }

    #[test]
    fn varchar_columns_are_widened_in_place() {
        assert_eq!(
            alter_column_type(
                &TableRef::new("shop", "Orders"),
                "Note \"x\"",
                "VARCHAR(800)"
            ),
            r#"ALTER TABLE "shop"."Orders" ALTER COLUMN "Note ""x""" TYPE VARCHAR(800)"#
        );
    }

    #[test]
    fn load_statements_have_exact_text() {
        let from = CopyFrom {
            manifest_url: "s3://b/staging/shop/public.orders/r/000001/manifest.json",
            iam_role: "arn:aws:iam::123456789012:role/copy",
            region: Some("eu-west-1"),
            compression: Codec::Gzip,
        };
        assert_eq!(
            copy_from_manifest("\"stage\"", &names(&["id", "doc"]), &from),
            "COPY \"stage\" (\"id\", \"doc\") FROM 's3://b/staging/shop/public.orders/r/000001/manifest.json' IAM_ROLE 'arn:aws:iam::123456789012:role/copy' FORMAT AS CSV GZIP NULL AS '\\\\N' MANIFEST TIMEFORMAT 'auto' DATEFORMAT 'auto' REGION 'eu-west-1' COMPUPDATE OFF STATUPDATE OFF"
        );
        let zstd = CopyFrom {
            region: None,
            compression: Codec::Zstd,
            ..from
        };
        assert_eq!(
            copy_from_manifest("\"stage\"", &names(&["id"]), &zstd),
            "COPY \"stage\" (\"id\") FROM 's3://b/staging/shop/public.orders/r/000001/manifest.json' IAM_ROLE 'arn:aws:iam::123456789012:role/copy' FORMAT AS CSV ZSTD NULL AS '\\\\N' MANIFEST TIMEFORMAT 'auto' DATEFORMAT 'auto' COMPUPDATE OFF STATUPDATE OFF"
        );
        let cols = [column("id", "BIGINT", true), column("doc", "SUPER", false)];
        assert_eq!(
            create_stage("stage", &cols),
            "CREATE TEMP TABLE \"stage\" (\"id\" BIGINT, \"doc\" VARCHAR(65535))"
        );
        assert_eq!(
            dedupe_stage("stage", &names(&["id"]), "__row"),
            "DELETE FROM \"stage\" USING \"stage\" AS d WHERE d.\"id\" = \"stage\".\"id\" AND d.\"__row\" > \"stage\".\"__row\""
        );
        let target = TableRef::new("shop", "orders");
        assert_eq!(
            delete_matching(&target, "stage", &names(&["a", "b"])),
            "DELETE FROM \"shop\".\"orders\" USING \"stage\" WHERE \"shop\".\"orders\".\"a\" = \"stage\".\"a\" AND \"shop\".\"orders\".\"b\" = \"stage\".\"b\""
        );
        assert_eq!(
            stage_keys_are_new(&target, "stage", &names(&["a", "b"])),
            "SELECT COALESCE((SELECT MIN(\"a\") FROM \"stage\") > (SELECT MAX(\"a\") FROM \"shop\".\"orders\"), TRUE)"
        );
        assert_eq!(
            insert_from_stage(&target, "stage", &cols),
            "INSERT INTO \"shop\".\"orders\" (\"id\", \"doc\") SELECT \"id\", JSON_PARSE(\"doc\") FROM \"stage\""
        );
    }
}
