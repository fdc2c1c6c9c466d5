/* The team that runs a pass's phases (runtime/team.c): every task gets
 * exactly one published result, later phases read the lane that published,
 * a lane stopped inside a task is backed up instead of waited for, and its
 * late result never counts, in that run or the next. */
#define _GNU_SOURCE
#include "tap.h"
#include "team.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LANES 3
#define PHASES 3
#define TASKS 8

typedef struct run_args {
    long seed;
    int stall;                 /* 1: lane 1 stalls in its first task until told; 2: also publishes late */
} run_args;

typedef struct fixture {
    nr_team *team;
    long value[LANES][PHASES][TASKS]; /* what each lane computed */
    _Atomic int stalled_lane_inside, release_stalled, stalled_returned;
    _Atomic int stall_used;
    _Atomic int gate_timed_out;       /* set by lanes (CUnit's asserts belong to the main thread) */
    long finished_seed[512];          /* the runs' seeds, in the order their finish ran */
    _Atomic int nfinished;
    _Atomic int finished_early;       /* a finish saw a task of its run without its result */
} fixture;

static long expected(long seed, int phase, int index)
{
    long v = seed + index;
    for (int p = 0; p <= phase; p++) v = v * 31 + p;
    return v;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { 0, ms * 1000000L };
    nanosleep(&ts, NULL);
}

/* Waits (up to 5 s) for the flag; returns whether it came. */
static int await(_Atomic int *flag)
{
    for (int i = 0; i < 5000; i++) {
        if (atomic_load(flag)) return 1;
        sleep_ms(1);
    }
    return 0;
}

static int task(void *ctx, const nr_task *t)
{
    fixture *f = ctx;
    const run_args *a = t->args;
    long in = t->phase == 0 ? a->seed + t->index
                            : f->value[nr_team_winner(f->team, t->phase - 1, t->index)][t->phase - 1][t->index];
    if (a->stall && t->lane == 1 && !atomic_exchange(&f->stall_used, 1)) {
        f->value[1][t->phase][t->index] = -1; /* half-done work, never to be read */
        atomic_store(&f->stalled_lane_inside, 1);
        if (a->stall == 1) {
            for (int i = 0; i < 5000 && nr_task_wanted(t); i++) sleep_ms(1);
            atomic_store(&f->stalled_returned, 1);
            if (!nr_task_wanted(t)) return -1;
            /* Nobody redid it: finish, so that a broken team fails the test rather than hangs. */
        } else {
            (void)await(&f->release_stalled); /* until the run is over and the next has begun */
            f->value[1][t->phase][t->index] = -2;
            atomic_store(&f->stalled_returned, 1);
            return 0; /* claims it finished: too late to count */
        }
    } else if (a->stall && t->lane != 1 && !atomic_load(&f->stalled_lane_inside)) {
        /* The other lanes keep their first task until lane 1 is stuck in
         * one of its own (so some are left for it to claim). */
        if (!await(&f->stalled_lane_inside)) atomic_store(&f->gate_timed_out, 1);
    }
    f->value[t->lane][t->phase][t->index] = in * 31 + t->phase;
    return 0;
}

/* Records the run, and whether every task of its last phase had its value
 * by then (the finish must come after the whole run). */
static void finish(void *ctx, const nr_task *last)
{
    fixture *f = ctx;
    const run_args *a = last->args;
    int n = atomic_load(&f->nfinished);
    for (int j = 0; j < TASKS; j++)
        if (f->value[nr_team_winner(f->team, last->phase, j)][last->phase][j] != expected(a->seed, last->phase, j))
            atomic_store(&f->finished_early, 1);
    if (n < (int)(sizeof f->finished_seed / sizeof f->finished_seed[0])) f->finished_seed[n] = a->seed;
    atomic_store(&f->nfinished, n + 1);
}

/* Waits (up to 5 s) until n runs have finished; returns whether they did. */
static int await_finished(fixture *f, int n)
{
    for (int i = 0; i < 5000; i++) {
        if (atomic_load(&f->nfinished) >= n) return 1;
        sleep_ms(1);
    }
    return 0;
}

static void check_results(fixture *f, long seed)
{
    for (int p = 0; p < PHASES; p++)
        for (int j = 0; j < TASKS; j++) {
            int lane = nr_team_winner(f->team, p, j);
            CU_ASSERT(lane >= 0 && lane < LANES);
            if (f->value[lane][p][j] != expected(seed, p, j)) {
                CU_FAIL("a phase's result is not the task's value");
                fprintf(stderr, "# run %ld phase %d task %d lane %d: %ld, expected %ld\n", seed, p, j, lane,
                        f->value[lane][p][j], expected(seed, p, j));
                return;
            }
        }
}

static nr_team *new_team(fixture *f)
{
    memset(f, 0, sizeof *f);
    nr_error err = { { 0 } };
    f->team = nr_team_new(LANES, PHASES, TASKS, sizeof(run_args), task, finish, f, &err);
    if (!f->team) fprintf(stderr, "# %s\n", err.msg);
    return f->team;
}

