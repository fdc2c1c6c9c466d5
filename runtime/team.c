#define _GNU_SOURCE
#include "team.h"
#include <pthread.h>
#include <sched.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* A task's claim word: the run's generation, shifted, and FREE or CLAIMED;
 * its result word: the generation, shifted, and the publishing lane or
 * NO_LANE. Every compare-and-swap names the generation, so a lane still
 * busy with an earlier run can neither claim nor publish in this one. */
enum { FREE = 0, CLAIMED = 1, NO_LANE = 0xff };

/* A lane backs up another's task once the task has run for twice as long as
 * the quickest task of its phase (in this run, else in the run before),
 * plus this: a task that is merely a little slower than the others is left
 * to finish. (The quickest, because a task whose thread was descheduled
 * takes any time.) */
#define BACKUP_SLACK_NS 20000
/* How long a thread spins for the next run before it sleeps. Short: when
 * another program shares the cores, a thread spinning for a run that is
 * slow to come burns the CPU time netc gets (W5 at batch 32 on 2 threads
 * with one core busy: 23-28k images/s with 2 ms of spinning, 31-32k with
 * 50 us; no change on a quiet machine; bench/RESULTS.md). Spinning on while
 * a run is being finished or waits in the queue measured worse with a core
 * busy: 200 us lost 3-8%, yielding until the run came 0-10%. */
#define IDLE_SPIN_NS 50000
/* How long a lane with nothing to claim or back up spins before it also
 * yields its core between checks. */
#define WAIT_SPIN_NS 200000

typedef struct run_head {
    int phases, tasks;
} run_head;

typedef struct worker_arg {
    nr_team *team;
    int lane;
} worker_arg;

struct nr_team {
    int lanes, max_phases, max_tasks;
    size_t args_size, words;        /* words: 8-byte words of run_head + args */
    nr_task_fn *fn;
    nr_finish_fn *finish;
    void *ctx;
    uint64_t *ring;                 /* [NR_TEAM_QUEUE * words]: submitted runs, run r at (r - 1) % NR_TEAM_QUEUE */
    _Atomic long submitted, launched, finished; /* runs so far; run r has generation r */
    unsigned caller_seen;           /* the last run lane 0 took part in */
    _Atomic unsigned seq;           /* 2 gen: run gen is published; odd: being written */
    _Atomic uint64_t *args;         /* [words]: run_head, then the arguments */
    uint64_t *snap;                 /* [lanes * words]: each lane's copy */
    _Atomic unsigned ended;         /* the last run whose tasks may no longer use the submitter's memory */
    _Atomic uint64_t *claim, *win;  /* [max_phases * max_tasks] */
    _Atomic unsigned *backup;       /* the run in which the task has a backup */
    _Atomic int64_t *start;         /* when the task was claimed */
    _Atomic int *done;              /* [max_phases]: tasks published */
    _Atomic int64_t *fastest;       /* [2 * max_phases]: per run parity, the phase's quickest published task */
    _Atomic unsigned *in_caller;    /* [lanes]: the run whose submitter's memory the lane uses */
    _Atomic int quit, sleepers;
    _Atomic long tasks_run, backups, backups_won;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_t *threads;
    worker_arg *wargs;
    int pinned;                     /* lane l runs on cpu[l] only */
    int *cpu;                       /* [lanes] */
    cpu_set_t caller_mask;          /* the submitter's CPUs before it was pinned */
    int started;                    /* threads created: lanes 1 .. started */
    int sync_ready;                 /* mu and wake initialized */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static size_t slot(const nr_team *t, int phase, int index) { return (size_t)phase * t->max_tasks + index; }
static uint64_t claim_word(unsigned gen, int state) { return (uint64_t)gen << 2 | (uint64_t)state; }
static uint64_t win_word(unsigned gen, int lane) { return (uint64_t)gen << 8 | (uint64_t)lane; }
static const run_head *head_of(const nr_team *t, int lane) { return (const run_head *)(t->snap + (size_t)lane * t->words); }
static const void *args_of(const nr_team *t, int lane) { return (const char *)head_of(t, lane) + sizeof(run_head); }

/* The generation of the published run if it is newer than `after`, else 0. */
static unsigned newer_run(unsigned seq, unsigned after) { return (seq & 1) || seq / 2 <= after ? 0 : seq / 2; }

/* The run's head and arguments into lane's copy, as one consistent
 * snapshot (a sequence lock); returns the run's generation, or 0 when no
 * run newer than `after` is published. */
static unsigned copy_run(nr_team *t, int lane, unsigned after)
{
    uint64_t *dst = t->snap + (size_t)lane * t->words;
    for (;;) {
        unsigned s1 = atomic_load_explicit(&t->seq, memory_order_acquire);
        if (!newer_run(s1, after)) return 0;
        for (size_t w = 0; w < t->words; w++) dst[w] = atomic_load_explicit(&t->args[w], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&t->seq, memory_order_relaxed) == s1) return s1 / 2;
    }
}

