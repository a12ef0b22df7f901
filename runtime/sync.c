/* The queues' shared state (see sync.h). Every change is made under the
 * mutex and announced with a broadcast: there are two threads, so waking
 * both is as cheap as waking the right one. */
#include "runtime/sync.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

fy_status_t fy_sync_init(fy_sync_t *s, int max_events) {
  *s = (fy_sync_t){0};
  s->cap_events = max_events > 0 ? max_events : 1;
  s->events = calloc((size_t)s->cap_events, sizeof *s->events);
  if (!s->events) return fy_status_make(FY_RESOURCE_EXHAUSTED, "runtime: out of memory for events");
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  int rc = pthread_cond_init(&s->cond, &attr);
  pthread_condattr_destroy(&attr);
  if (rc) {
    free(s->events);
    s->events = NULL;
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "runtime: cannot create a condition variable");
  }
  pthread_mutex_init(&s->mutex, NULL);
  atomic_init(&s->cancel, false);
  s->state[FY_QUEUE_COMPUTE] = FY_QSTATE_IDLE;
  s->state[FY_QUEUE_COPY] = FY_QSTATE_FINISHED;
  return NULL;
}

void fy_sync_destroy(fy_sync_t *s) {
  if (!s->events) return;
  pthread_cond_destroy(&s->cond);
  pthread_mutex_destroy(&s->mutex);
  free(s->events);
  fy_status_free(s->failure);
  *s = (fy_sync_t){0};
}

void fy_sync_lock(fy_sync_t *s) { pthread_mutex_lock(&s->mutex); }
void fy_sync_unlock(fy_sync_t *s) { pthread_mutex_unlock(&s->mutex); }

void fy_sync_begin_stage(fy_sync_t *s, const fy_stage_schedule_t *stage) {
  pthread_mutex_lock(&s->mutex);
  s->stage = stage;
  for (int e = 0; e < s->cap_events; e++) s->events[e] = 0;
  s->state[FY_QUEUE_COMPUTE] = FY_QSTATE_IDLE;
  s->state[FY_QUEUE_COPY] = FY_QSTATE_FINISHED;
  atomic_store(&s->cancel, false);
  fy_status_free(s->failure);
  s->failure = NULL;
  pthread_mutex_unlock(&s->mutex);
}

void fy_sync_start_job(fy_sync_t *s, int stage, int64_t steps) {
  pthread_mutex_lock(&s->mutex);
  s->job_pending = true;
  s->job_stage = stage;
  s->job_steps = steps;
  /* Running from now on, so that a compute wait before the thread wakes is no deadlock. */
  s->state[FY_QUEUE_COPY] = FY_QSTATE_RUNNING;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mutex);
}

bool fy_sync_take_job(fy_sync_t *s, int *out_stage, int64_t *out_steps) {
  pthread_mutex_lock(&s->mutex);
  while (!s->job_pending && !s->quit) pthread_cond_wait(&s->cond, &s->mutex);
  bool take = !s->quit;
  if (take) {
    s->job_pending = false;
    s->job_running = true;
    *out_stage = s->job_stage;
    *out_steps = s->job_steps;
  }
  pthread_mutex_unlock(&s->mutex);
  return take;
}

void fy_sync_end_job(fy_sync_t *s, fy_status_t status) {
  pthread_mutex_lock(&s->mutex);
  s->job_running = false;
  s->state[FY_QUEUE_COPY] = FY_QSTATE_FINISHED;
  if (status && !s->failure)
    s->failure = status;
  else
    fy_status_free(status);
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mutex);
}

void fy_sync_drain(fy_sync_t *s) {
  pthread_mutex_lock(&s->mutex);
  while (s->job_pending || s->job_running) pthread_cond_wait(&s->cond, &s->mutex);
  pthread_mutex_unlock(&s->mutex);
}

void fy_sync_cancel(fy_sync_t *s) {
  pthread_mutex_lock(&s->mutex);
  atomic_store(&s->cancel, true);
  s->job_pending = false;
  s->state[FY_QUEUE_COPY] = s->job_running ? s->state[FY_QUEUE_COPY] : FY_QSTATE_FINISHED;
  pthread_cond_broadcast(&s->cond);
  while (s->job_running) pthread_cond_wait(&s->cond, &s->mutex);
  pthread_mutex_unlock(&s->mutex);
}

void fy_sync_quit(fy_sync_t *s) {
  pthread_mutex_lock(&s->mutex);
  s->quit = true;
  atomic_store(&s->cancel, true);
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mutex);
}

