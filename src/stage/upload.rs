//! A gzip stream into one S3 object, written while it is produced, in three overlapping
//! stages:
//!
//! 1. the caller hands over blocks of whole rows (or bytes, gathered into blocks);
//! 2. each block is compressed into its own gzip member on the blocking thread pool,
//!    as many at once as there are cores (2 to 8), and the members are taken back in
//!    order;
//! 3. members fill parts, and full parts go through a channel of one to the task that
//!    uploads them ([`super::sink::store_pieces`]) while the next part fills.
//!
//! Memory is bounded by construction: the blocks in flight, the part filling, one part
//! queued and one being stored; never the whole object.

use std::collections::VecDeque;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::gzip::{self, Compression, BLOCK_BYTES};
use super::sink::{store_pieces, Finished, PartSink, Piece, S3Sink};

/// S3's smallest part (all but the last).
pub const MIN_PART_BYTES: usize = 5 * 1024 * 1024;

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

/// A block being compressed: its member, and the block and member buffers back for
/// reuse.
type Member = JoinHandle<(std::io::Result<Vec<u8>>, Vec<u8>)>;

pub struct GzipUpload {
    bucket: String,
    key: String,
    level: Compression,
    /// Bytes from [`GzipUpload::write`] not yet a block.
    block: Vec<u8>,
    /// Blocks being compressed, oldest first.
    compressing: VecDeque<Member>,
    in_flight: usize,
    members: u64,
    /// Emptied block and member buffers, reused so that the steady state allocates
    /// none (at most `in_flight` + 1 of each are kept).
    spare_blocks: Vec<Vec<u8>>,
    spare_members: Vec<Vec<u8>>,
    part: Vec<u8>,
    part_bytes: usize,
    pieces: Option<mpsc::Sender<Piece>>,
    uploader: Option<JoinHandle<Result<Finished, UploadError>>>,
    bytes: u64,
    raw_bytes: u64,
}

impl std::fmt::Debug for GzipUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GzipUpload")
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

impl GzipUpload {
    /// An S3 object. `part_bytes` is raised to S3's minimum part size.
    pub fn new(s3: aws_sdk_s3::Client, bucket: &str, key: &str, part_bytes: usize) -> GzipUpload {
        GzipUpload::with_sink(S3Sink::new(s3, bucket, key), part_bytes)
    }

