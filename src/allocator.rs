//! glibc malloc settings for tensor workloads.
//!
//! libtorch's CPU allocator is plain malloc. Activations of the image encoders are tens of MB
//! (LiteMedSAM's first stage: 256 channels x 256 x 256 floats = 64 MB per slice), above glibc's
//! mmap threshold, so every such tensor is a fresh mmap that the kernel must zero page by page and
//! a munmap when freed: on the 2-core machine half the encoder's time went to page faults (see
//! bench/results/model_bench.md). Serving large blocks from the heap and keeping freed memory
//! lets the next slice reuse the same pages. The cost: the process keeps its peak heap size,
//! which is what a long-running worker wants anyway.

/// Call once at process start, before the first tensor is allocated.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 512 << 20);
    }
}
