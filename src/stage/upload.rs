//! A chunk into S3 as several objects (one per slice of the cluster, so that COPY
//! loads them on every slice at once), each ONE compressed stream written while it is
//! produced:
//!
//! 1. the caller hands over blocks of whole rows; block `i` goes to object `i mod N`,
//!    so rows are never split and every object gets a fair share;
//! 2. each object compresses its blocks into one stream (one gzip member or one zstd
//!    frame, [`super::compress`]) on a blocking thread of its own, so the N objects
//!    compress concurrently;
//! 3. the stream's output fills parts, and full parts go through a channel of one to
//!    the object's own task that uploads them ([`super::sink::store_pieces`]) while the
//!    next part fills.
//!
//! An object is started by its first block: one that would get no rows (a chunk of
//! fewer blocks than N) never exists, so the manifest lists no empty file.
//!
//! Memory is bounded by construction, never by the chunk's size. Per object at most:
//! two blocks (one queued, one compressing; [`BLOCK_BYTES`] + a row each), the part
//! filling (below [`MIN_PART_BYTES`] + one compressed block), one part queued and one
//! being stored, and the encoder's state (about 1 MiB for zstd level 1, 0.3 MiB for
//! gzip): about **19 MiB** per object in the worst case, **~300 MiB** for the largest
//! N (16) when every object is big enough to need a multipart upload (a chunk of over
//! 80 MiB compressed). An object below one part is a single PutObject of its
//! compressed size: a 100,000-row chunk (a few MiB compressed) holds about its
//! compressed size plus two blocks per object.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::compress::Codec;
use super::key;
use super::sink::{store_pieces, Finished, PartSink, Piece, S3Sink};

/// S3's smallest part (all but the last): the part size of every staged object.
pub const MIN_PART_BYTES: usize = 5 * 1024 * 1024;

/// Raw bytes per block, the unit rows are dealt to objects in: large enough that
/// handing one over costs nothing next to compressing it, small enough that the blocks
/// in flight stay a few MiB and a chunk of a few MiB still spreads over several
/// objects.
pub const BLOCK_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
#[error("staging s3://{bucket}/{key}: {reason}")]
pub struct UploadError {
    pub bucket: String,
    pub key: String,
    pub operation: &'static str,
    pub reason: String,
}

/// One staged object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub key: String,
    /// Compressed bytes stored.
    pub bytes: u64,
    /// Bytes before compression.
    pub raw_bytes: u64,
}

/// What a chunk became: its objects, in key order; none when it had no rows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Staged {
    pub objects: Vec<Uploaded>,
}

impl Staged {
    /// Compressed bytes stored.
    pub fn bytes(&self) -> u64 {
        self.objects.iter().map(|o| o.bytes).sum()
    }

    /// Bytes before compression.
    pub fn raw_bytes(&self) -> u64 {
        self.objects.iter().map(|o| o.raw_bytes).sum()
    }
}

/// Emptied block buffers, shared by a chunk's objects and handed back to the caller
/// for the next blocks, so the steady state allocates none.
#[derive(Debug)]
struct Spares {
    blocks: Mutex<Vec<Vec<u8>>>,
    keep: usize,
}

impl Spares {
    fn put(&self, mut block: Vec<u8>) {
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        if blocks.len() < self.keep {
            block.clear();
            blocks.push(block);
        }
    }

    fn take(&self) -> Option<Vec<u8>> {
        self.blocks.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }
}

/// What an object's compressor is sent.
enum Input {
    Rows(Vec<u8>),
    /// The object is complete: end the stream and store the rest.
    Finish,
}

/// Why a compressor stopped before its object was complete.
enum Stop {
    Compress(std::io::Error),
    /// The uploader went away; its own result says why.
    UploaderGone,
}