bool fy_sync_cancelled(fy_sync_t *s) { return atomic_load(&s->cancel); }

void fy_sync_set_state(fy_sync_t *s, fy_queue_t queue, fy_queue_state_t state) {
  pthread_mutex_lock(&s->mutex);
  s->state[queue] = state;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mutex);
}

void fy_sync_signal(fy_sync_t *s, int event, int64_t value) {
  pthread_mutex_lock(&s->mutex);
  if (s->events[event] < value) s->events[event] = value;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mutex);
}

static const char *event_name(const fy_sync_t *s, int event) {
  return s->stage && event >= 0 && event < s->stage->n_events && s->stage->events[event].name
             ? s->stage->events[event].name
             : "?";
}

/* Under the mutex: whether queue q's wait can never be met. */
static bool blocked_for_good(const fy_sync_t *s, fy_queue_t q) {
  fy_queue_t other = q == FY_QUEUE_COMPUTE ? FY_QUEUE_COPY : FY_QUEUE_COMPUTE;
  if (s->state[other] == FY_QSTATE_FINISHED) return true;
  return s->state[other] == FY_QSTATE_WAITING && s->events[s->wait_event[other]] < s->wait_value[other];
}

static fy_status_t deadlock(const fy_sync_t *s, fy_queue_t q, int event, int64_t value) {
  fy_queue_t other = q == FY_QUEUE_COMPUTE ? FY_QUEUE_COPY : FY_QUEUE_COMPUTE;
  char why[256];
  if (s->state[other] == FY_QSTATE_FINISHED)
    snprintf(why, sizeof why, "the %s queue has finished the stage", fy_queue_name(other));
  else
    snprintf(why, sizeof why, "the %s queue waits for %s >= %lld", fy_queue_name(other),
             event_name(s, s->wait_event[other]), (long long)s->wait_value[other]);
  return fy_status_make(FY_INTERNAL, "stage %s: deadlock: the %s queue waits for %s >= %lld (it is %lld) and %s",
                        s->stage ? s->stage->name : "?", fy_queue_name(q), event_name(s, event), (long long)value,
                        (long long)s->events[event], why);
}

static fy_status_t copy_of(const fy_sync_t *s) {
  return s->failure ? fy_status_make(fy_status_code(s->failure), "%s", fy_status_message(s->failure)) : NULL;
}

fy_status_t fy_sync_wait(fy_sync_t *s, fy_queue_t queue, int event, int64_t value, bool *out_cancelled) {
  *out_cancelled = false;
  fy_status_t err = NULL;
  pthread_mutex_lock(&s->mutex);
  if (s->events[event] < value) {
    s->state[queue] = FY_QSTATE_WAITING;
    s->wait_event[queue] = event;
    s->wait_value[queue] = value;
    pthread_cond_broadcast(&s->cond);
    while (s->events[event] < value) {
      if (s->failure) {
        err = copy_of(s);
        break;
      }
      if (queue == FY_QUEUE_COPY && atomic_load(&s->cancel)) {
        *out_cancelled = true;
        break;
      }
      if (blocked_for_good(s, queue)) {
        s->failure = deadlock(s, queue, event, value);
        err = copy_of(s);
        pthread_cond_broadcast(&s->cond);
        break;
      }
      pthread_cond_wait(&s->cond, &s->mutex);
    }
    s->state[queue] = FY_QSTATE_RUNNING;
  }
  pthread_mutex_unlock(&s->mutex);
  return err;
}

void fy_sync_fail(fy_sync_t *s, fy_status_t status) {
  pthread_mutex_lock(&s->mutex);
  if (!s->failure)
    s->failure = status;
  else
    fy_status_free(status);
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mutex);
}

fy_status_t fy_sync_failure(fy_sync_t *s) {
  pthread_mutex_lock(&s->mutex);
  fy_status_t st = copy_of(s);
  pthread_mutex_unlock(&s->mutex);
  return st;
}

bool fy_sync_sleep_until(fy_sync_t *s, const struct timespec *deadline) {
  pthread_mutex_lock(&s->mutex);
  while (!atomic_load(&s->cancel)) {
    if (pthread_cond_timedwait(&s->cond, &s->mutex, deadline) == ETIMEDOUT) break;
  }
  bool on_time = !atomic_load(&s->cancel);
  pthread_mutex_unlock(&s->mutex);
  return on_time;
}
