// One small C shim for the Linux calls and macros Swift cannot reach
// directly. Compiled with _GNU_SOURCE (see Package.swift). Every function
// returns the syscall's result and leaves errno as the call left it; the
// Swift side (DGWPorts/Syscall.swift) retries EINTR and throws on error.
#ifndef DGW_SHIM_H
#define DGW_SHIM_H

#include <string.h>
#include <stdint.h>
#include <stddef.h>

#include "dgw_afpacket.h"

/// CLOCK_MONOTONIC in nanoseconds (0 if the clock is unavailable).
uint64_t dgw_monotonic_ns(void);

/// CLOCK_REALTIME in nanoseconds: the clock of a ring's receive times.
uint64_t dgw_realtime_ns(void);

/// Pins the calling thread to one CPU (CPU_SET is a macro). 0 or -1/errno.
int dgw_pin_thread_to_cpu(int cpu);

/// The CPU the calling thread may run on, lowest first; -1/errno on error.
int dgw_thread_first_allowed_cpu(void);

/// Number of CPUs in the calling thread's affinity mask; -1/errno on error.
int dgw_thread_allowed_cpu_count(void);

/// A non-blocking eventfd (one thread wakes another that polls it); -1/errno.
int dgw_eventfd(void);
/// Adds one to the eventfd's counter (8 bytes written) or -1/errno
/// (EAGAIN: the counter is full, the waiter will wake anyway).
int dgw_eventfd_signal(int fd);
/// Reads and clears the counter: 8, or -1/errno (EAGAIN: it was zero).
int dgw_eventfd_drain(int fd);

/// errno is a macro in glibc; read it through a function.
int dgw_errno(void);

/// Prefetch for read into all cache levels (inlined into Swift callers).
static inline void dgw_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }

/// Copies a frame-sized block (inlined): 16-byte moves, the last one
/// overlapping, where a call into memmove costs more than the copy for
/// the 64- to 256-byte frames replay moves twice each. Buffers must not
/// overlap.
static inline void dgw_copy_frame(void *restrict to, const void *restrict from, size_t count) {
    unsigned char *d = (unsigned char *)to;
    const unsigned char *s = (const unsigned char *)from;
    if (count < 16 || count > 256) {
        memcpy(d, s, count);
        return;
    }
    for (size_t i = 0; i + 16 < count; i += 16) memcpy(d + i, s + i, 16);
    memcpy(d + count - 16, s + count - 16, 16);
}

#endif