    /// Parts go to `sink`, stored by a task of their own (call within a Tokio runtime).
    /// `part_bytes` is raised to S3's minimum part size.
    pub fn with_sink<S: PartSink + 'static>(sink: S, part_bytes: usize) -> GzipUpload {
        let (bucket, key) = sink.target();
        let (bucket, key) = (bucket.to_string(), key.to_string());
        let (tx, rx) = mpsc::channel(1);
        let uploader = tokio::spawn(store_pieces(sink, rx));
        GzipUpload {
            bucket,
            key,
            level: Compression::fast(),
            block: Vec::new(),
            compressing: VecDeque::new(),
            in_flight: compressors(),
            members: 0,
            spare_blocks: Vec::new(),
            spare_members: Vec::new(),
            part: Vec::new(),
            part_bytes: part_bytes.max(MIN_PART_BYTES),
            pieces: Some(tx),
            uploader: Some(uploader),
            bytes: 0,
            raw_bytes: 0,
        }
    }

    /// The block size [`GzipUpload::write_rows`] callers should aim for.
    pub fn block_bytes(&self) -> usize {
        BLOCK_BYTES
    }

    /// An empty buffer for the next block: one a compressed block left behind, or a new
    /// one with room for a block and one more row.
    pub fn empty_block(&mut self) -> Vec<u8> {
        self.spare_blocks
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BLOCK_BYTES + 64 * 1024))
    }

    fn error(&self, operation: &'static str, reason: impl std::fmt::Display) -> UploadError {
        UploadError {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            operation,
            reason: format!("{operation} failed: {reason}"),
        }
    }

    /// Adds bytes cut anywhere; they are compressed a block at a time.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), UploadError> {
        self.raw_bytes += data.len() as u64;
        self.block.extend_from_slice(data);
        if self.block.len() >= BLOCK_BYTES {
            let fresh = self.empty_block();
            let block = std::mem::replace(&mut self.block, fresh);
            self.compress(block).await?;
        }
        Ok(())
    }

    /// Adds a block of whole rows (best near [`GzipUpload::block_bytes`]); it becomes one
    /// gzip member, so every member holds whole rows.
    pub async fn write_rows(&mut self, rows: Vec<u8>) -> Result<(), UploadError> {
        if !self.block.is_empty() {
            let block = std::mem::take(&mut self.block);
            self.compress(block).await?;
        }
        self.raw_bytes += rows.len() as u64;
        self.compress(rows).await
    }

    async fn compress(&mut self, block: Vec<u8>) -> Result<(), UploadError> {
        while self.compressing.len() >= self.in_flight {
            self.take_member().await?;
        }
        let level = self.level;
        let out = self.spare_members.pop().unwrap_or_default();
        self.compressing
            .push_back(tokio::task::spawn_blocking(move || {
                (gzip::member_into(&block, level, out), block)
            }));
        Ok(())
    }

    /// Waits for the oldest block's member and adds it to the part; sends the part
    /// when full.
    async fn take_member(&mut self) -> Result<(), UploadError> {
        let Some(next) = self.compressing.pop_front() else {
            return Ok(());
        };
        let (member, block) = match next.await {
            Ok((Ok(member), block)) => (member, block),
            Ok((Err(e), _)) => return Err(self.error("compressing", e)),
            Err(e) => return Err(self.error("compressing", e)),
        };
        self.members += 1;
        self.bytes += member.len() as u64;
        if self.part.is_empty() {
            self.part.reserve(self.part_bytes + BLOCK_BYTES);
        }
        self.part.extend_from_slice(&member);
        let keep = self.in_flight + 1;
        for (spare, mut buffer) in [
            (&mut self.spare_blocks, block),
            (&mut self.spare_members, member),
        ] {
            if spare.len() < keep {
                buffer.clear();
                spare.push(buffer);
            }
        }
        if self.part.len() >= self.part_bytes {
            let part = std::mem::take(&mut self.part);
            self.send(Piece::Part(part)).await?;
        }
        Ok(())
    }

    async fn send(&mut self, piece: Piece) -> Result<(), UploadError> {
        let sent = match &self.pieces {
            Some(tx) => tx.send(piece).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The uploader stopped: its error says why.
        Err(match self.stop_uploader().await {
            Err(e) => e,
            Ok(_) => self.error("uploading", "the upload task stopped early"),
        })
    }

    /// Closes the channel and waits for the uploader's end.
    async fn stop_uploader(&mut self) -> Result<Finished, UploadError> {
        self.pieces = None;
        match self.uploader.take() {
            Some(task) => match task.await {
                Ok(result) => result,
                Err(e) => Err(self.error("uploading", e)),
            },
            None => Ok(Finished::Abandoned),
        }
    }

    /// Compresses what is left and completes the object (one PutObject when small).
    pub async fn finish(mut self) -> Result<Uploaded, UploadError> {
        // An empty object is still one (empty) gzip member: a valid file.
        if !self.block.is_empty() || (self.members == 0 && self.compressing.is_empty()) {
            let block = std::mem::take(&mut self.block);
            self.compress(block).await?;
        }
        while !self.compressing.is_empty() {
            self.take_member().await?;
        }
        let tail = std::mem::take(&mut self.part);
        self.send(Piece::Last(tail)).await?;
        match self.stop_uploader().await? {
            Finished::Stored => Ok(Uploaded {
                key: self.key.clone(),
                bytes: self.bytes,
                raw_bytes: self.raw_bytes,
            }),
            Finished::Abandoned => Err(self.error("uploading", "the upload task stopped early")),
        }
    }

    /// Gives up: an unfinished multipart upload is aborted so its parts stop costing.
    pub async fn abort(mut self) {
        let _ = self.stop_uploader().await;
    }
}

/// Blocks compressed at once: one per core, at least two so that compression overlaps
/// encoding even on one core, and at most [`MAX_COMPRESSORS`] so that memory does not
/// grow with the host (one source stream cannot feed more).
fn compressors() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(2, MAX_COMPRESSORS)
}

