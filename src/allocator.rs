//! glibc malloc settings for tensor workloads.
//!
//! libtorch's CPU allocator is plain malloc. Activations of the image encoders are tens of MB
//! (LiteMedSAM's first stage: 256 channels x 256 x 256 floats = 64 MB per slice), above glibc's
//! mmap threshold, so every such tensor is a fresh mmap that the kernel must zero page by page and
//! a munmap when freed: on the 2-core machine half the encoder's time went to page faults (see
//! bench/results/model_bench.md). Serving large blocks from the heap and keeping freed memory
//! lets the next slice reuse the same pages. The cost: the process keeps its peak heap size,
//! which is what a long-running worker wants anyway.
//!
//! One arena (M_ARENA_MAX = 1): glibc gives every new thread its own arena, made of 64 MB heaps
//! that the settings above do not govern (each is trimmed as it empties, and a block too big for
//! one is a fresh mmap). The model runs on a thread of its own (model/thread.rs), so without this
//! its encoder paid the page faults again: on the validation CT `radsam segment` encoded a slice
//! in 1.54-1.58 s against `bench-model`'s 1.19-1.25 s (main thread), and 1.14-1.33 s with one
//! arena (1 thread each, same run; bench/results/service_bench.md has the committed comparison).
//! The other threads (tokio's I/O) allocate little, so sharing the arena's lock costs nothing
//! measurable.

/// Call once at process start, before the first tensor is allocated.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 512 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