/// An object's compressor, on a blocking thread: its blocks in order into one stream,
/// full parts out to the uploader. Returns the compressed bytes once the object is
/// complete, `None` when its sender went away first (the uploader, sent no last
/// piece, then aborts what it stored).
fn compress(
    codec: Codec,
    mut input: mpsc::Receiver<Input>,
    pieces: mpsc::Sender<Piece>,
    spares: Arc<Spares>,
) -> Result<Option<u64>, Stop> {
    let mut stream = codec.stream().map_err(Stop::Compress)?;
    let mut bytes = 0u64;
    while let Some(next) = input.blocking_recv() {
        match next {
            Input::Rows(block) => {
                stream.write(&block).map_err(Stop::Compress)?;
                spares.put(block);
                if stream.ready() >= MIN_PART_BYTES {
                    let part = stream.take(Vec::with_capacity(MIN_PART_BYTES + BLOCK_BYTES));
                    bytes += part.len() as u64;
                    pieces
                        .blocking_send(Piece::Part(part))
                        .map_err(|_| Stop::UploaderGone)?;
                }
            }
            Input::Finish => {
                let tail = stream.finish().map_err(Stop::Compress)?;
                bytes += tail.len() as u64;
                pieces
                    .blocking_send(Piece::Last(tail))
                    .map_err(|_| Stop::UploaderGone)?;
                return Ok(Some(bytes));
            }
        }
    }
    Ok(None)
}

/// One object being written: its compressor thread and its uploader task.
struct ObjectUpload {
    bucket: String,
    key: String,
    input: Option<mpsc::Sender<Input>>,
    compressor: Option<JoinHandle<Result<Option<u64>, Stop>>>,
    uploader: Option<JoinHandle<Result<Finished, UploadError>>>,
    raw_bytes: u64,
}

impl ObjectUpload {
    fn start<S: PartSink + 'static>(sink: S, codec: Codec, spares: Arc<Spares>) -> ObjectUpload {
        let (bucket, key) = sink.target();
        let (bucket, key) = (bucket.to_string(), key.to_string());
        let (pieces, stored) = mpsc::channel(1);
        let uploader = tokio::spawn(store_pieces(sink, stored));
        let (input, blocks) = mpsc::channel(1);
        let compressor =
            tokio::task::spawn_blocking(move || compress(codec, blocks, pieces, spares));
        ObjectUpload {
            bucket,
            key,
            input: Some(input),
            compressor: Some(compressor),
            uploader: Some(uploader),
            raw_bytes: 0,
        }
    }

    fn error(&self, operation: &'static str, reason: impl std::fmt::Display) -> UploadError {
        UploadError {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            operation,
            reason: format!("{operation} failed: {reason}"),
        }
    }

    async fn write(&mut self, rows: Vec<u8>) -> Result<(), UploadError> {
        self.raw_bytes += rows.len() as u64;
        let sent = match &self.input {
            Some(input) => input.send(Input::Rows(rows)).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        Err(match self.stop().await {
            Err(e) => e,
            Ok(_) => self.error("compressing", "the compressor stopped early"),
        })
    }

    /// Closes the input and waits for the compressor and the uploader: the compressed
    /// bytes once the object is stored; the first error otherwise.
    async fn stop(&mut self) -> Result<u64, UploadError> {
        self.input = None;
        let compressed = match self.compressor.take() {
            Some(task) => task.await,
            None => Ok(Ok(None)),
        };
        let stored = match self.uploader.take() {
            Some(task) => task.await,
            None => Ok(Ok(Finished::Abandoned)),
        };
        let stored = stored.map_err(|e| self.error("uploading", e))?;
        match compressed {
            Err(e) => Err(self.error("compressing", e)),
            Ok(Err(Stop::Compress(e))) => Err(self.error("compressing", e)),
            // The uploader's own error says why it went.
            Ok(Err(Stop::UploaderGone)) | Ok(Ok(None)) => Err(match stored {
                Err(e) => e,
                Ok(_) => self.error("uploading", "the upload stopped early"),
            }),
            Ok(Ok(Some(bytes))) => match stored? {
                Finished::Stored => Ok(bytes),
                Finished::Abandoned => Err(self.error("uploading", "the upload stopped early")),
            },
        }
    }

    async fn finish(mut self) -> Result<Uploaded, UploadError> {
        if let Some(input) = &self.input {
            // A send that fails leaves the reason to `stop`.
            let _ = input.send(Input::Finish).await;
        }
        let bytes = self.stop().await?;
        Ok(Uploaded {
            key: self.key.clone(),
            bytes,
            raw_bytes: self.raw_bytes,
        })
    }

    /// Gives up: the input closes without `Finish`, the uploader aborts.
    async fn abort(mut self) {
        let _ = self.stop().await;
    }
}

/// Starts object `i` of a chunk (from 0).
type Start = Box<dyn FnMut(usize, Arc<Spares>) -> ObjectUpload + Send>;

