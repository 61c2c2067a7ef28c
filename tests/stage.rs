//! Staging to S3 (moto): a chunk as one single-stream object per slice of the cluster,
//! streamed by multipart upload, listed in the COPY manifest and loaded once.

use std::collections::BTreeSet;
use std::io::Read;

use redshift_loader::config::{Job, TableRef};
use redshift_loader::stage::compress::Codec;
use redshift_loader::stage::upload::{ChunkUpload, MIN_PART_BYTES};
use redshift_loader::sync::{self, Options};

use crate::support::World;
use crate::sync::{run, setup_job, TIMING};

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

/// Every key in the world's bucket under `prefix`, sorted.
async fn keys(w: &World, prefix: &str) -> Vec<String> {
    let listed = w
        .app
        .clients
        .s3
        .list_objects_v2()
        .bucket(&w.names.bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    let mut keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    keys.sort();
    keys
}

/// Decodes exactly one gzip member or zstd frame; panics if any byte follows it.
fn decode_one(codec: Codec, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let rest = match codec {
        Codec::Gzip => {
            let mut d = flate2::bufread::GzDecoder::new(bytes);
            d.read_to_end(&mut out).unwrap();
            d.into_inner().len()
        }
        Codec::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(bytes)
                .unwrap()
                .single_frame();
            d.read_to_end(&mut out).unwrap();
            d.finish().len()
        }
    };
    assert_eq!(
        rest, 0,
        "{codec:?}: {rest} bytes after the first member / frame"
    );
    out
}

/// Incompressible bytes, so a few MiB of them make several 5 MiB parts.
fn noise(len: usize, state: &mut u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out
}

#[tokio::test]
async fn large_objects_go_up_in_parts_each_one_stream_of_its_blocks() {
    let w = World::new().await;
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut upload = ChunkUpload::to_s3(
        w.app.clients.s3.clone(),
        &w.names.bucket,
        "big/000001",
        2,
        Codec::Zstd,
    );
    let mut expected = [Vec::new(), Vec::new()];
    for block in 0..24 {
        let bytes = noise(1 << 20, &mut state);
        expected[block % 2].extend_from_slice(&bytes);
        upload.write_rows(bytes).await.unwrap();
    }
    let staged = upload.finish().await.unwrap();
    let names: Vec<&str> = staged.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        names,
        [
            "big/000001/part-00001.csv.zst",
            "big/000001/part-00002.csv.zst"
        ]
    );
    for (object, expected) in staged.objects.iter().zip(&expected) {
        let stored = download(&w, &object.key).await;
        assert_eq!(stored.len() as u64, object.bytes);
        assert!(
            stored.len() > 2 * MIN_PART_BYTES,
            "several parts: {}",
            stored.len()
        );
        assert!(
            decode_one(Codec::Zstd, &stored) == *expected,
            "round trip differs"
        );
    }
}

