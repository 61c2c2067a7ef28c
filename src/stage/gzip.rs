//! PURE: gzip members. A staged file is a sequence of independent members, each the
//! compression of one block of whole rows: blocks compress in parallel, and the members
//! concatenated in order are one valid (multi-member) gzip file, which Redshift's
//! `COPY ... GZIP` reads as the concatenation of the blocks.

use std::io::Write;

pub use flate2::Compression;

/// Raw bytes per block: large enough that a member's header and the lost window cost
/// little (about 1 % of the compressed size), small enough that blocks in flight stay a
/// few MiB.
pub const BLOCK_BYTES: usize = 1 << 20;

/// One complete gzip member holding `data`.
pub fn member(data: &[u8], level: Compression) -> std::io::Result<Vec<u8>> {
    member_into(data, level, Vec::new())
}

/// [`member`], written into `out` (cleared first), so a caller can reuse one buffer.
pub fn member_into(data: &[u8], level: Compression, mut out: Vec<u8>) -> std::io::Result<Vec<u8>> {
    out.clear();
    // Level 1 on CSV compresses about 4:1; start there to avoid regrowth.
    out.reserve(data.len() / 3 + 64);
    let mut encoder = flate2::write::GzEncoder::new(out, level);
    encoder.write_all(data)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip_all(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn members_concatenated_in_order_decode_to_the_blocks_concatenated() {
        let blocks: [&[u8]; 4] = [b"1,\"a\"\n", b"", "2,\"é😀\"\n".as_bytes(), b"3,\\N\n"];
        let mut file = Vec::new();
        for b in blocks {
            file.extend(member(b, Compression::fast()).unwrap());
        }
        assert_eq!(gunzip_all(&file), blocks.concat());
    }

    #[test]
    fn a_reused_buffer_holds_only_the_new_member() {
        let first = member_into(b"1,\"a\"\n", Compression::fast(), Vec::new()).unwrap();
        let again = member_into(b"2,\"b\"\n", Compression::fast(), first).unwrap();
        assert_eq!(gunzip_all(&again), b"2,\"b\"\n");
    }

    #[test]
    fn an_empty_block_is_still_a_valid_member() {
        let m = member(b"", Compression::fast()).unwrap();
        assert_eq!(&m[..2], &[0x1f, 0x8b], "gzip magic");
        assert_eq!(gunzip_all(&m), b"");
    }
}