/// One chunk being staged as up to `files` objects.
pub struct ChunkUpload {
    files: usize,
    start: Start,
    objects: Vec<Option<ObjectUpload>>,
    blocks: usize,
    spares: Arc<Spares>,
}

impl std::fmt::Debug for ChunkUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkUpload")
            .field("files", &self.files)
            .field("blocks", &self.blocks)
            .finish_non_exhaustive()
    }
}

impl ChunkUpload {
    /// Objects `<chunk_prefix>/part-00001.csv.zst` ... (one per file, numbered from 1;
    /// the extension by `codec`) in `bucket`. `files` is raised to 1.
    pub fn to_s3(
        s3: aws_sdk_s3::Client,
        bucket: &str,
        chunk_prefix: &str,
        files: usize,
        codec: Codec,
    ) -> ChunkUpload {
        let (bucket, prefix) = (bucket.to_string(), chunk_prefix.to_string());
        ChunkUpload::with_sinks(files, codec, move |i| {
            let key = key::part_key(&prefix, i as u32 + 1, codec.extension());
            S3Sink::new(s3.clone(), &bucket, &key, codec.content_type())
        })
    }

    /// Object `i` (from 0) goes to `sink(i)`, stored by a task of its own (call within
    /// a Tokio runtime). `files` is raised to 1.
    pub fn with_sinks<S, F>(files: usize, codec: Codec, mut sink: F) -> ChunkUpload
    where
        S: PartSink + 'static,
        F: FnMut(usize) -> S + Send + 'static,
    {
        let files = files.max(1);
        ChunkUpload {
            files,
            start: Box::new(move |i, spares| ObjectUpload::start(sink(i), codec, spares)),
            objects: (0..files).map(|_| None).collect(),
            blocks: 0,
            // Two blocks per object can be in flight; one more is being filled.
            spares: Arc::new(Spares {
                blocks: Mutex::new(Vec::new()),
                keep: 2 * files + 1,
            }),
        }
    }

    /// The block size [`ChunkUpload::write_rows`] callers should aim for.
    pub fn block_bytes(&self) -> usize {
        BLOCK_BYTES
    }

    /// An empty buffer for the next block: one a compressor is done with, or a new one
    /// with room for a block and one more row.
    pub fn empty_block(&mut self) -> Vec<u8> {
        self.spares
            .take()
            .unwrap_or_else(|| Vec::with_capacity(BLOCK_BYTES + 64 * 1024))
    }

    /// Adds a block of whole rows (best near [`ChunkUpload::block_bytes`]) to the next
    /// object in turn. An empty block is dropped.
    pub async fn write_rows(&mut self, rows: Vec<u8>) -> Result<(), UploadError> {
        if rows.is_empty() {
            self.spares.put(rows);
            return Ok(());
        }
        let i = self.blocks % self.files;
        self.blocks += 1;
        let object = match &mut self.objects[i] {
            Some(object) => object,
            empty => empty.insert((self.start)(i, self.spares.clone())),
        };
        object.write(rows).await
    }

    /// Completes every object that got rows, all at once: the objects in key order
    /// (none when no rows came), or the first error.
    pub async fn finish(self) -> Result<Staged, UploadError> {
        let finished = futures_util::future::join_all(
            self.objects.into_iter().flatten().map(ObjectUpload::finish),
        )
        .await;
        Ok(Staged {
            objects: finished.into_iter().collect::<Result<_, _>>()?,
        })
    }

