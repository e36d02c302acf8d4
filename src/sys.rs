//! What bt asks of the operating system beyond std: the open-file limit, and giving freed
//! memory back.

/// The soft limit on open files (`RLIMIT_NOFILE`), raised to the hard limit first when that is
/// allowed (as most servers do; the common soft limit of 1024 is a relic of `select`).
pub fn open_file_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 1024;
        }
        if r.rlim_cur < r.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                r.rlim_cur = r.rlim_max;
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
        {
            r.rlim_cur as u64
        }
    }
}

/// Hand memory the allocator keeps after large frees back to the system (glibc keeps freed
/// multi-MiB buffers for reuse, so a seeder's RSS stayed high after its peers left).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Serve large allocations (piece buffers) from their own mappings, given back to the system
/// when freed. glibc otherwise raises its mmap threshold after the first large free and carves
/// later piece buffers out of its heaps, which it keeps: a seeder whose 64 MiB upload budget
/// was full measured 110-120 MiB resident instead of 46 MiB. Piece buffers are reused, so the
/// extra mmap calls are rare.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}
