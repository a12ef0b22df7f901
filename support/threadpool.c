/* Thread pool (see threadpool.h): workers sleep on a condition variable and
 * take chunks of the current loop from an atomic counter. */
#include "support/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

struct fy_threadpool {
  int n_threads; /* including the caller */
  pthread_t *workers;
  pthread_mutex_t mutex;
  pthread_cond_t wake, done;
  uint64_t generation;
  int stopping, busy;
  /* current loop */
  fy_parallel_fn fn;
  void *ctx;
  int64_t n, chunk;
  atomic_int_fast64_t next;
};

static void run_chunks(fy_threadpool_t *p) {
  for (;;) {
    int64_t begin = atomic_fetch_add(&p->next, p->chunk);
    if (begin >= p->n) return;
    int64_t end = begin + p->chunk < p->n ? begin + p->chunk : p->n;
    p->fn(p->ctx, begin, end);
  }
}

static void *worker_main(void *arg) {
  fy_threadpool_t *p = arg;
  uint64_t seen = 0;
  pthread_mutex_lock(&p->mutex);
  for (;;) {
    while (!p->stopping && p->generation == seen) pthread_cond_wait(&p->wake, &p->mutex);
    if (p->stopping) break;
    seen = p->generation;
    pthread_mutex_unlock(&p->mutex);
    run_chunks(p);
    pthread_mutex_lock(&p->mutex);
    if (--p->busy == 0) pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->mutex);
  return NULL;
}

fy_status_t fy_threadpool_create(int n_threads, fy_threadpool_t **out_pool) {
  if (n_threads <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    n_threads = n > 0 ? (int)n : 1;
  }
  if (n_threads > 256) n_threads = 256;
  fy_threadpool_t *p = calloc(1, sizeof *p);
  if (!p) return fy_status_make(FY_RESOURCE_EXHAUSTED, "thread pool: out of memory");
  p->n_threads = n_threads;
  pthread_mutex_init(&p->mutex, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  p->workers = calloc((size_t)n_threads, sizeof *p->workers);
  int started = 0;
  if (p->workers) {
    for (; started < n_threads - 1; started++)
      if (pthread_create(&p->workers[started], NULL, worker_main, p) != 0) break;
  }
  if (!p->workers || started != n_threads - 1) {
    p->n_threads = started + 1;
    fy_threadpool_destroy(p);
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "thread pool: cannot start %d threads", n_threads);
  }
  *out_pool = p;
  return NULL;
}

void fy_threadpool_destroy(fy_threadpool_t *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mutex);
  p->stopping = 1;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mutex);
  for (int i = 0; p->workers && i < p->n_threads - 1; i++) pthread_join(p->workers[i], NULL);
  free(p->workers);
  pthread_mutex_destroy(&p->mutex);
  pthread_cond_destroy(&p->wake);
  pthread_cond_destroy(&p->done);
  free(p);
}

int fy_threadpool_size(const fy_threadpool_t *p) { return p ? p->n_threads : 1; }

void fy_parallel_for(fy_threadpool_t *p, int64_t n, int64_t grain, fy_parallel_fn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (!p || p->n_threads == 1 || n <= grain) {
    fn(ctx, 0, n);
    return;
  }
  int64_t chunk = n / ((int64_t)p->n_threads * 4);
  if (chunk < grain) chunk = grain;
  pthread_mutex_lock(&p->mutex);
  p->fn = fn;
  p->ctx = ctx;
  p->n = n;
  p->chunk = chunk;
  atomic_store(&p->next, 0);
  p->busy = p->n_threads - 1;
  p->generation++;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mutex);
  run_chunks(p);
  pthread_mutex_lock(&p->mutex);
  while (p->busy > 0) pthread_cond_wait(&p->done, &p->mutex);
  pthread_mutex_unlock(&p->mutex);
}