    /// Gives up: unfinished multipart uploads are aborted so their parts stop costing.
    pub async fn abort(self) {
        futures_util::future::join_all(self.objects.into_iter().flatten().map(ObjectUpload::abort))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// What the sinks were asked to do: object, what, body.
    type Log = Vec<(usize, String, Vec<u8>)>;

    /// Keeps what it is given, for the assertions; one per object, sharing the log.
    #[derive(Default, Clone)]
    struct Memory {
        log: Arc<Mutex<Log>>,
        object: usize,
        fail_part: Option<i32>,
    }

    impl Memory {
        fn push(&self, what: String, body: Vec<u8>) {
            self.log.lock().unwrap().push((self.object, what, body));
        }
        fn log(&self) -> Log {
            self.log.lock().unwrap().clone()
        }
        /// The bodies object `i` stored, concatenated, and the names of its calls.
        fn object(&self, i: usize) -> (Vec<u8>, Vec<String>) {
            let log: Vec<_> = self.log().into_iter().filter(|(o, _, _)| *o == i).collect();
            let names = log.iter().map(|(_, w, _)| w.clone()).collect();
            (log.into_iter().flat_map(|(_, _, b)| b).collect(), names)
        }
        fn upload(&self, files: usize, codec: Codec) -> ChunkUpload {
            let sink = self.clone();
            ChunkUpload::with_sinks(files, codec, move |object| Memory {
                object,
                ..sink.clone()
            })
        }
    }

    impl PartSink for Memory {
        async fn put_part(&mut self, number: i32, body: Vec<u8>) -> Result<(), UploadError> {
            if self.fail_part == Some(number) {
                return Err(UploadError {
                    bucket: "b".into(),
                    key: "k".into(),
                    operation: "UploadPart",
                    reason: "refused".into(),
                });
            }
            self.push(format!("part {number}"), body);
            Ok(())
        }
        async fn put_object(&mut self, body: Vec<u8>) -> Result<(), UploadError> {
            self.push("object".into(), body);
            Ok(())
        }
        async fn complete(&mut self) -> Result<(), UploadError> {
            self.push("complete".into(), Vec::new());
            Ok(())
        }
        async fn abort(&mut self) {
            self.push("abort".into(), Vec::new());
        }
        fn target(&self) -> (&str, &str) {
            ("b", "k")
        }
    }

    /// Decodes exactly one gzip member or zstd frame; panics if anything follows it.
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
        assert_eq!(rest, 0, "{codec:?}: bytes after the first member / frame");
        out
    }