static int run_is(const nr_team *t, unsigned gen) { return atomic_load(&t->seq) == 2 * gen; }

int nr_task_wanted(const nr_task *task)
{
    const nr_team *t = task->team;
    return atomic_load_explicit(&t->win[slot(t, task->phase, task->index)], memory_order_relaxed) ==
               win_word(task->gen, NO_LANE) &&
           run_is(t, task->gen);
}

int nr_task_enter_caller(const nr_task *task)
{
    nr_team *t = task->team;
    atomic_store(&t->in_caller[task->lane], task->gen);
    if (atomic_load(&t->ended) >= task->gen || !run_is(t, task->gen)) {
        atomic_store(&t->in_caller[task->lane], 0);
        return 0;
    }
    return 1;
}

void nr_task_leave_caller(const nr_task *task) { atomic_store(&task->team->in_caller[task->lane], 0); }

int nr_team_winner(const nr_team *t, int phase, int index)
{
    int lane = (int)(atomic_load_explicit(&t->win[slot(t, phase, index)], memory_order_acquire) & 0xff);
    return lane < t->lanes ? lane : 0;
}

/* The first free task of the phase, now claimed by the caller; -1: none. */
static int claim_free(nr_team *t, int phase, unsigned gen, int tasks)
{
    for (int j = 0; j < tasks; j++) {
        size_t s = slot(t, phase, j);
        uint64_t expect = claim_word(gen, FREE);
        if (atomic_load_explicit(&t->claim[s], memory_order_relaxed) != expect) continue;
        if (t->lanes > 1) atomic_store_explicit(&t->start[s], now_ns(), memory_order_relaxed);
        if (atomic_compare_exchange_strong(&t->claim[s], &expect, claim_word(gen, CLAIMED))) return j;
    }
    return -1;
}

/* The quickest published task of the phase in run gen (0: none yet). */
static int64_t quickest(const nr_team *t, unsigned gen, int phase)
{
    return atomic_load_explicit(&t->fastest[2 * phase + (gen & 1)], memory_order_relaxed);
}

static void note_duration(nr_team *t, unsigned gen, int phase, int64_t ns)
{
    _Atomic int64_t *f = &t->fastest[2 * phase + (gen & 1)];
    int64_t had = atomic_load_explicit(f, memory_order_relaxed);
    while ((had == 0 || ns < had) && !atomic_compare_exchange_weak(f, &had, ns)) {
    }
}

/* A claimed task without a result that has run for too long, and has no
 * backup yet, now backed up by the caller; -1: none. */
static int claim_backup(nr_team *t, int phase, unsigned gen, int tasks)
{
    int64_t quick = quickest(t, gen, phase);
    if (!quick) quick = quickest(t, gen - 1, phase);
    if (!quick) return -1; /* no task of the phase has finished yet: nothing to compare with */
    int64_t now = now_ns(), limit = 2 * quick + BACKUP_SLACK_NS;
    for (int j = 0; j < tasks; j++) {
        size_t s = slot(t, phase, j);
        if (atomic_load(&t->claim[s]) != claim_word(gen, CLAIMED) ||
            atomic_load(&t->win[s]) != win_word(gen, NO_LANE) ||
            now - atomic_load_explicit(&t->start[s], memory_order_relaxed) <= limit)
            continue;
        unsigned had = atomic_load(&t->backup[s]);
        if (had != gen && atomic_compare_exchange_strong(&t->backup[s], &had, gen)) return j;
    }
    return -1;
}

static void wake_sleepers(nr_team *t)
{
    if (atomic_load(&t->sleepers) > 0) {
        pthread_mutex_lock(&t->mu);
        pthread_cond_broadcast(&t->wake);
        pthread_mutex_unlock(&t->mu);
    }
}

