//! PURE: the benchmark's source tables and the checksum both sides are compared by.

/// The benchmark table's columns, in order (source and Redshift names are the same).
pub const COLUMNS: &[&str] = &[
    "id",
    "updated_at",
    "customer_id",
    "quantity",
    "status",
    "amount",
    "code",
    "note",
    "active",
    "attrs",
];

/// Creates `name` and fills it with `rows` rows, generated inside PostgreSQL: a bigint
/// key, a timestamptz updated key (indexed, as setup requires), three ints, a
/// numeric(12,2), a short and a long text with unicode, quotes and commas, a boolean and
/// a jsonb; about 20 % of the nullable values are NULL. Deterministic: the same `rows`
/// gives the same table. Run `VACUUM ANALYZE` on it afterwards (outside a transaction).
pub fn create_table(name: &str, rows: u64) -> String {
    format!(
        r#"CREATE TABLE {name} (
  id bigint PRIMARY KEY,
  updated_at timestamptz NOT NULL,
  customer_id integer,
  quantity integer,
  status smallint,
  amount numeric(12,2),
  code text,
  note text,
  active boolean,
  attrs jsonb
);
INSERT INTO {name}
SELECT i,
  '2024-01-01 00:00:00+00'::timestamptz + i * interval '1 second',
  CASE WHEN i % 5 = 1 THEN NULL ELSE (i * 7919) % 1000003 END,
  CASE WHEN i % 5 = 2 THEN NULL ELSE i % 97 END,
  (i % 4)::smallint,
  CASE WHEN i % 5 = 3 THEN NULL ELSE ((i * 31) % 10000000) / 100.0 END,
  CASE WHEN i % 5 = 4 THEN NULL ELSE 'SKU-' || (i % 9973) || CASE WHEN i % 3 = 0 THEN '-ü' ELSE '' END END,
  CASE WHEN i % 5 = 0 THEN NULL
       ELSE 'Order ' || i || ' for "Zoë Ångström", Straße ' || (i % 300) || ': '
            || repeat('naïve café, lorem ipsum dolor sit amet; ', (2 + i % 6)::int) || '😀 ✓'
  END,
  CASE WHEN i % 5 = 1 THEN NULL ELSE i % 2 = 0 END,
  CASE WHEN i % 5 = 2 THEN NULL
       ELSE jsonb_build_object('id', i, 'tags', jsonb_build_array('a', 'b "c"'),
                               'score', (i % 1000) / 10.0, 'name', 'Zoë ' || (i % 100))
  END
FROM generate_series(1::bigint, {rows}) i;
CREATE INDEX ON {name} (updated_at, id);"#
    )
}

/// Changes `count` rows of `table` (spread over its `rows` rows; `round` picks which),
/// moving their updated key to now.
pub fn update_rows(table: &str, rows: u64, count: u64, round: u64) -> String {
    let stride = (rows / count.max(1)).max(1);
    format!(
        "UPDATE {table} SET updated_at = clock_timestamp(), quantity = coalesce(quantity, 0) + 1 \
         WHERE id IN (SELECT {} + s * {stride} FROM generate_series(0, {}) s)",
        round % stride + 1,
        count.saturating_sub(1)
    )
}

/// `count|sum of 60-bit row hashes` over every column's text form: order-independent, so
/// the source and the warehouse (PostgreSQL behind the emulator) can be compared in one
/// pass each. Run it in a UTC session on both sides.
pub fn checksum(table: &str) -> String {
    format!(
        "SELECT count(*)::text || '|' || coalesce(sum(('x' || substr(md5(ROW({})::text), 1, 15))::bit(60)::bigint), 0)::text FROM {table}",
        COLUMNS.join(", ")
    )
}