static void test_every_task_once(void)
{
    fixture f;
    CU_ASSERT_PTR_NOT_NULL_FATAL(new_team(&f));
    for (long run = 1; run <= 200; run++) {
        run_args a = { run * 1000, 0 };
        nr_team_run(f.team, 1 + (int)(run % PHASES), TASKS, &a); /* runs of 1, 2 and 3 phases */
        for (int p = 0; p <= (int)(run % PHASES); p++)
            for (int j = 0; j < TASKS; j++) {
                int lane = nr_team_winner(f.team, p, j);
                CU_ASSERT_EQUAL(f.value[lane][p][j], expected(a.seed, p, j));
            }
    }
    nr_team_counts c;
    nr_team_counts_of(f.team, &c);
    CU_ASSERT(c.tasks >= 200 * TASKS);
    nr_team_free(f.team);
}

static void test_stalled_lane_backed_up(void)
{
    fixture f;
    CU_ASSERT_PTR_NOT_NULL_FATAL(new_team(&f));
    run_args warm = { 7, 0 };
    nr_team_run(f.team, PHASES, TASKS, &warm); /* the phases' durations, for the backup's threshold */
    run_args a = { 42, 1 };
    nr_team_run(f.team, PHASES, TASKS, &a);
    check_results(&f, 42);
    nr_team_counts c;
    nr_team_counts_of(f.team, &c);
    CU_ASSERT(c.backups_won >= 1);
    CU_ASSERT(await(&f.stalled_returned)); /* it saw its result unwanted and stopped */
    CU_ASSERT_FALSE(atomic_load(&f.gate_timed_out));
    nr_team_free(f.team);
}

static void test_late_result_ignored(void)
{
    fixture f;
    CU_ASSERT_PTR_NOT_NULL_FATAL(new_team(&f));
    run_args warm = { 7, 0 };
    nr_team_run(f.team, PHASES, TASKS, &warm);
    run_args a = { 42, 2 };
    nr_team_run(f.team, PHASES, TASKS, &a);
    /* The run returned while lane 1 is still stuck inside a task of it. */
    CU_ASSERT_FALSE(atomic_load(&f.stalled_returned));
    check_results(&f, 42);
    atomic_store(&f.release_stalled, 1);
    for (long run = 43; run < 60; run++) {
        run_args b = { run, 0 };
        nr_team_run(f.team, PHASES, TASKS, &b);
        check_results(&f, run);
    }
    CU_ASSERT(await(&f.stalled_returned));
    CU_ASSERT_FALSE(atomic_load(&f.gate_timed_out));
    nr_team_free(f.team);
}

static void test_runs_go_on_without_submitter(void)
{
    fixture f;
    CU_ASSERT_PTR_NOT_NULL_FATAL(new_team(&f));
    for (long seed = 1; seed <= 3; seed++) {
        run_args a = { seed * 100, 0 };
        CU_ASSERT_EQUAL(nr_team_submit(f.team, PHASES, TASKS, &a), seed);
    }
    /* The submitter takes no part: lanes 1 and 2 run all three, each
     * run's finisher starting the next. */
    CU_ASSERT(await_finished(&f, 3));
    nr_team_wait(f.team, 3);
    CU_ASSERT_EQUAL(atomic_load(&f.nfinished), 3);
    for (int k = 0; k < 3; k++) CU_ASSERT_EQUAL(f.finished_seed[k], (k + 1) * 100);
    CU_ASSERT_FALSE(atomic_load(&f.finished_early));
    nr_team_free(f.team);
}

static void test_more_runs_than_the_queue(void)
{
    fixture f;
    CU_ASSERT_PTR_NOT_NULL_FATAL(new_team(&f));
    int runs = 3 * NR_TEAM_QUEUE + 1;
    long last = 0;
    for (int k = 0; k < runs; k++) {
        run_args a = { 1000 + k, 0 };
        last = nr_team_submit(f.team, 1 + k % PHASES, TASKS, &a); /* waits while the queue is full */
        CU_ASSERT(last - atomic_load(&f.nfinished) <= NR_TEAM_QUEUE);
    }
    nr_team_wait(f.team, last);
    CU_ASSERT_EQUAL(last, runs);
    CU_ASSERT_EQUAL_FATAL(atomic_load(&f.nfinished), runs);
    for (int k = 0; k < runs; k++) CU_ASSERT_EQUAL(f.finished_seed[k], 1000 + k);
    CU_ASSERT_FALSE(atomic_load(&f.finished_early));
    CU_ASSERT_EQUAL(nr_team_submitted(f.team), runs);
    nr_team_free(f.team);
}

/* ---- pinning --------------------------------------------------------- */

#define MAX_PIN_LANES 64

typedef struct cpu_log {
    _Atomic int bad_cpu;                  /* a task ran on a CPU that is not its lane's */
    _Atomic int tasks[MAX_PIN_LANES];
    _Atomic int worker_ran;               /* a lane other than 0 has run a task */
    int cpu_of_lane[MAX_PIN_LANES];       /* the l-th CPU of the caller's set */
} cpu_log;