/* Run gen, from its place in the ring, for the lanes to copy. */
static void publish(nr_team *t, unsigned gen)
{
    const uint64_t *src = t->ring + (size_t)((gen - 1) % NR_TEAM_QUEUE) * t->words;
    run_head h;
    memcpy(&h, src, sizeof h);
    for (int p = 0; p < h.phases; p++) {
        for (int j = 0; j < h.tasks; j++) {
            atomic_store(&t->claim[slot(t, p, j)], claim_word(gen, FREE));
            atomic_store(&t->win[slot(t, p, j)], win_word(gen, NO_LANE));
        }
        atomic_store(&t->done[p], 0);
        atomic_store(&t->fastest[2 * p + (gen & 1)], 0);
    }
    atomic_store(&t->seq, 2 * gen - 1);
    for (size_t w = 0; w < t->words; w++) atomic_store_explicit(&t->args[w], src[w], memory_order_relaxed);
    atomic_store(&t->seq, 2 * gen);
    wake_sleepers(t);
}

/* Publishes the next submitted run when none is under way. Both the
 * submitter (after counting a run in) and a run's finisher (after counting
 * it out) call this, so whichever comes second launches; the
 * compare-and-swap makes sure only one does. */
static void try_launch(nr_team *t)
{
    long f = atomic_load(&t->finished), expect = f;
    if (atomic_load(&t->submitted) > f && atomic_compare_exchange_strong(&t->launched, &expect, f + 1))
        publish(t, (unsigned)(f + 1));
}

/* On the lane that published the run's last task: no task of the run uses
 * the submitter's memory any more, the finish runs, and the next run
 * starts without waiting for the submitter. */
static void finish_run(nr_team *t, const nr_task *last)
{
    atomic_store(&t->ended, last->gen);
    for (int l = 0; l < t->lanes; l++)
        while (atomic_load(&t->in_caller[l]) == last->gen) sched_yield();
    if (t->finish) t->finish(t->ctx, last);
    atomic_store(&t->finished, (long)last->gen);
    wake_sleepers(t);
    try_launch(t);
}

static void run_task(nr_team *t, int lane, unsigned gen, int phase, int index, int backup)
{
    atomic_fetch_add_explicit(backup ? &t->backups : &t->tasks_run, 1, memory_order_relaxed);
    nr_task task = { t, gen, phase, index, lane, args_of(t, lane) };
    int64_t began = t->lanes > 1 ? now_ns() : 0; /* one lane: nobody to back it up */
    if (t->fn(t->ctx, &task)) return;
    size_t s = slot(t, phase, index);
    uint64_t expect = win_word(gen, NO_LANE);
    if (atomic_compare_exchange_strong(&t->win[s], &expect, win_word(gen, lane))) {
        if (t->lanes > 1) note_duration(t, gen, phase, now_ns() - began);
        if (backup) atomic_fetch_add_explicit(&t->backups_won, 1, memory_order_relaxed);
        const run_head *h = head_of(t, lane);
        int had = atomic_fetch_add_explicit(&t->done[phase], 1, memory_order_acq_rel);
        if (phase == h->phases - 1 && had == h->tasks - 1) finish_run(t, &task);
    }
}

/* Lane's part in run gen: phase after phase, claim a task, else back one
 * up, else wait; leaves once the last phase is complete or a newer run has
 * begun (this lane was then stopped long enough to miss the end of this). */
static void run_lane(nr_team *t, int lane, unsigned gen)
{
    const run_head *h = head_of(t, lane);
    for (int p = 0; p < h->phases; p++) {
        int64_t idle_since = 0;
        while (atomic_load_explicit(&t->done[p], memory_order_acquire) < h->tasks) {
            if (!run_is(t, gen)) return;
            int j = claim_free(t, p, gen, h->tasks), backup = j < 0;
            if (backup) j = claim_backup(t, p, gen, h->tasks);
            if (j >= 0) {
                run_task(t, lane, gen, p, j, backup);
                idle_since = 0;
                continue;
            }
            int64_t now = now_ns();
            if (!idle_since) idle_since = now;
            if (now - idle_since > WAIT_SPIN_NS) sched_yield();
            else for (int k = 0; k < 32; k++) cpu_relax();
        }
    }
}

/* The next run after `after`, copied into the lane; 0 when the team quits
 * or once `until` runs have finished (workers: LONG_MAX, never). */
