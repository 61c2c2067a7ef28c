//! Where compressed parts go ([`PartSink`]: S3, or nowhere for the benchmark), and the
//! task that stores them one after the other while the next ones are being produced.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use tokio::sync::mpsc;

use super::upload::UploadError;
use crate::aws_error::{AwsError, Resource, SdkError};
use aws_sdk_s3::error::ProvideErrorMetadata;

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
    /// The bucket and key, for messages.
    fn target(&self) -> (&str, &str);
}

/// One S3 object, by multipart upload (or PutObject when small).
pub struct S3Sink {
    s3: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    content_type: &'static str,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
}

impl S3Sink {
    pub fn new(
        s3: aws_sdk_s3::Client,
        bucket: &str,
        key: &str,
        content_type: &'static str,
    ) -> S3Sink {
        S3Sink {
            s3,
            bucket: bucket.to_string(),
            key: key.to_string(),
            content_type,
            upload_id: None,
            parts: Vec::new(),
        }
    }

    fn error<E>(&self, operation: &'static str, e: &SdkError<E>) -> UploadError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        UploadError {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            operation,
            // The bucket is what a user can get wrong; the key is in the message.
            reason: AwsError::of(operation, Resource::Bucket(&self.bucket), e).line,
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
                .content_type(self.content_type)
                .send()
                .await
                .map_err(|e| self.error("CreateMultipartUpload", &e))?;
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
            .map_err(|e| self.error("UploadPart", &e))?;
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
            .content_type(self.content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.error("PutObject", &e))?;
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
            .map_err(|e| self.error("CompleteMultipartUpload", &e))?;
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
                tracing::warn!(bucket = %self.bucket, key = %self.key, error = %AwsError::of("AbortMultipartUpload", Resource::Bucket(&self.bucket), &e), "aborting a multipart upload failed; the bucket's lifecycle rule removes it");
            }
        }
    }

    fn target(&self) -> (&str, &str) {
        (&self.bucket, &self.key)
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
    fn target(&self) -> (&str, &str) {
        ("(null)", "(null)")
    }
}

/// What the uploader task is sent.
#[derive(Debug)]
pub enum Piece {
    /// A full part (at least [`super::upload::MIN_PART_BYTES`]).
    Part(Vec<u8>),
    /// The rest of the object (possibly empty); nothing follows.
    Last(Vec<u8>),
}

/// How the uploader task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The object is complete.
    Stored,
    /// The sender went away before the last piece: what was stored is given up.
    Abandoned,
}

/// Stores `pieces` as they arrive: parts of a multipart upload, or one object when the
/// first piece is already the last. Any failure, or a sender that goes away early,
/// aborts what was stored so far.
pub async fn store_pieces<S: PartSink>(
    mut sink: S,
    mut pieces: mpsc::Receiver<Piece>,
) -> Result<Finished, UploadError> {
    let mut parts = 0;
    while let Some(piece) = pieces.recv().await {
        let (stored, last) = match piece {
            Piece::Part(body) => {
                parts += 1;
                (sink.put_part(parts, body).await, false)
            }
            Piece::Last(body) => (store_last(&mut sink, parts, body).await, true),
        };
        if let Err(e) = stored {
            sink.abort().await;
            return Err(e);
        }
        if last {
            return Ok(Finished::Stored);
        }
    }
    sink.abort().await;
    Ok(Finished::Abandoned)
}

async fn store_last<S: PartSink>(
    sink: &mut S,
    parts: i32,
    body: Vec<u8>,
) -> Result<(), UploadError> {
    if parts == 0 {
        return sink.put_object(body).await;
    }
    if !body.is_empty() {
        sink.put_part(parts + 1, body).await?;
    }
    sink.complete().await
}
