/* test_cancel.c - cy_cancel: cancellation tokens and cy_park_cancel, the
 * *_ctx waits of every primitive, and fires racing wakes from many threads
 * (waiter nodes live on the waiters' stacks: ASan's use-after-return check
 * watches them). */
#include "cytest.h"
#include "cywait.h"

#include <string.h>

/* cy_cancel.c: cancellable waiters registered right now (white-box). */
extern _Atomic uint32_t cy_xwaiters;

static cy_status park_cancel_loop(_Atomic uint32_t *addr, uint32_t expected, int64_t deadline, cy_cancel *c)
{
    cy_status r;
    while ((r = cy_park_cancel(addr, expected, deadline, c)) == CY_INTR) {
    }
    return r;
}

static void test_token_basics(void)
{
    cy_cancel c;
    cy_cancel_init(&c);
    CHECK(!cy_cancel_fired(&c));
    CHECK(!cy_cancel_fired(NULL));
    cy_cancel_fire(&c);
    CHECK(cy_cancel_fired(&c));
    cy_cancel_fire(&c); /* idempotent */
    CHECK(cy_cancel_fired(&c));
    CHECK(c.nodes == NULL);
    CHECK_EQ(atomic_load(&cy_xwaiters), 0);
}

static void test_park_cancel_at_once(void)
{
    cy_cancel c;
    _Atomic uint32_t w = 0;
    cy_cancel_init(&c);
    CHECK_EQ(cy_park_cancel(&w, 1, cytest_deadline(5), &c), CY_OK); /* word differs */
    CHECK_EQ(cy_park_cancel(&w, 1, cytest_deadline(5), NULL), CY_OK);
    CHECK_EQ(cy_park_cancel(&w, 0, cy_now_ns() - 1, &c), CY_TIMEOUT);
    cy_cancel_fire(&c);
    CHECK_EQ(cy_park_cancel(&w, 0, cytest_deadline(5), &c), CY_CANCELLED);
    CHECK_EQ(cy_park_cancel(&w, 1, cytest_deadline(5), &c), CY_CANCELLED); /* the fire wins */
    CHECK_EQ(atomic_load(&cy_xwaiters), 0);
    CHECK(c.nodes == NULL);
}

static void test_park_cancel_timeout(void)
{
    cy_cancel c;
    _Atomic uint32_t w = 0;
    cy_cancel_init(&c);
    int64_t dl = cytest_deadline(0.05);
    CHECK_EQ(park_cancel_loop(&w, 0, dl, &c), CY_TIMEOUT);
    CHECK(cy_now_ns() >= dl);
    CHECK_EQ(atomic_load(&cy_xwaiters), 0);
}

/* ------------------------------------------------ fire / wake a sleeper */

struct sleeper {
    _Atomic uint32_t word;
    cy_cancel c;
    cy_status result;
    int use_token;
};

static void *sleeper_main(void *p)
{
    struct sleeper *s = p;
    int64_t dl = cytest_deadline(10);
    if (s->use_token)
        s->result = park_cancel_loop(&s->word, 0, dl, &s->c);
    else
        s->result = cyw_park_until_changed(&s->word, 0, dl);
    return NULL;
}

static void test_fire_and_wake_sleepers(void)
{
    for (long round = 0; round < cytest_n(300); round++) {
        struct sleeper a, b;
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        cy_cancel_init(&a.c);
        a.use_token = 1;
        b.use_token = 0; /* a plain waiter on the same word */
        b.result = a.result = CY_INTR;
        cytest_thread ta, tb;
        int fire = round % 2 == 0;
        cytest_start(&ta, sleeper_main, &a);
        if (!fire)
            cytest_start(&tb, sleeper_main, &b);
        int64_t end = cytest_now_ns() + 10000000000LL;
        while (atomic_load(&cy_xwaiters) == 0 && cytest_now_ns() < end)
            sched_yield();
        if (round % 3 == 0)
            cytest_sleep_us(200);
        if (fire) {
            cy_cancel_fire(&a.c);
            cytest_join(&ta);
            CHECK_EQ(a.result, CY_CANCELLED);
        } else {
            /* one wake for n = 1: the plain waiter and the cancellable one
             * both come back (cy_wake visits every cancellable waiter) */
            atomic_store(&a.word, 1);
            cy_wake(&a.word, 1);
            atomic_store(&b.word, 1);
            cy_wake(&b.word, 1);
            cytest_join(&ta);
            cytest_join(&tb);
            CHECK_EQ(a.result, CY_OK);
            CHECK_EQ(b.result, CY_OK);
        }
        CHECK_EQ(atomic_load(&cy_xwaiters), 0);
        CHECK(a.c.nodes == NULL);
    }
}

