// Counts heap allocations of the process it is linked into (dgw-bench only):
// malloc and friends are interposed and forwarded to glibc's own.
#ifndef DGW_MALLOC_COUNTER_H
#define DGW_MALLOC_COUNTER_H
#include <stdint.h>
uint64_t dgw_malloc_count(void);
#endif