static int log_cpu(void *ctx, const nr_task *t)
{
    cpu_log *c = ctx;
    if (sched_getcpu() != c->cpu_of_lane[t->lane]) atomic_store(&c->bad_cpu, 1);
    atomic_fetch_add(&c->tasks[t->lane], 1);
    if (t->lane == 0) /* on a busy machine lane 0 could run every task alone: wait for a worker */
        (void)await(&c->worker_ran);
    else
        atomic_store(&c->worker_ran, 1);
    for (volatile int spin = 0; spin < 20000; spin++) {
    }
    return 0;
}

static int caller_cpus(cpu_set_t *set) { return pthread_getaffinity_np(pthread_self(), sizeof *set, set); }

static nr_team *cpu_team(cpu_log *c, int lanes)
{
    nr_error err = { { 0 } };
    nr_team *t = nr_team_new(lanes, 1, 4 * lanes, sizeof(int), log_cpu, NULL, c, &err);
    if (!t) fprintf(stderr, "# %s\n", err.msg);
    return t;
}

/* As many lanes as the caller may use CPUs: each lane's tasks run on a
 * CPU of its own, and the caller gets its CPUs back with the team gone. */
static void test_lanes_pinned_one_per_cpu(void)
{
    cpu_set_t before, during, after;
    CU_ASSERT_EQUAL_FATAL(caller_cpus(&before), 0);
    int n = CPU_COUNT(&before);
    if (n < 2 || n > MAX_PIN_LANES) {
        TAP_SKIP_UNLESS_CI("the process may use one CPU only, or more than this test's 64 lanes");
        return;
    }
    cpu_log c;
    memset(&c, 0, sizeof c);
    for (int cpu = 0, l = 0; cpu < CPU_SETSIZE && l < n; cpu++)
        if (CPU_ISSET(cpu, &before)) c.cpu_of_lane[l++] = cpu;
    nr_team *t = cpu_team(&c, n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_TRUE(nr_team_pinned(t));
    CU_ASSERT_EQUAL(caller_cpus(&during), 0);
    CU_ASSERT_EQUAL(CPU_COUNT(&during), 1);
    CU_ASSERT_TRUE(CPU_ISSET(c.cpu_of_lane[0], &during));
    int arg = 0;
    for (int run = 0; run < 100; run++) nr_team_run(t, 1, 4 * n, &arg);
    CU_ASSERT_FALSE(atomic_load(&c.bad_cpu));
    int lanes_used = 0;
    for (int l = 0; l < n; l++) lanes_used += atomic_load(&c.tasks[l]) > 0;
    CU_ASSERT(lanes_used >= 2); /* or the check above saw lane 0 only (log_cpu waits for a worker) */
    nr_team_free(t);
    CU_ASSERT_EQUAL(caller_cpus(&after), 0);
    CU_ASSERT_TRUE(CPU_EQUAL(&before, &after));
}

/* More lanes than CPUs, or OMP_PROC_BIND=false: the scheduler places them. */
static void test_lanes_not_pinned(void)
{
    cpu_set_t before, during;
    CU_ASSERT_EQUAL_FATAL(caller_cpus(&before), 0);
    int n = CPU_COUNT(&before);
    cpu_log c;
    memset(&c, 0, sizeof c);
    nr_team *t = cpu_team(&c, n + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_FALSE(nr_team_pinned(t));
    CU_ASSERT_EQUAL(caller_cpus(&during), 0);
    CU_ASSERT_TRUE(CPU_EQUAL(&before, &during));
    nr_team_free(t);
    if (n < 2) return;
    CU_ASSERT_EQUAL_FATAL(setenv("OMP_PROC_BIND", "FALSE", 1), 0);
    t = cpu_team(&c, n);
    unsetenv("OMP_PROC_BIND");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_FALSE(nr_team_pinned(t));
    CU_ASSERT_EQUAL(caller_cpus(&during), 0);
    CU_ASSERT_TRUE(CPU_EQUAL(&before, &during));
    nr_team_free(t);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    static CU_TestInfo team[] = {
        { "every task of every phase has one result, read from the lane that published it", test_every_task_once },
        { "a task held by a stalled lane is redone by another, and the run goes on", test_stalled_lane_backed_up },
        { "a run does not wait for a stalled lane, and its late result never counts", test_late_result_ignored },
        { "submitted runs run and finish in order while the submitter is away", test_runs_go_on_without_submitter },
        { "more runs than the queue holds: the submitter waits for room, every run finishes once",
          test_more_runs_than_the_queue },
        { "with a lane per CPU, each lane runs on its own CPU; the caller gets its CPUs back",
          test_lanes_pinned_one_per_cpu },
        { "more lanes than CPUs, or OMP_PROC_BIND=false: no lane is pinned", test_lanes_not_pinned },
        CU_TEST_INFO_NULL,
    };
    if (tap_add_suite("team", team)) return 1;
    return tap_run_all();
}