/// Lambda's largest size has 6 vCPUs; one COPY stream keeps about two busy.
const MAX_COMPRESSORS: usize = 8;

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What the sink was asked to do, and with what body.
    type Log = Vec<(String, Vec<u8>)>;

    /// Keeps what it is given, for the assertions.
    #[derive(Default, Clone)]
    struct Memory {
        log: Arc<Mutex<Log>>,
        fail_part: Option<i32>,
    }

    impl Memory {
        fn push(&self, what: String, body: Vec<u8>) {
            self.log.lock().unwrap().push((what, body));
        }
        fn log(&self) -> Log {
            self.log.lock().unwrap().clone()
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

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
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
    async fn parts_are_full_size_but_the_last_and_decode_to_the_input_in_order() {
        let sink = Memory::default();
        let mut upload = GzipUpload::with_sink(sink.clone(), 0);
        let input = rows(600_000);
        // Mixed: owned blocks of whole rows, and bytes cut anywhere.
        let (a, b) = input.split_at(input.len() / 2);
        for block in a.chunks(BLOCK_BYTES) {
            upload.write_rows(block.to_vec()).await.unwrap();
        }
        for piece in b.chunks(100_003) {
            upload.write(piece).await.unwrap();
        }
        let uploaded = upload.finish().await.unwrap();
        let log = sink.log();
        let names: Vec<&str> = log.iter().map(|(w, _)| w.as_str()).collect();
        assert!(names.len() >= 4, "several parts: {names:?}");
        assert_eq!(names.last(), Some(&"complete"));
        let parts: Vec<&Vec<u8>> = log
            .iter()
            .filter(|(w, _)| w.starts_with("part"))
            .map(|(_, b)| b)
            .collect();
        for (i, (what, _)) in log
            .iter()
            .filter(|(w, _)| w.starts_with("part"))
            .enumerate()
        {
            assert_eq!(what, &format!("part {}", i + 1));
        }
        for p in &parts[..parts.len() - 1] {
            assert!(p.len() >= MIN_PART_BYTES, "part of {} bytes", p.len());
        }
        let stored: Vec<u8> = parts.into_iter().flatten().copied().collect();
        assert_eq!(stored.len() as u64, uploaded.bytes);
        assert_eq!(uploaded.raw_bytes, input.len() as u64);
        assert!(gunzip(&stored) == input, "round trip differs");
    }

    #[tokio::test]
    async fn a_small_object_is_one_put_and_an_empty_one_is_valid_gzip() {
        let sink = Memory::default();
        let mut upload = GzipUpload::with_sink(sink.clone(), 0);
        upload.write(b"1,\"a\"\n").await.unwrap();
        upload.finish().await.unwrap();
        let log = sink.log();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].0, "object");
        assert_eq!(gunzip(&log[0].1), b"1,\"a\"\n");

        let sink = Memory::default();
        let uploaded = GzipUpload::with_sink(sink.clone(), 0)
            .finish()
            .await
            .unwrap();
        let log = sink.log();
        assert_eq!(log[0].0, "object");
        assert_eq!(uploaded.bytes, log[0].1.len() as u64);
        assert_eq!(gunzip(&log[0].1), b"");
    }

    #[tokio::test]
    async fn a_failed_part_aborts_and_its_error_comes_back() {
        let sink = Memory {
            fail_part: Some(2),
            ..Memory::default()
        };
        let mut upload = GzipUpload::with_sink(sink.clone(), 0);
        let input = rows(600_000);
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
        let names: Vec<String> = sink.log().into_iter().map(|(w, _)| w).collect();
        assert_eq!(names, ["part 1", "abort"]);
    }

    #[tokio::test]
    async fn compressed_blocks_come_back_empty_for_reuse_and_the_output_is_unchanged() {
        let sink = Memory::default();
        let mut upload = GzipUpload::with_sink(sink.clone(), 0);
        let input = rows(200_000);
        let mut handed_back = 0;
        for piece in input.chunks(BLOCK_BYTES / 4) {
            let spare: Vec<*const u8> = upload.spare_blocks.iter().map(|b| b.as_ptr()).collect();
            let mut block = upload.empty_block();
            assert!(block.is_empty());
            if spare.contains(&block.as_ptr()) {
                handed_back += 1;
            }
            block.extend_from_slice(piece);
            upload.write_rows(block).await.unwrap();
            assert!(upload.spare_blocks.len() <= upload.in_flight + 1);
        }
        // Once `in_flight` blocks are compressing, each new block is one that was.
        let blocks = input.chunks(BLOCK_BYTES / 4).count();
        assert!(blocks > 2 * upload.in_flight, "{blocks} blocks");
        assert!(
            handed_back >= blocks - upload.in_flight - 1,
            "{handed_back} of {blocks}"
        );
        upload.finish().await.unwrap();
        let stored: Vec<u8> = sink.log().into_iter().flat_map(|(_, b)| b).collect();
        assert_eq!(gunzip(&stored), input);
    }

    #[tokio::test]
    async fn giving_up_aborts_the_parts_stored() {
        let sink = Memory::default();
        let mut upload = GzipUpload::with_sink(sink.clone(), 0);
        for block in rows(400_000).chunks(BLOCK_BYTES) {
            upload.write_rows(block.to_vec()).await.unwrap();
        }
        upload.abort().await;
        let names: Vec<String> = sink.log().into_iter().map(|(w, _)| w).collect();
        assert_eq!(names.last().map(String::as_str), Some("abort"));
        assert!(!names.contains(&"complete".to_string()));
    }
}