#[tokio::test]
async fn a_small_chunk_is_one_object_and_an_aborted_one_leaves_nothing() {
    let w = World::new().await;
    let s3 = w.app.clients.s3.clone();
    let mut upload = ChunkUpload::to_s3(s3.clone(), &w.names.bucket, "small", 4, Codec::Gzip);
    upload.write_rows(b"1,\"a\"\n".to_vec()).await.unwrap();
    let staged = upload.finish().await.unwrap();
    assert_eq!(keys(&w, "small").await, ["small/part-00001.csv.gz"]);
    assert_eq!(staged.objects[0].key, "small/part-00001.csv.gz");
    let stored = download(&w, "small/part-00001.csv.gz").await;
    assert_eq!(decode_one(Codec::Gzip, &stored), b"1,\"a\"\n");

    let mut upload = ChunkUpload::to_s3(s3, &w.names.bucket, "aborted", 2, Codec::Zstd);
    let mut state = 7;
    for _ in 0..8 {
        upload.write_rows(noise(1 << 20, &mut state)).await.unwrap();
    }
    upload.abort().await;
    assert!(keys(&w, "aborted").await.is_empty());
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
    let table = TableRef::new("public", "t");
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
    let upload = ChunkUpload::to_s3(
        w.app.clients.s3.clone(),
        &w.names.bucket,
        "chunk",
        2,
        Codec::Zstd,
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
    // Less than a block: one object, the second file never started.
    assert_eq!(out.staged.objects.len(), 1);
    let stored = download(&w, "chunk/part-00001.csv.zst").await;
    let csv = String::from_utf8(decode_one(Codec::Zstd, &stored)).unwrap();
    assert_eq!(
        csv,
        "2,\"\",\"{\"\"a\"\": \"\"x,\\\"\"y\"\"}\",\\N\n\
         3,\"\\N\",\"[1]\",2024-06-01 00:00:00+00\n\
         4,\"multi\nline, \"\"quoted\"\" 😀\",\"{}\",2024-06-01 00:00:00+00\n"
    );
}

// ------------------------------------------------------------- chunks in a real run

/// Rows in the source table `items`: about 4.5 MB of CSV, so more than four 1 MiB
/// blocks, in one chunk.
const ROWS: i64 = 40_000;

/// Stops the run right before the first chunk's COMMIT (the COPY has read every staged
/// file), leaving its files in S3 to look at.
struct StopBeforeCommit;

impl sync::Observer for StopBeforeCommit {
    fn step(&self, _: &TableRef, step: sync::Step, _: u64, _: u64) -> Result<(), String> {
        match step {
            sync::Step::Copied => Err("stopped to look at the staged files".into()),
            _ => Ok(()),
        }
    }
}

/// A job loading `items` (ROWS rows, one chunk) into `destination`.
async fn items_job(w: &World, name: &str, destination: &str) -> Job {
    w.source()
        .await
        .batch_execute(&format!(
            "CREATE TABLE items (id int PRIMARY KEY, note text NOT NULL);
             INSERT INTO items SELECT i, repeat('n', 100) || i FROM generate_series(1, {ROWS}) i;"
        ))
        .await
        .unwrap();
    let yaml = format!(
        "name: {name}\nsource:\n  url: {}\ndestination:\n  url: {destination}\n  schema: analytics\n  \
         iam_role: arn:aws:iam::123456789012:role/redshift-copy\nfrequency: 300\ntables:\n  \
         - {{ source: public.items, import_chunk_size: 1000000 }}\n",
        w.source_url()
    );
    let job = w.apply_yaml(&yaml).await;
    setup_job(w, &job).await;
    job
}

/// Runs the job up to the first chunk's COMMIT and checks what it staged: the manifest
/// lists exactly the chunk's objects (mandatory, with their sizes), each object is one
/// gzip member or zstd frame, and together they hold every row once, in whole rows.
/// Returns the objects' keys.
async fn staged_chunk(w: &World, job: &Job, codec: Codec) -> Vec<String> {
    let options = Options {
        run_id: "look".into(),
        force: true,
        observer: Some(std::sync::Arc::new(StopBeforeCommit)),
        ..Options::default()
    };
    let outcomes = sync::run(&w.app, job, &options, TIMING).await.unwrap();
    let message = outcomes[0].result.as_ref().unwrap_err().to_string();
    assert!(message.contains("stopped to look"), "{message}");
    let all = keys(w, "").await;
    let manifest_key = all
        .iter()
        .find(|k| k.ends_with("/manifest.json"))
        .unwrap_or_else(|| panic!("no manifest among {all:?}"))
        .clone();
    let chunk = manifest_key.trim_end_matches("manifest.json");
    let objects: Vec<String> = all
        .iter()
        .filter(|k| k.starts_with(chunk) && **k != manifest_key)
        .cloned()
        .collect();
    let manifest: serde_json::Value =
        serde_json::from_slice(&download(w, &manifest_key).await).unwrap();
    let entries = manifest["entries"].as_array().unwrap();
    assert_eq!(entries.len(), objects.len(), "{manifest}");
    let mut ids = BTreeSet::new();
    let mut rows = 0;
    for (entry, key) in entries.iter().zip(&objects) {
        assert_eq!(entry["url"], format!("s3://{}/{key}", w.names.bucket));
        assert_eq!(entry["mandatory"], true);
        assert!(key.ends_with(codec.extension()), "{key}");
        let stored = download(w, key).await;
        assert_eq!(entry["meta"]["content_length"], stored.len() as u64);
        let csv = String::from_utf8(decode_one(codec, &stored)).unwrap();
        assert!(csv.ends_with('\n'), "{key} ends mid-row");
        for line in csv.lines() {
            // Whole rows: id, note (n×100 then the id), and the row order.
            let fields: Vec<&str> = line.split(',').collect();
            let id: i64 = fields[0]
                .parse()
                .unwrap_or_else(|_| panic!("{key}: {line:?}"));
            let note = fields[1].trim_matches('"');
            assert_eq!(note, format!("{}{id}", "n".repeat(100)), "{key}: {line:?}");
            assert!(ids.insert(id), "row {id} staged twice");
            rows += 1;
        }
    }
    assert_eq!(rows, ROWS);
    assert_eq!(ids.first().copied(), Some(1));
    assert_eq!(ids.last().copied(), Some(ROWS));
    objects
}

/// Every row in Redshift exactly once.
async fn loaded_once(w: &World, job: &Job) {
    let report = run(w, job).await;
    assert_eq!(crate::sync::ok(&report[0]).rows, ROWS as u64);
    let row = w
        .warehouse()
        .await
        .query_one(
            "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM analytics.items",
            &[],
        )
        .await
        .unwrap();
    let counts: (i64, i64, i32, i32) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(counts, (ROWS, ROWS, 1, ROWS as i32));
}

#[tokio::test]
async fn a_chunk_is_staged_as_one_single_stream_object_per_slice_and_loads_once() {
    let w = World::new().await;
    let job = items_job(&w, "slices", &w.redshift_url()).await;
    let objects = staged_chunk(&w, &job, Codec::Zstd).await;
    // The emulator's cluster has two slices: two files, zstd by default.
    let names: Vec<&str> = objects
        .iter()
        .map(|k| k.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(names, ["part-00001.csv.zst", "part-00002.csv.zst"]);
    loaded_once(&w, &job).await;
}

#[tokio::test]
async fn loader_files_per_chunk_overrides_the_slice_count_and_gzip_loads_end_to_end() {
    let mut w = World::new().await;
    w.app.settings.files_per_chunk = Some(3);
    w.app.settings.staging_compression = Codec::Gzip;
    let job = items_job(&w, "override", &w.redshift_url()).await;
    let objects = staged_chunk(&w, &job, Codec::Gzip).await;
    let names: Vec<&str> = objects
        .iter()
        .map(|k| k.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "part-00001.csv.gz",
            "part-00002.csv.gz",
            "part-00003.csv.gz"
        ]
    );
    loaded_once(&w, &job).await;
}

#[tokio::test]
async fn without_stv_slices_a_chunk_is_staged_as_one_file() {
    let w = World::new().await;
    // Redshift Serverless has no STV tables: the slice count cannot be read.
    let serverless = w.stack.serverless_url(&w.names.warehouse_db);
    let job = items_job(&w, "noslices", &serverless).await;
    let objects = staged_chunk(&w, &job, Codec::Zstd).await;
    assert_eq!(objects.len(), 1, "{objects:?}");
    loaded_once(&w, &job).await;
}
