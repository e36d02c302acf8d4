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