/* ------------------------------------------------ every primitive's _ctx */

enum { P_WG, P_SEMA, P_EVENT, P_WSEM, P_BARRIER, P_N };
static const char *const pname[P_N] = {"waitgroup", "sema", "event", "wsem", "barrier"};

struct prim {
    int kind;
    cy_cancel c;
    cy_waitgroup wg;
    cy_sema s;
    cy_event e;
    cy_wsem ws;
    cy_wsem_waiter node;
    cy_barrier b;
    cy_barrier_ticket bt;
    _Atomic int started;
    int result;
};

static void *prim_waiter(void *p)
{
    struct prim *x = p;
    int64_t dl = cytest_deadline(10);
    int r;
    atomic_store(&x->started, 1);
    switch (x->kind) {
    case P_WG:
        while ((r = cy_wg_wait_ctx(&x->wg, dl, &x->c)) == CY_INTR) {
        }
        break;
    case P_SEMA:
        while ((r = cy_sema_acquire_ctx(&x->s, dl, &x->c)) == CY_INTR) {
        }
        break;
    case P_EVENT:
        while ((r = cy_event_wait_ctx(&x->e, dl, &x->c)) == CY_INTR) {
        }
        break;
    case P_WSEM:
        while ((r = cy_wsem_wait_ctx(&x->node, dl, &x->c)) == CY_INTR) {
        }
        break;
    default:
        while ((r = cy_barrier_await_ctx(&x->b, &x->bt, dl, &x->c)) == CY_INTR) {
        }
    }
    x->result = r;
    return NULL;
}

static void test_primitives_ctx(void)
{
    for (int kind = 0; kind < P_N; kind++) {
        for (int round = 0; round < 20; round++) {
            struct prim x;
            memset(&x, 0, sizeof x);
            x.kind = kind;
            cy_cancel_init(&x.c);
            cy_wg_init(&x.wg);
            cy_sema_init(&x.s, 0);
            cy_event_init(&x.e);
            cy_wsem_init(&x.ws, 3);
            cy_barrier_init(&x.b, 2);
            CHECK_EQ(cy_wg_add(&x.wg, 1), 0);
            CHECK_EQ(cy_wsem_try_acquire(&x.ws, 3), 1);
            CHECK_EQ(cy_wsem_enqueue(&x.ws, 2, &x.node), 0);
            CHECK_EQ(cy_barrier_arrive(&x.b, &x.bt, 1), CY_OK);
            cytest_thread th;
            cytest_start(&th, prim_waiter, &x);
            cytest_await_flag(&x.started, 10);
            if (round % 2)
                cytest_sleep_us(500); /* parked by now, most likely */
            cy_cancel_fire(&x.c);
            cytest_join(&th);
            CHECK_MSG(x.result == CY_CANCELLED, "%s: %d", pname[kind], x.result);
            /* and the primitive is as it was (barrier: broken, as by a timeout) */
            CHECK_EQ(cy_wg_count(&x.wg), 1);
            CHECK_EQ(cy_sema_value(&x.s), 0);
            CHECK_EQ(atomic_load(&x.s.nwaiters), 0);
            CHECK(!cy_event_is_set(&x.e));
            CHECK_EQ(cy_wsem_cancel(&x.ws, &x.node), 0);
            CHECK_EQ(cy_wsem_waiters(&x.ws), 0);
            CHECK_EQ(cy_wsem_held(&x.ws), 3);
            if (kind == P_BARRIER) {
                CHECK(cy_barrier_broken(&x.b));
                CHECK_EQ(cy_barrier_n_waiting(&x.b), 0);
            }
            CHECK_EQ(atomic_load(&cy_xwaiters), 0);
        }
    }
    /* a fired token does not stop a wait that needs no sleep */
    cy_cancel c;
    cy_sema s;
    cy_cancel_init(&c);
    cy_cancel_fire(&c);
    cy_sema_init(&s, 1);
    CHECK_EQ(cy_sema_acquire_ctx(&s, cytest_deadline(1), &c), CY_OK);
    CHECK_EQ(cy_sema_value(&s), 0);
    CHECK_EQ(cy_sema_acquire_ctx(&s, cytest_deadline(1), &c), CY_CANCELLED);
    CHECK_EQ(cy_sema_value(&s), 0);
    CHECK_EQ(atomic_load(&s.nwaiters), 0);
}

