//! What bt asks of the allocator beyond std: large buffers in their own mappings, and freed
//! memory given back. (The open-file limit is in `swarm::files`.)

/// Hand memory the allocator keeps after large frees back to the system (glibc keeps freed
/// multi-MiB buffers for reuse, so a seeder's RSS stayed high after its peers left).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Serve allocations of 2 MiB and more (large piece buffers) from their own mappings, given
/// back to the system when freed. glibc otherwise raises its mmap threshold after the first
/// large free and carves later piece buffers out of its heaps, which it keeps: a seeder of
/// 4 MiB pieces whose 64 MiB upload budget was full measured 110-120 MiB resident, 73 MiB with
/// this. Smaller buffers stay on the heap (a 256 KiB threshold cost a few percent of loopback
/// speed), and freed heap memory is trimmed only past 32 MiB. Piece buffers are recycled, so
/// the extra mmap calls are rare.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 2 * 1024 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 32 * 1024 * 1024);
    }
}
