//! A gzip stream into one S3 object by multipart upload, written while it is produced:
//! memory holds at most one part (plus the compressor's window), never the whole object.
//! Where the parts go is a [`PartSink`]: S3 in production, nowhere for the benchmark.

use std::io::Write;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use flate2::write::GzEncoder;

/// S3's smallest part (all but the last).
pub const MIN_PART_BYTES: usize = 5 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("staging s3://{bucket}/{key}: {operation} failed: {reason}")]
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

/// Where compressed parts go. Parts are numbered from 1; every part but the last is at
/// least [`MIN_PART_BYTES`]. An object small enough for one part arrives whole instead.
pub trait PartSink: Send {
    fn put_part(
        &mut self,
        number: i32,
        body: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<(), UploadError>> + Send;
    fn put_object(
        &mut self,
        body: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<(), UploadError>> + Send;
    /// After the last part.
    fn complete(&mut self) -> impl std::future::Future<Output = Result<(), UploadError>> + Send;
    /// Gives up on the parts stored so far.
    fn abort(&mut self) -> impl std::future::Future<Output = ()> + Send;
    fn key(&self) -> &str;
}

/// One S3 object, by multipart upload (or PutObject when small).
pub struct S3Sink {
    s3: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
}

impl S3Sink {
    pub fn new(s3: aws_sdk_s3::Client, bucket: &str, key: &str) -> S3Sink {
        S3Sink {
            s3,
            bucket: bucket.to_string(),
            key: key.to_string(),
            upload_id: None,
            parts: Vec::new(),
        }
    }

    fn error(&self, operation: &'static str, reason: impl std::fmt::Display) -> UploadError {
        UploadError {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            operation,
            reason: reason.to_string(),
        }
    }
}

impl PartSink for S3Sink {
    async fn put_part(&mut self, number: i32, body: Vec<u8>) -> Result<(), UploadError> {
        if self.upload_id.is_none() {
            let out = self
                .s3
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .content_type("application/gzip")
                .send()
                .await
                .map_err(|e| {
                    self.error("CreateMultipartUpload", crate::connect::error_chain(&e))
                })?;
            self.upload_id = out.upload_id().map(str::to_string);
        }
        let out = self
            .s3
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(self.upload_id.clone().unwrap_or_default())
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.error("UploadPart", crate::connect::error_chain(&e)))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build(),
        );
        Ok(())
    }

    async fn put_object(&mut self, body: Vec<u8>) -> Result<(), UploadError> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .content_type("application/gzip")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.error("PutObject", crate::connect::error_chain(&e)))?;
        Ok(())
    }

    async fn complete(&mut self) -> Result<(), UploadError> {
        self.s3
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(self.upload_id.clone().unwrap_or_default())
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(self.parts.clone()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.error("CompleteMultipartUpload", crate::connect::error_chain(&e)))?;
        Ok(())
    }

    async fn abort(&mut self) {
        if let Some(id) = &self.upload_id {
            if let Err(e) = self
                .s3
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(id)
                .send()
                .await
            {
                tracing::warn!(bucket = %self.bucket, key = %self.key, error = %crate::connect::error_chain(&e), "aborting a multipart upload failed; the bucket's lifecycle rule removes it");
            }
        }
    }

    fn key(&self) -> &str {
        &self.key
    }
}

/// Counts what it is given and keeps nothing: the pipeline without storage, for the
/// benchmark.
#[derive(Debug, Default)]
pub struct NullSink {
    pub parts: u32,
}

impl PartSink for NullSink {
    async fn put_part(&mut self, _number: i32, _body: Vec<u8>) -> Result<(), UploadError> {
        self.parts += 1;
        Ok(())
    }
    async fn put_object(&mut self, _body: Vec<u8>) -> Result<(), UploadError> {
        self.parts += 1;
        Ok(())
    }
    async fn complete(&mut self) -> Result<(), UploadError> {
        Ok(())
    }
    async fn abort(&mut self) {}
    fn key(&self) -> &str {
        ""
    }
}

pub struct GzipUpload<S: PartSink = S3Sink> {
    sink: S,
    part_bytes: usize,
    parts: i32,
    encoder: GzEncoder<Vec<u8>>,
    bytes: u64,
    raw_bytes: u64,
}

impl<S: PartSink> std::fmt::Debug for GzipUpload<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GzipUpload")
            .field("key", &self.sink.key())
            .field("parts", &self.parts)
            .finish_non_exhaustive()
    }
}

impl GzipUpload<S3Sink> {
    /// `part_bytes` is raised to S3's minimum part size.
    pub fn new(s3: aws_sdk_s3::Client, bucket: &str, key: &str, part_bytes: usize) -> GzipUpload {
        GzipUpload::with_sink(S3Sink::new(s3, bucket, key), part_bytes)
    }
}

impl<S: PartSink> GzipUpload<S> {
    /// `part_bytes` is raised to S3's minimum part size.
    pub fn with_sink(sink: S, part_bytes: usize) -> GzipUpload<S> {
        let part_bytes = part_bytes.max(MIN_PART_BYTES);
        GzipUpload {
            sink,
            part_bytes,
            parts: 0,
            encoder: GzEncoder::new(
                Vec::with_capacity(part_bytes + 64 * 1024),
                flate2::Compression::fast(),
            ),
            bytes: 0,
            raw_bytes: 0,
        }
    }

    fn compress_error(&self, e: std::io::Error) -> UploadError {
        UploadError {
            bucket: String::new(),
            key: self.sink.key().to_string(),
            operation: "compressing",
            reason: e.to_string(),
        }
    }

    /// Compresses `data`; uploads a part whenever one is full.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), UploadError> {
        self.raw_bytes += data.len() as u64;
        if let Err(e) = self.encoder.write_all(data) {
            return Err(self.compress_error(e));
        }
        if self.encoder.get_ref().len() >= self.part_bytes {
            let part = std::mem::take(self.encoder.get_mut());
            self.upload_part(part).await?;
        }
        Ok(())
    }

    async fn upload_part(&mut self, body: Vec<u8>) -> Result<(), UploadError> {
        self.parts += 1;
        self.bytes += body.len() as u64;
        self.sink.put_part(self.parts, body).await
    }

    /// Ends the gzip stream and completes the object. A small object is one PutObject.
    pub async fn finish(mut self) -> Result<Uploaded, UploadError> {
        let encoder = std::mem::replace(
            &mut self.encoder,
            GzEncoder::new(Vec::new(), flate2::Compression::fast()),
        );
        let tail = match encoder.finish() {
            Ok(tail) => tail,
            Err(e) => return Err(self.compress_error(e)),
        };
        if self.parts == 0 {
            self.bytes = tail.len() as u64;
            self.sink.put_object(tail).await?;
        } else {
            if !tail.is_empty() {
                self.upload_part(tail).await?;
            }
            self.sink.complete().await?;
        }
        Ok(Uploaded {
            key: self.sink.key().to_string(),
            bytes: self.bytes,
            raw_bytes: self.raw_bytes,
        })
    }

    /// Gives up: an unfinished multipart upload is aborted so its parts stop costing.
    pub async fn abort(mut self) {
        self.sink.abort().await;
    }
}