/* ------------------------------------------- fires racing wakes: semaphore */

/* Pairs of (controller, waiter) share one semaphore.  Each round the waiter
 * acquires with a fresh token; its controller releases one unit and, every
 * other round, also fires the token (before, after, or racing the release).
 * A waiter ends CY_OK (took a unit) or CY_CANCELLED (took none, and only if
 * fired); no units are lost or invented. */
#define CPAIRS 8

struct fires {
    cy_sema s;
    cy_cancel tok[CPAIRS];
    long rounds;
    _Atomic long round[CPAIRS];  /* controller: round r may start */
    _Atomic long waiting[CPAIRS];/* waiter: 2r in round r, 2r + 1 done with it */
    _Atomic long released, taken, cancelled, bad;
};

static void fires_thread(void *ctx, int id)
{
    struct fires *f = ctx;
    int k = id / 2;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 1400);
    for (long r = 1; r <= f->rounds; r++) {
        if (id % 2 == 0) { /* controller */
            cy_cancel_init(&f->tok[k]); /* the waiter is not using it now */
            atomic_store(&f->round[k], r);
            if (!cytest_await_at_least(&f->waiting[k], 2 * r, 20)) {
                atomic_fetch_add(&f->bad, 1);
                return;
            }
            cytest_spin((unsigned)cytest_below(&rng, 2000));
            int fire = (int)cytest_below(&rng, 2), first = (int)cytest_below(&rng, 2);
            if (fire && first)
                cy_cancel_fire(&f->tok[k]);
            atomic_fetch_add(&f->released, 1);
            CHECK_EQ(cy_sema_release(&f->s, 1, CY_SEMA_MAX), 0);
            if (fire && !first)
                cy_cancel_fire(&f->tok[k]);
            /* the token lives until the waiter is done with it */
            while (atomic_load(&f->waiting[k]) != 2 * r + 1)
                sched_yield();
        } else { /* waiter */
            while (atomic_load(&f->round[k]) < r)
                sched_yield();
            atomic_store(&f->waiting[k], 2 * r);
            cy_status st;
            if (cy_sema_try_acquire(&f->s))
                st = CY_OK;
            else
                while ((st = cy_sema_acquire_ctx(&f->s, cytest_deadline(10), &f->tok[k])) == CY_INTR) {
                }
            if (st == CY_OK) {
                atomic_fetch_add(&f->taken, 1);
            } else if (st == CY_CANCELLED && cy_cancel_fired(&f->tok[k])) {
                atomic_fetch_add(&f->cancelled, 1);
                /* took nothing: take this round's unit now, so units do not
                 * pile up and every round's waiter has to sleep */
                if (cyw_sema_acquire(&f->s, cytest_deadline(10)) != CY_OK)
                    atomic_fetch_add(&f->bad, 1);
            } else {
                atomic_fetch_add(&f->bad, 1);
            }
            atomic_store(&f->waiting[k], 2 * r + 1);
        }
    }
}

