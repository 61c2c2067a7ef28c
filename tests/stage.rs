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
