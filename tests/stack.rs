//! The local stack itself: each server is real and isolated per test.

use testkit::stack::shared;

#[tokio::test]
async fn source_databases_are_separate_per_test() {
    let stack = shared();
    let a = stack.source_db().await.unwrap();
    let b = stack.source_db().await.unwrap();
    assert_ne!(a, b);
    let client = stack.source.connect(&a).await.unwrap();
    client
        .batch_execute("CREATE TABLE only_in_a (id int)")
        .await
        .unwrap();
    let other = stack.source.connect(&b).await.unwrap();
    let found: i64 = other
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(found, 0);
}

#[tokio::test]
async fn source_cluster_has_logical_wal_and_utf8() {
    let stack = shared();
    let db = stack.source_db().await.unwrap();
    let client = stack.source.connect(&db).await.unwrap();
    let row = client
        .query_one(
            "SELECT current_setting('wal_level'), pg_encoding_to_char(encoding) \
             FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "logical");
    assert_eq!(row.get::<_, String>(1), "UTF8");
}