static void test_fires_racing_releases(void)
{
    struct fires f;
    memset(&f, 0, sizeof f);
    cy_sema_init(&f.s, 0);
    f.rounds = cytest_n(20000);
    cytest_parallel(2 * CPAIRS, fires_thread, &f);
    CHECK_EQ(atomic_load(&f.bad), 0);
    CHECK_EQ(atomic_load(&f.released), CPAIRS * f.rounds);
    CHECK_EQ(atomic_load(&f.taken) + atomic_load(&f.cancelled), CPAIRS * f.rounds);
    CHECK_EQ(cy_sema_value(&f.s), 0); /* one unit released and one taken per round */
    CHECK_EQ(atomic_load(&f.s.nwaiters), 0);
    CHECK_EQ(atomic_load(&cy_xwaiters), 0);
    cytest_note("%d pairs x %ld rounds: %ld acquired, %ld cancelled", CPAIRS, f.rounds, atomic_load(&f.taken),
                atomic_load(&f.cancelled));
}

/* ------------------------------------ fires racing hand-offs: weighted */

/* Threads acquire random weights of one weighted semaphore, each wait with a
 * token that a controller fires now and then; a cancelled waiter leaves the
 * queue (cy_wsem_cancel) and gives back units granted meanwhile, as
 * _cysync.pyx does.  At the end nothing is held and nobody is queued. */
#define WTHREADS 12

struct wfires {
    cy_wsem s;
    long iters;
    cy_cancel tok[WTHREADS];
    _Atomic int tok_live[WTHREADS]; /* 1 while thread i waits with tok[i] */
    _Atomic int workers_left;
    _Atomic int64_t inside;
    _Atomic long ok, cancelled, granted_then_cancelled, fires, bad;
};

static void wfires_thread(void *ctx, int id)
{
    struct wfires *f = ctx;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 1500);
    if (id == WTHREADS) { /* the controller: fire a random waiter's token */
        while (atomic_load(&f->workers_left) > 0) {
            int k = (int)cytest_below(&rng, WTHREADS);
            int one = 1;
            /* claim the token: its owner cannot re-init it while we hold it */
            if (atomic_compare_exchange_strong(&f->tok_live[k], &one, 2)) {
                cy_cancel_fire(&f->tok[k]);
                atomic_fetch_add_explicit(&f->fires, 1, CY_RELAXED);
                atomic_store(&f->tok_live[k], 1);
            }
            cytest_sleep_us((long)cytest_below(&rng, 100));
        }
        return;
    }
    for (long i = 0; i < f->iters; i++) {
        int64_t n = 1 + (int64_t)cytest_below(&rng, (uint64_t)f->s.size);
        int got = cy_wsem_try_acquire(&f->s, n);
        if (!got) {
            cy_wsem_waiter w;
            cy_cancel_init(&f->tok[id]);
            atomic_store(&f->tok_live[id], 1);
            got = cy_wsem_enqueue(&f->s, n, &w);
            if (!got) {
                cy_status st;
                while ((st = cy_wsem_wait_ctx(&w, cytest_deadline(20), &f->tok[id])) == CY_INTR) {
                }
                if (st == CY_OK) {
                    got = 1;
                } else if (st == CY_CANCELLED) {
                    atomic_fetch_add_explicit(&f->cancelled, 1, CY_RELAXED);
                    if (cy_wsem_cancel(&f->s, &w)) {
                        atomic_fetch_add_explicit(&f->granted_then_cancelled, 1, CY_RELAXED);
                        CHECK_EQ(cy_wsem_release(&f->s, n), 0);
                    }
                } else {
                    atomic_fetch_add(&f->bad, 1); /* 20 s without being served */
                    if (cy_wsem_cancel(&f->s, &w))
                        CHECK_EQ(cy_wsem_release(&f->s, n), 0);
                }
            }
            /* take the token back from the controller before it is re-initialised */
            int one = 1;
            while (!atomic_compare_exchange_weak(&f->tok_live[id], &one, 0))
                one = 1;
        }
        if (!got)
            continue;
        atomic_fetch_add_explicit(&f->ok, 1, CY_RELAXED);
        int64_t in = atomic_fetch_add(&f->inside, n) + n;
        if (in > f->s.size)
            atomic_fetch_add(&f->bad, 1);
        cytest_spin((unsigned)cytest_below(&rng, 500));
        atomic_fetch_sub(&f->inside, n);
        CHECK_EQ(cy_wsem_release(&f->s, n), 0);
    }
    atomic_fetch_sub(&f->workers_left, 1);
}

