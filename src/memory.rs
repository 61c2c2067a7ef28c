//! The allocator setting that keeps the process's memory flat however long a load runs.
//!
//! glibc serves allocations of at least `M_MMAP_THRESHOLD` bytes with their own `mmap`
//! and gives them back to the kernel when freed; smaller ones come from per-thread
//! arenas, which keep what is freed. By default the threshold moves up (to 32 MiB) each
//! time such a mapping is freed, so after the first staged part, every later part
//! (5 MiB) and block (1 MiB) comes from an arena, and the arenas of the compressor
//! threads hold on to fragments of them: the peak was above the live buffers and moved
//! with timing and the number of chunks (38–44 MiB for 2 chunks, 42–43 MiB for 8, in
//! `make bench`). A fixed threshold stops that: the staging buffers are mapped and
//! unmapped whole, and the peak stays where the live buffers put it (33–35 MiB for
//! both; BENCHMARKS.md). The upload reuses its
//! block buffers ([`crate::stage::upload::ChunkUpload::empty_block`]) across the
//! chunk's objects, so the fixed threshold costs no page faults per block.

/// Allocations this large or larger are mapped on their own.
pub const MMAP_THRESHOLD_BYTES: usize = 256 * 1024;

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD_BYTES`], unless the environment
/// sets malloc tunables itself (`MALLOC_MMAP_THRESHOLD_`, `GLIBC_TUNABLES`). Call
/// first thing in `main`, before any thread starts. Elsewhere than glibc: nothing.
pub fn settle_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tuned = ["MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES"]
            .iter()
            .any(|name| std::env::var_os(name).is_some());
        if !tuned {
            // SAFETY: mallopt only changes a malloc parameter; called before threads.
            // A refusal (0) leaves glibc's default, which is merely less flat.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES as libc::c_int);
            }
        }
    }
}
