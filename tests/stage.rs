//! Staging to S3 (moto): streaming gzip multipart uploads.

use std::io::Read;

use redshift_loader::stage::upload::{GzipUpload, MIN_PART_BYTES};

use crate::support::World;

async fn download(w: &World, key: &str) -> Vec<u8> {
    let out = w
        .app
        .clients
        .s3
        .get_object()
        .bucket(&w.names.bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[tokio::test]
async fn a_large_stream_goes_up_in_parts_and_comes_back_equal() {
    let w = World::new().await;
    // Incompressible enough to need several 5 MiB parts.
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut expected = Vec::new();
    let mut upload = GzipUpload::new(
        w.app.clients.s3.clone(),
        &w.names.bucket,
        "big/part-00001.csv.gz",
        0,
    );
    for _ in 0..400 {
        let mut piece = Vec::with_capacity(40_000);
        for _ in 0..5_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            piece.extend_from_slice(&state.to_le_bytes());
        }
        upload.write(&piece).await.unwrap();
        expected.extend_from_slice(&piece);
    }
    let uploaded = upload.finish().await.unwrap();
    assert_eq!(uploaded.raw_bytes, expected.len() as u64);
    let stored = download(&w, "big/part-00001.csv.gz").await;
    assert_eq!(stored.len() as u64, uploaded.bytes);
    assert!(
        stored.len() > 2 * MIN_PART_BYTES,
        "several parts: {}",
        stored.len()
    );
    assert!(gunzip(&stored) == expected, "round trip differs");
}

#[tokio::test]
async fn a_small_stream_is_one_object_and_an_aborted_one_leaves_nothing() {
    let w = World::new().await;
    let mut upload = GzipUpload::new(w.app.clients.s3.clone(), &w.names.bucket, "small.csv.gz", 0);
    upload.write(b"1,\"a\"\n").await.unwrap();
    upload.finish().await.unwrap();
    assert_eq!(gunzip(&download(&w, "small.csv.gz").await), b"1,\"a\"\n");

    let mut upload = GzipUpload::new(
        w.app.clients.s3.clone(),
        &w.names.bucket,
        "aborted.csv.gz",
        0,
    );
    upload.write(&[7u8; 100]).await.unwrap();
    upload.abort().await;
    let listed = w
        .app
        .clients
        .s3
        .list_objects_v2()
        .bucket(&w.names.bucket)
        .prefix("aborted")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0));
}

#[tokio::test]
async fn a_chunk_streams_from_the_source_through_the_encoder_to_s3() {
    use redshift_loader::source::{extract::extract_chunk, query};
    use redshift_loader::warehouse::types::Load;

    let w = World::new().await;
    let src = w.source().await;
    src.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, note text, doc jsonb, at timestamptz);
         SET TimeZone = 'America/New_York';
         INSERT INTO t VALUES
           (1, NULL, NULL, '2024-01-01 12:00:00.123456-05'),
           (2, '', '{\"a\": \"x,\\\"y\"}', NULL),
           (3, E'\\\\N', '[1]', '2024-06-01 00:00:00+00'),
           (4, E'multi\\nline, \"quoted\" 😀', '{}', '2024-06-01 00:00:00+00');",
    )
    .await
    .unwrap();
    // The loader's own pinned session: UTC, ISO.
    let db = redshift_loader::secrets::parse_url(
        redshift_loader::secrets::Role::Source,
        &w.source_url().into(),
        "test",
    )
    .unwrap();
    let session = redshift_loader::source::open(&db).await.unwrap();
    let select = vec![
        "\"id\"".to_string(),
        "\"note\"".to_string(),
        "\"doc\"::text".to_string(),
        "\"at\"".to_string(),
    ];
    let keys = [query::KeyColumn {
        name: "id".into(),
        pg_type: "integer".into(),
    }];
    let after = ["1".to_string()];
    let table = redshift_loader::config::TableRef::new("public", "t");
    let sql = query::copy_out(&query::chunk_select(&query::Chunk {
        table: &table,
        select: &select,
        keys: &keys,
        after: Some(&after),
        floor: None,
        upto: None,
        unseen: None,
        unseen_after: None,
        limit: Some(10),
    }));
    let upload = GzipUpload::new(
        w.app.clients.s3.clone(),
        &w.names.bucket,
        "chunk/part-00001.csv.gz",
        0,
    );
    let loads = vec![
        Load::Plain,
        Load::Text { max_bytes: 65535 },
        Load::Json { max_bytes: 65535 },
        Load::Plain,
    ];
    let out = extract_chunk(&session, None, &sql, loads, vec![0], vec![], false, upload)
        .await
        .unwrap();
    assert_eq!(out.stats.rows, 3);
    assert_eq!(out.last, vec![Some("4".to_string())]);
    let csv = String::from_utf8(gunzip(&download(&w, "chunk/part-00001.csv.gz").await)).unwrap();
    assert_eq!(
        csv,
        "2,\"\",\"{\"\"a\"\": \"\"x,\\\"\"y\"\"}\",\\N\n\
         3,\"\\N\",\"[1]\",2024-06-01 00:00:00+00\n\
         4,\"multi\nline, \"\"quoted\"\" 😀\",\"{}\",2024-06-01 00:00:00+00\n"
    );
}
