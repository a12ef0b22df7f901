/* What the two queues' threads share, under one mutex and one condition
 * variable: the current stage's events as timeline counters, each queue's
 * state, the copy thread's job, cancellation and the first failure.
 *
 * Events follow schedule.h: SIGNAL e in step s raises e to s + 1; WAIT e
 * with step_delta d in step s waits until e >= s + 1 + d. A wait that can
 * never be met is reported instead of hanging: when the other queue has
 * finished its steps, or waits itself on an event not yet signalled, that is
 * a deadlock (FY_INTERNAL naming both). The compute queue is IDLE between
 * calls (it will run more steps), so the copy queue's run-ahead waits. */
#ifndef FERRY_RUNTIME_SYNC_H
#define FERRY_RUNTIME_SYNC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "ferry/status.h"
#include "schedules/schedule.h"

typedef enum fy_queue_state {
  FY_QSTATE_RUNNING,
  FY_QSTATE_WAITING,
  FY_QSTATE_IDLE,     /* between steps; more will come */
  FY_QSTATE_FINISHED, /* no more commands in this stage */
} fy_queue_state_t;

typedef struct fy_sync {
  pthread_mutex_t mutex;
  pthread_cond_t cond; /* on CLOCK_MONOTONIC */
  /* The current stage. */
  const fy_stage_schedule_t *stage;
  int64_t *events;
  int cap_events;
  fy_queue_state_t state[FY_QUEUE_COUNT];
  int wait_event[FY_QUEUE_COUNT];
  int64_t wait_value[FY_QUEUE_COUNT];
  /* The copy thread's job: steps of one stage's copy list. */
  bool job_pending, job_running, quit;
  int job_stage;
  int64_t job_steps;
  atomic_bool cancel;
  fy_status_t failure; /* owned; the first of the stage */
} fy_sync_t;

fy_status_t fy_sync_init(fy_sync_t *s, int max_events);
void fy_sync_destroy(fy_sync_t *s);

/* Starts a stage with no job running: events to 0, the copy queue FINISHED
 * until a job starts, compute IDLE, cancellation and failure cleared. */
void fy_sync_begin_stage(fy_sync_t *s, const fy_stage_schedule_t *stage);
/* Gives the copy thread `steps` steps of schedule stage index `stage`. */
void fy_sync_start_job(fy_sync_t *s, int stage, int64_t steps);
/* Copy thread: blocks for the next job; false when told to quit. */
bool fy_sync_take_job(fy_sync_t *s, int *out_stage, int64_t *out_steps);
/* Copy thread: the job is over (status NULL, or its failure: taken). */
void fy_sync_end_job(fy_sync_t *s, fy_status_t status);
/* Blocks until no job is pending or running. */
void fy_sync_drain(fy_sync_t *s);
/* Cancels the job (its waits and sleeps return at once) and drains. */
void fy_sync_cancel(fy_sync_t *s);
/* Tells the copy thread to exit. */
void fy_sync_quit(fy_sync_t *s);
bool fy_sync_cancelled(fy_sync_t *s);

void fy_sync_set_state(fy_sync_t *s, fy_queue_t queue, fy_queue_state_t state);
void fy_sync_signal(fy_sync_t *s, int event, int64_t value);
/* Waits until event >= value. *out_cancelled (copy queue only) when the job
 * was cancelled; an error for the stage's failure or a deadlock. */
fy_status_t fy_sync_wait(fy_sync_t *s, fy_queue_t queue, int event, int64_t value, bool *out_cancelled);
/* Records a failure (taken; the first one wins) and wakes everyone. */
void fy_sync_fail(fy_sync_t *s, fy_status_t status);
/* A copy of the stage's failure, or NULL. */
fy_status_t fy_sync_failure(fy_sync_t *s);
/* Sleeps until the CLOCK_MONOTONIC deadline; false if cancelled first. */
bool fy_sync_sleep_until(fy_sync_t *s, const struct timespec *deadline);

void fy_sync_lock(fy_sync_t *s);
void fy_sync_unlock(fy_sync_t *s);

#endif
