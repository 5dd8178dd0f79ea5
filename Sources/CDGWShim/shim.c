#include "dgw_shim.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

uint64_t dgw_monotonic_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int dgw_pin_thread_to_cpu(int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) { errno = EINVAL; return -1; }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    if (rc != 0) { errno = rc; return -1; }
    return 0;
}

static int allowed(cpu_set_t *set) {
    int rc = pthread_getaffinity_np(pthread_self(), sizeof(*set), set);
    if (rc != 0) { errno = rc; return -1; }
    return 0;
}

int dgw_thread_first_allowed_cpu(void) {
    cpu_set_t set;
    if (allowed(&set) != 0) return -1;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &set)) return cpu;
    errno = ESRCH;
    return -1;
}

int dgw_thread_allowed_cpu_count(void) {
    cpu_set_t set;
    if (allowed(&set) != 0) return -1;
    return CPU_COUNT(&set);
}

int dgw_errno(void) { return errno; }