static unsigned wait_for_run(nr_team *t, int lane, unsigned after, long until)
{
    int64_t began = now_ns();
    for (;;) {
        if (atomic_load(&t->quit) || atomic_load(&t->finished) >= until) return 0;
        unsigned gen = copy_run(t, lane, after);
        if (gen) return gen;
        if (now_ns() - began < IDLE_SPIN_NS) {
            for (int k = 0; k < 64; k++) cpu_relax();
            continue;
        }
        pthread_mutex_lock(&t->mu);
        atomic_fetch_add(&t->sleepers, 1);
        while (!atomic_load(&t->quit) && !newer_run(atomic_load(&t->seq), after) && atomic_load(&t->finished) < until)
            pthread_cond_wait(&t->wake, &t->mu);
        atomic_fetch_sub(&t->sleepers, 1);
        pthread_mutex_unlock(&t->mu);
        began = now_ns();
    }
}

static void *worker(void *arg)
{
    const worker_arg *w = arg;
    unsigned gen = 0;
    while ((gen = wait_for_run(w->team, w->lane, gen, LONG_MAX)) != 0) run_lane(w->team, w->lane, gen);
    return NULL;
}

void nr_team_wait(nr_team *t, long runs)
{
    unsigned gen;
    while ((gen = wait_for_run(t, 0, t->caller_seen, runs)) != 0) {
        t->caller_seen = gen;
        run_lane(t, 0, gen);
    }
}

long nr_team_wait_for_room(nr_team *t)
{
    long k = atomic_load(&t->submitted);
    nr_team_wait(t, k - NR_TEAM_QUEUE + 1); /* the run that last had its place */
    return k;
}

long nr_team_submit(nr_team *t, int phases, int tasks, const void *args)
{
    long k = nr_team_wait_for_room(t);
    uint64_t *dst = t->ring + (size_t)(k % NR_TEAM_QUEUE) * t->words;
    run_head h = { phases, tasks };
    memcpy(dst, &h, sizeof h);
    memcpy((char *)dst + sizeof h, args, t->args_size);
    atomic_store(&t->submitted, k + 1);
    try_launch(t);
    return k + 1;
}

long nr_team_submitted(const nr_team *t) { return atomic_load(&t->submitted); }

void nr_team_run(nr_team *t, int phases, int tasks, const void *args)
{
    nr_team_wait(t, nr_team_submit(t, phases, tasks, args));
}

/* With as many lanes as the process may use CPUs, each lane is kept on a
 * CPU of its own. Otherwise, when another program keeps a core busy, the
 * scheduler can put both lanes of a 2-core machine on one core and the
 * other program alone on the other, and nothing moves them apart: two
 * tasks against one is as balanced as it gets. Kept apart, the lanes get
 * a core and a half instead of one (W5 at batch 32 on 2 threads with one
 * core busy: 44-47k images/s against 38-41k unpinned; bench/RESULTS.md).
 * With fewer lanes than CPUs the scheduler has idle CPUs to spread them
 * over, and pinning would only risk putting two programs on the same few
 * CPUs. OMP_PROC_BIND=false, OpenMP's way to say "do not bind threads",
 * turns it off. */
static int wants_pinning(nr_team *t)
{
    const char *bind = getenv("OMP_PROC_BIND");
    if (t->lanes < 2 || (bind && !strcasecmp(bind, "false"))) return 0;
    if (pthread_getaffinity_np(pthread_self(), sizeof t->caller_mask, &t->caller_mask)) return 0;
    if (CPU_COUNT(&t->caller_mask) != t->lanes) return 0;
    for (int c = 0, l = 0; c < CPU_SETSIZE && l < t->lanes; c++)
        if (CPU_ISSET(c, &t->caller_mask)) t->cpu[l++] = c;
    return 1;
}

static int pin_thread(pthread_t thread, int cpu)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return pthread_setaffinity_np(thread, sizeof one, &one);
}

/* Lane 0 is the submitter's own thread: pinned while the team lives. A
 * worker that cannot be pinned runs where the scheduler puts it, as
 * without pinning: only the placement is lost. */
static void pin_lanes(nr_team *t)
{
    if (!wants_pinning(t) || pin_thread(pthread_self(), t->cpu[0])) return;
    t->pinned = 1;
    for (int l = 1; l <= t->started; l++) (void)pin_thread(t->threads[l], t->cpu[l]);
}

int nr_team_pinned(const nr_team *t) { return t->pinned; }

