/* A team of threads that runs a pass as phases of tasks without waiting
 * for a thread the operating system has descheduled.
 *
 * Each task of a phase is claimed by one thread (a lane), which writes its
 * result into buffers of its own lane. A thread that finds no task left to
 * claim, while another lane's task has run for more than twice as long as
 * tasks of that phase take, runs that task again into its own lane; the
 * first to finish publishes, and later phases read that lane's result
 * (nr_team_winner). Results do not depend on which lane computes them, so
 * a pass gives the same numbers whoever wins.
 *
 * A lane the system stopped in the middle of a task goes on with it when it
 * runs again, finds its result unwanted (nr_task_wanted, checked between
 * layers) and leaves the pass: the pass never waits for it. It can be
 * running when the next pass starts, so a task reads and writes only
 * memory that lives as long as the team, writes only its own lane's, and
 * brackets any use of the submitter's memory with nr_task_enter_caller and
 * nr_task_leave_caller (a run finishes only once those brackets are left). */
#ifndef NR_TEAM_H
#define NR_TEAM_H
#include "nr_error.h"
#include <stddef.h>

typedef struct nr_team nr_team;

typedef struct nr_task {
    nr_team *team;
    unsigned gen;         /* which run of the team */
    int phase, index;     /* the task: index of [0, tasks) in phase */
    int lane;             /* where this run of it writes */
    const void *args;     /* the run's arguments, as this lane copied them */
} nr_task;

/* Runs task t into lane t->lane's buffers; returns 0 when done, -1 when it
 * stopped early because nr_task_wanted said so. */
typedef int nr_task_fn(void *ctx, const nr_task *t);

/* Runs once per run, on the thread that published the run's last task,
 * before the run counts as finished: the work that follows a pass (its
 * optimizer step, say) is done by a thread that is running, not by a
 * submitter the system may have descheduled. `last` is that task; its
 * args are the run's. No task of the run uses the submitter's memory by
 * then. */
typedef void nr_finish_fn(void *ctx, const nr_task *last);

/* A team of `lanes` lanes: the submitter's thread (lane 0, while it waits
 * in nr_team_wait) and lanes - 1 threads of its own. Runs have up to
 * max_phases phases of up to max_tasks tasks and arguments of args_size
 * bytes; finish may be NULL. With as many lanes as the process may use
 * CPUs, each lane, the submitter's thread included, is kept on a CPU of its
 * own until the team is freed (nr_team_pinned; not with
 * OMP_PROC_BIND=false). The thread that made the team frees it, which
 * abandons runs not yet finished and gives the thread back its CPUs. */
nr_team *nr_team_new(int lanes, int max_phases, int max_tasks, size_t args_size, nr_task_fn *fn,
                     nr_finish_fn *finish, void *ctx, nr_error *err);
void nr_team_free(nr_team *team);
/* 1 when the team's lanes are each kept on a CPU of their own: threads
 * they create (an OpenMP region's) are then kept on that one CPU too. */
int nr_team_pinned(const nr_team *team);

/* Runs are taken in the order they are submitted. Up to NR_TEAM_QUEUE of
 * them may wait or run while the submitter goes on: the lane that
 * finishes one starts the next, so the team keeps working while the
 * submitter (lane 0) is busy elsewhere or descheduled. */
#define NR_TEAM_QUEUE 16

/* Submits a run of phases 0 .. phases - 1 (at least one) of `tasks` tasks
 * (at least one) each, one phase after the other, and returns its number
 * (1, 2, ...). Waits, taking part as lane 0, while NR_TEAM_QUEUE runs are
 * unfinished. Memory the run's tasks read through nr_task_enter_caller
 * must stay as it is until the run has finished. */
long nr_team_submit(nr_team *team, int phases, int tasks, const void *args);
/* Takes part as lane 0 until `runs` runs have finished (their finish
 * included). Only the submitter's thread calls this. */
void nr_team_wait(nr_team *team, long runs);
/* Waits as nr_team_wait until the next run has a place in the queue, and
 * returns how many runs were submitted before it: a submitter that keeps
 * memory of its own per run in NR_TEAM_QUEUE places may reuse place
 * (this % NR_TEAM_QUEUE) for the next. */
long nr_team_wait_for_room(nr_team *team);
/* Runs submitted so far. */
long nr_team_submitted(const nr_team *team);
/* Submits a run and waits for it (and so for every run before it). */
void nr_team_run(nr_team *team, int phases, int tasks, const void *args);

/* The lane that published task (phase, index) of the current run (0 while
 * none has: only a run's stale lane, whose result is unwanted, asks then). */
int nr_team_winner(const nr_team *team, int phase, int index);

/* What the team has run so far: tasks claimed, tasks backed up, and
 * backups whose result was the one published. */
typedef struct nr_team_counts {
    long tasks, backups, backups_won;
} nr_team_counts;
void nr_team_counts_of(const nr_team *team, nr_team_counts *c);

int nr_task_wanted(const nr_task *t);
/* 1: the run is still on and the caller's memory may be used until
 * nr_task_leave_caller; 0: it is not (nothing to leave). */
int nr_task_enter_caller(const nr_task *t);
void nr_task_leave_caller(const nr_task *t);
#endif
