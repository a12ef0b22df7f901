/* A fixed pool of threads running one parallel loop at a time.
 * Items are independent, so results never depend on the thread count: kernels
 * split only over outputs, never inside a reduction. */
#ifndef FERRY_SUPPORT_THREADPOOL_H
#define FERRY_SUPPORT_THREADPOOL_H

#include <stdint.h>

#include "ferry/status.h"

typedef struct fy_threadpool fy_threadpool_t;

/* fn(ctx, begin, end) handles items [begin, end). */
typedef void (*fy_parallel_fn)(void *ctx, int64_t begin, int64_t end);

/* n_threads <= 0 picks the number of online CPUs. */
fy_status_t fy_threadpool_create(int n_threads, fy_threadpool_t **out_pool);
void fy_threadpool_destroy(fy_threadpool_t *pool);
int fy_threadpool_size(const fy_threadpool_t *pool);
/* Runs fn over [0, n) in chunks of at least grain items; the caller's thread
 * works too. pool may be NULL (runs inline). */
void fy_parallel_for(fy_threadpool_t *pool, int64_t n, int64_t grain, fy_parallel_fn fn, void *ctx);

#endif