static void *zalloc_n(size_t n, size_t each) { return nr_zalloc((n ? n : 1) * each); }

nr_team *nr_team_new(int lanes, int max_phases, int max_tasks, size_t args_size, nr_task_fn *fn,
                     nr_finish_fn *finish, void *ctx, nr_error *err)
{
    nr_team *t = calloc(1, sizeof *t);
    if (!t) {
        nr_fail(err, "out of memory for a team of %d threads", lanes);
        return NULL;
    }
    t->lanes = lanes > 0 ? lanes : 1;
    t->max_phases = max_phases;
    t->max_tasks = max_tasks;
    t->args_size = args_size;
    t->words = (sizeof(run_head) + args_size + 7) / 8;
    t->fn = fn;
    t->finish = finish;
    t->ctx = ctx;
    size_t slots = (size_t)max_phases * max_tasks;
    t->args = zalloc_n(t->words, sizeof *t->args);
    t->ring = zalloc_n(NR_TEAM_QUEUE * t->words, sizeof *t->ring);
    t->snap = zalloc_n((size_t)t->lanes * t->words, sizeof *t->snap);
    t->claim = zalloc_n(slots, sizeof *t->claim);
    t->win = zalloc_n(slots, sizeof *t->win);
    t->backup = zalloc_n(slots, sizeof *t->backup);
    t->start = zalloc_n(slots, sizeof *t->start);
    t->done = zalloc_n((size_t)max_phases, sizeof *t->done);
    t->fastest = zalloc_n(2 * (size_t)max_phases, sizeof *t->fastest);
    t->in_caller = zalloc_n((size_t)t->lanes, sizeof *t->in_caller);
    t->threads = zalloc_n((size_t)t->lanes, sizeof *t->threads);
    t->wargs = zalloc_n((size_t)t->lanes, sizeof *t->wargs);
    t->cpu = zalloc_n((size_t)t->lanes, sizeof *t->cpu);
    if (!t->args || !t->ring || !t->snap || !t->claim || !t->win || !t->backup || !t->start || !t->done || !t->fastest ||
        !t->in_caller || !t->threads || !t->wargs || !t->cpu) {
        nr_fail(err, "out of memory for a team of %d threads", t->lanes);
        nr_team_free(t);
        return NULL;
    }
    if (pthread_mutex_init(&t->mu, NULL)) {
        nr_fail(err, "cannot set up a team of %d threads", t->lanes);
        nr_team_free(t);
        return NULL;
    }
    if (pthread_cond_init(&t->wake, NULL)) {
        pthread_mutex_destroy(&t->mu);
        nr_fail(err, "cannot set up a team of %d threads", t->lanes);
        nr_team_free(t);
        return NULL;
    }
    t->sync_ready = 1;
    for (int l = 1; l < t->lanes; l++) {
        t->wargs[l] = (worker_arg){ t, l };
        if (pthread_create(&t->threads[l], NULL, worker, &t->wargs[l])) {
            nr_fail(err, "cannot start thread %d of %d", l, t->lanes);
            nr_team_free(t);
            return NULL;
        }
        t->started++;
    }
    pin_lanes(t);
    return t;
}

void nr_team_counts_of(const nr_team *t, nr_team_counts *c)
{
    c->tasks = atomic_load(&t->tasks_run);
    c->backups = atomic_load(&t->backups);
    c->backups_won = atomic_load(&t->backups_won);
}

void nr_team_free(nr_team *t)
{
    if (!t) return;
    if (t->sync_ready) {
        atomic_store(&t->quit, 1);
        pthread_mutex_lock(&t->mu);
        pthread_cond_broadcast(&t->wake);
        pthread_mutex_unlock(&t->mu);
        for (int l = 1; l <= t->started; l++) pthread_join(t->threads[l], NULL);
        pthread_cond_destroy(&t->wake);
        pthread_mutex_destroy(&t->mu);
    }
    if (t->pinned) (void)pthread_setaffinity_np(pthread_self(), sizeof t->caller_mask, &t->caller_mask);
    nr_free(t->cpu);
    nr_free(t->args);
    nr_free(t->ring);
    nr_free(t->snap);
    nr_free(t->claim);
    nr_free(t->win);
    nr_free(t->backup);
    nr_free(t->start);
    nr_free(t->done);
    nr_free(t->fastest);
    nr_free(t->in_caller);
    nr_free(t->threads);
    nr_free(t->wargs);
    free(t);
}