    /// Rows that compress poorly, so a few MiB of them make several parts.
    fn rows(n: usize) -> Vec<u8> {
        let mut state = 0x2545F4914F6CDD1Du64;
        let mut out = Vec::new();
        for i in 0..n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.extend_from_slice(
                format!("{i},\"{state:x}{:x}\"\n", state.rotate_left(7)).as_bytes(),
            );
        }
        out
    }

    #[tokio::test]
    async fn blocks_are_dealt_in_turn_and_each_object_is_one_stream_of_its_blocks() {
        for codec in [Codec::Gzip, Codec::Zstd] {
            let sink = Memory::default();
            let mut upload = sink.upload(3, codec);
            let blocks: Vec<Vec<u8>> = (0..7)
                .map(|b| format!("{b},\"b{b}\"\n").into_bytes())
                .collect();
            for b in &blocks {
                upload.write_rows(b.clone()).await.unwrap();
            }
            let staged = upload.finish().await.unwrap();
            assert_eq!(staged.objects.len(), 3);
            assert_eq!(staged.raw_bytes(), blocks.concat().len() as u64);
            for (i, expected) in [[0, 3, 6].as_slice(), &[1, 4], &[2, 5]].iter().enumerate() {
                let (stored, calls) = sink.object(i);
                assert_eq!(calls, ["object"], "{codec:?}: a small object is one put");
                assert_eq!(stored.len() as u64, staged.objects[i].bytes);
                let want: Vec<u8> = expected.iter().flat_map(|&b| blocks[b].clone()).collect();
                assert_eq!(decode_one(codec, &stored), want, "{codec:?} object {i}");
            }
        }
    }

    #[tokio::test]
    async fn objects_that_would_get_no_rows_are_never_created() {
        let sink = Memory::default();
        let mut upload = sink.upload(4, Codec::Zstd);
        upload.write_rows(b"1\n".to_vec()).await.unwrap();
        upload.write_rows(Vec::new()).await.unwrap();
        upload.write_rows(b"2\n".to_vec()).await.unwrap();
        let staged = upload.finish().await.unwrap();
        assert_eq!(staged.objects.len(), 2, "{staged:?}");
        let objects: Vec<usize> = sink.log().iter().map(|(o, _, _)| *o).collect();
        assert_eq!(objects.len(), 2);
        assert!(objects.contains(&0) && objects.contains(&1), "{objects:?}");

        let sink = Memory::default();
        let staged = sink.upload(4, Codec::Gzip).finish().await.unwrap();
        assert_eq!(staged, Staged::default());
        assert!(sink.log().is_empty());
    }

    #[tokio::test]
    async fn a_large_object_goes_up_in_full_parts_that_decode_to_its_blocks_in_order() {
        for codec in [Codec::Gzip, Codec::Zstd] {
            let sink = Memory::default();
            let mut upload = sink.upload(1, codec);
            let input = rows(700_000);
            let mut cut = 0;
            for block in input
                .split_inclusive(|&b| b == b'\n')
                .collect::<Vec<_>>()
                .chunks(30_000)
            {
                let block = block.concat();
                cut += block.len();
                upload.write_rows(block).await.unwrap();
            }
            assert_eq!(cut, input.len());
            let staged = upload.finish().await.unwrap();
            let log = sink.log();
            let names: Vec<&str> = log.iter().map(|(_, w, _)| w.as_str()).collect();
            assert!(names.len() >= 3, "{codec:?}: several parts: {names:?}");
            assert_eq!(names.last(), Some(&"complete"));
            let parts: Vec<&Vec<u8>> = log
                .iter()
                .filter(|(_, w, _)| w.starts_with("part"))
                .map(|(_, _, b)| b)
                .collect();
            for (i, (_, what, _)) in log
                .iter()
                .filter(|(_, w, _)| w.starts_with("part"))
                .enumerate()
            {
                assert_eq!(what, &format!("part {}", i + 1));
            }
            for p in &parts[..parts.len() - 1] {
                assert!(p.len() >= MIN_PART_BYTES, "part of {} bytes", p.len());
            }
            let stored: Vec<u8> = parts.into_iter().flatten().copied().collect();
            assert_eq!(stored.len() as u64, staged.bytes());
            assert!(
                decode_one(codec, &stored) == input,
                "{codec:?}: round trip differs"
            );
        }
    }

    #[tokio::test]
    async fn a_failed_part_aborts_and_its_error_comes_back() {
        let sink = Memory {
            fail_part: Some(2),
            ..Memory::default()
        };
        let mut upload = sink.upload(1, Codec::Gzip);
        let input = rows(900_000);
        let mut failed = None;
        for block in input.chunks(BLOCK_BYTES) {
            if let Err(e) = upload.write_rows(block.to_vec()).await {
                failed = Some(e);
                break;
            }
        }
        let e = match failed {
            Some(e) => e,
            None => upload.finish().await.unwrap_err(),
        };
        assert_eq!((e.operation, e.reason.as_str()), ("UploadPart", "refused"));
        let names: Vec<String> = sink.log().into_iter().map(|(_, w, _)| w).collect();
        assert_eq!(names, ["part 1", "abort"]);
    }

    #[tokio::test]
    async fn giving_up_aborts_every_object() {
        let sink = Memory::default();
        let mut upload = sink.upload(2, Codec::Zstd);
        for block in rows(900_000).chunks(BLOCK_BYTES) {
            upload.write_rows(block.to_vec()).await.unwrap();
        }
        upload.abort().await;
        for i in 0..2 {
            let (_, names) = sink.object(i);
            assert_eq!(
                names.last().map(String::as_str),
                Some("abort"),
                "object {i}"
            );
            assert!(!names.contains(&"complete".to_string()), "object {i}");
        }
    }

    #[tokio::test]
    async fn block_buffers_are_reused_so_no_more_exist_than_can_be_in_flight() {
        let sink = Memory::default();
        let mut upload = sink.upload(2, Codec::Zstd);
        let input = rows(200_000);
        let mut seen = std::collections::HashSet::new();
        let mut blocks = 0;
        for piece in input.chunks(BLOCK_BYTES / 4) {
            let mut block = upload.empty_block();
            assert!(block.is_empty());
            seen.insert(block.as_ptr() as usize);
            block.extend_from_slice(piece);
            upload.write_rows(block).await.unwrap();
            blocks += 1;
        }
        // The caller's block, and one queued and one compressing per object.
        assert_eq!(upload.spares.keep, 5);
        assert!(blocks > 4 * upload.spares.keep, "{blocks} blocks");
        assert!(seen.len() <= upload.spares.keep, "{} buffers", seen.len());
        let staged = upload.finish().await.unwrap();
        let stored: Vec<u8> = [0, 1]
            .iter()
            .flat_map(|&i| decode_one(Codec::Zstd, &sink.object(i).0))
            .collect();
        assert_eq!(stored.len() as u64, staged.raw_bytes());
    }
}