static void test_fires_racing_wsem(void)
{
    struct wfires f;
    memset(&f, 0, sizeof f);
    cy_wsem_init(&f.s, 6);
    f.iters = cytest_n(20000);
    atomic_store(&f.workers_left, WTHREADS);
    cytest_parallel(WTHREADS + 1, wfires_thread, &f);
    CHECK_EQ(atomic_load(&f.bad), 0);
    CHECK_EQ(cy_wsem_held(&f.s), 0);
    CHECK_EQ(cy_wsem_waiters(&f.s), 0);
    CHECK_EQ(atomic_load(&f.s.state), 0);
    CHECK_EQ(atomic_load(&cy_xwaiters), 0);
    cytest_note("%d threads x %ld acquires of 1..6 of 6 units, %ld fires: %ld acquired, %ld cancelled (%ld "
                "granted at the same time, given back)",
                WTHREADS, f.iters, atomic_load(&f.fires), atomic_load(&f.ok), atomic_load(&f.cancelled),
                atomic_load(&f.granted_then_cancelled));
}

/* ------------------------------------------- many tokens on one address */

#define MANY 16

struct crowd {
    _Atomic uint32_t word;
    cy_cancel tok[MANY];
    int fire_mask;
    cy_status result[MANY];
    _Atomic int parked;
};

static void crowd_thread(void *ctx, int id)
{
    struct crowd *c = ctx;
    atomic_fetch_add(&c->parked, 1);
    c->result[id] = park_cancel_loop(&c->word, 0, cytest_deadline(10), &c->tok[id]);
}

static void *crowd_driver(void *p)
{
    struct crowd *c = p;
    int64_t end = cytest_now_ns() + 10000000000LL;
    while ((atomic_load(&c->parked) < MANY || atomic_load(&cy_xwaiters) < MANY / 2) && cytest_now_ns() < end)
        sched_yield();
    for (int i = 0; i < MANY; i++)
        if (c->fire_mask & (1 << i))
            cy_cancel_fire(&c->tok[i]);
    cytest_sleep_us(100);
    atomic_store(&c->word, 1);
    cy_wake(&c->word, 1); /* n = 1, yet every cancellable waiter is visited */
    return NULL;
}

static void test_many_tokens_one_word(void)
{
    cytest_rng rng;
    cytest_rng_init(&rng, 1600);
    for (long round = 0; round < cytest_n(300); round++) {
        struct crowd c;
        memset(&c, 0, sizeof c);
        for (int i = 0; i < MANY; i++)
            cy_cancel_init(&c.tok[i]);
        c.fire_mask = (int)cytest_below(&rng, 1u << MANY);
        cytest_thread drv;
        cytest_start(&drv, crowd_driver, &c);
        cytest_parallel(MANY, crowd_thread, &c);
        cytest_join(&drv);
        for (int i = 0; i < MANY; i++) {
            if (c.fire_mask & (1 << i))
                /* fired before the word changed; it may have seen either */
                CHECK(c.result[i] == CY_CANCELLED || c.result[i] == CY_OK);
            else
                CHECK_EQ(c.result[i], CY_OK);
        }
        CHECK_EQ(atomic_load(&cy_xwaiters), 0);
    }
}

static const cytest_case cases[] = {
    {"token_basics", test_token_basics, NULL},
    {"park_cancel_at_once", test_park_cancel_at_once, NULL},
    {"park_cancel_timeout", test_park_cancel_timeout, NULL},
    {"fire_and_wake_sleepers", test_fire_and_wake_sleepers, NULL},
    {"primitives_ctx", test_primitives_ctx, NULL},
    {"fires_racing_releases", test_fires_racing_releases, NULL},
    {"fires_racing_wsem", test_fires_racing_wsem, NULL},
    {"many_tokens_one_word", test_many_tokens_one_word, NULL},
};

int main(int argc, char **argv)
{
    return cytest_main(argc, argv, "cancel", cases, sizeof cases / sizeof cases[0]);
}
