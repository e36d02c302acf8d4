//! What bt asks of the system beyond std: large buffers in their own mappings, freed memory
//! given back, and a socket option std lacks. (The open-file limit is in `swarm::files`.)

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

/// Set the integer TCP option `name` (a `libc::TCP_*`) on `socket`. A failure leaves the
/// kernel's default, which every caller can live with, so it is not reported.
pub fn set_tcp_option(socket: &impl std::os::fd::AsRawFd, name: libc::c_int, value: libc::c_int) {
    // SAFETY: a plain setsockopt on a descriptor the caller holds open, with a pointer to a
    // live c_int and its size.
    let _ = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// Keep at most `bytes` of not-yet-sent data in `socket`'s kernel buffer (`TCP_NOTSENT_LOWAT`):
/// the socket reports itself writable only below that, so what waits to be sent waits in our
/// queue, where a later message can overtake it and a cancel can still drop it. Linux only;
/// elsewhere the kernel's default (no limit) stays.
pub fn limit_unsent(socket: &impl std::os::fd::AsRawFd, bytes: u32) {
    #[cfg(target_os = "linux")]
    set_tcp_option(
        socket,
        libc::TCP_NOTSENT_LOWAT,
        bytes.min(i32::MAX as u32) as libc::c_int,
    );
    #[cfg(not(target_os = "linux"))]
    let _ = (socket, bytes);
}
