//! PURE: how staged files are compressed. Each staged object is ONE compressed stream
//! (one gzip member, or one zstd frame), written a block at a time: Redshift's COPY
//! documents `GZIP` and `ZSTD` files, not whether it reads every member of a
//! multi-member gzip file, so none is written.

use std::io::Write;

/// `LOADER_STAGING_COMPRESSION`: what COPY is told (`GZIP` / `ZSTD`) and how staged
/// files are written. zstd is the default: at level 1 it costs no more CPU per row
/// than gzip at level 1 and stores about half the bytes (BENCHMARKS.md, "Staging
/// compression").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    /// gzip, level 1.
    Gzip,
    /// zstd, level [`ZSTD_LEVEL`].
    #[default]
    Zstd,
}

/// zstd's level: its fastest standard level.
pub const ZSTD_LEVEL: i32 = 1;

impl Codec {
    /// From the setting's text (`zstd` or `gzip`, any case).
    pub fn parse(v: &str) -> Result<Codec, String> {
        match v.to_ascii_lowercase().as_str() {
            "zstd" => Ok(Codec::Zstd),
            "gzip" => Ok(Codec::Gzip),
            _ => Err(format!("expected zstd or gzip, got {v:?}")),
        }
    }

    /// COPY's compression option.
    pub fn copy_option(self) -> &'static str {
        match self {
            Codec::Gzip => "GZIP",
            Codec::Zstd => "ZSTD",
        }
    }

    /// A staged file's extension.
    pub fn extension(self) -> &'static str {
        match self {
            Codec::Gzip => "csv.gz",
            Codec::Zstd => "csv.zst",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Codec::Gzip => "application/gzip",
            Codec::Zstd => "application/zstd",
        }
    }

    /// A stream that starts empty.
    pub fn stream(self) -> std::io::Result<Stream> {
        Ok(match self {
            Codec::Gzip => Stream::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::fast(),
            )),
            Codec::Zstd => Stream::Zstd(zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL)?),
        })
    }
}

/// One compressed stream being written: bytes in, compressed bytes taken out as they
/// accumulate, so the whole stream is never held.
pub enum Stream {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Stream {
    pub fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Gzip(e) => e.write_all(data),
            Stream::Zstd(e) => e.write_all(data),
        }
    }

    /// Compressed bytes ready so far (the encoder keeps some back until it has more).
    pub fn ready(&self) -> usize {
        match self {
            Stream::Gzip(e) => e.get_ref().len(),
            Stream::Zstd(e) => e.get_ref().len(),
        }
    }

    /// Takes the compressed bytes ready so far; `spare` (emptied) collects what follows.
    pub fn take(&mut self, spare: Vec<u8>) -> Vec<u8> {
        let out = match self {
            Stream::Gzip(e) => e.get_mut(),
            Stream::Zstd(e) => e.get_mut(),
        };
        let mut spare = spare;
        spare.clear();
        std::mem::replace(out, spare)
    }

    /// Ends the stream: the compressed bytes not taken yet, trailer included.
    pub fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Stream::Gzip(e) => e.finish(),
            Stream::Zstd(e) => e.finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Decodes exactly one gzip member or zstd frame, and says whether bytes follow it.
    fn decode_one(codec: Codec, bytes: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        match codec {
            Codec::Gzip => {
                let mut d = flate2::bufread::GzDecoder::new(bytes);
                d.read_to_end(&mut out).unwrap();
                let rest = d.into_inner();
                (out, !rest.is_empty())
            }
            Codec::Zstd => {
                let mut d = zstd::stream::read::Decoder::with_buffer(bytes)
                    .unwrap()
                    .single_frame();
                d.read_to_end(&mut out).unwrap();
                let rest = d.finish();
                (out, !rest.is_empty())
            }
        }
    }

    #[test]
    fn blocks_written_and_taken_piecewise_are_one_stream_of_their_concatenation() {
        for codec in [Codec::Gzip, Codec::Zstd] {
            let blocks: Vec<Vec<u8>> = (0..50)
                .map(|i| format!("{i},\"é😀 {}\"\n", "x".repeat(i * 997 % 5000)).into_bytes())
                .collect();
            let mut stream = codec.stream().unwrap();
            let mut file = Vec::new();
            for (i, b) in blocks.iter().enumerate() {
                stream.write(b).unwrap();
                if i % 7 == 0 {
                    file.extend(stream.take(Vec::new()));
                    assert_eq!(stream.ready(), 0);
                }
            }
            file.extend(stream.finish().unwrap());
            let (plain, more) = decode_one(codec, &file);
            assert_eq!(plain, blocks.concat(), "{codec:?}");
            assert!(!more, "{codec:?}: one member / frame, nothing after it");
        }
    }

    #[test]
    fn an_empty_stream_is_still_a_valid_file() {
        for codec in [Codec::Gzip, Codec::Zstd] {
            let file = codec.stream().unwrap().finish().unwrap();
            assert_eq!(decode_one(codec, &file), (Vec::new(), false), "{codec:?}");
        }
    }

    #[test]
    fn the_setting_names_the_copy_option_and_the_extension() {
        assert_eq!(Codec::default(), Codec::Zstd);
        let cases = [
            ("zstd", Codec::Zstd, "ZSTD", "csv.zst"),
            ("GZIP", Codec::Gzip, "GZIP", "csv.gz"),
        ];
        for (text, codec, option, extension) in cases {
            let c = Codec::parse(text).unwrap();
            assert_eq!(c, codec);
            assert_eq!((c.copy_option(), c.extension()), (option, extension));
        }
        assert_eq!(
            Codec::parse("bzip2").unwrap_err(),
            "expected zstd or gzip, got \"bzip2\""
        );
    }
}
