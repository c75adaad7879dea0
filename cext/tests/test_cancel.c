/* test_cancel.c - cancellation through tokens (cy_waiter.h): cy_cancel and
 * the records registered with it, the address table (cy_wait_addr /
 * cy_wake), the one driver cy_wait (on_intr, the ops' leave), every
 * primitive's wait op ended by a fire with CY_CANCELLED, and fires racing
 * wakes and hand-offs from many threads.  Records and table nodes live on
 * the waiters' stacks (cy_wait's and cy_wait_addr's frames): a node left
 * registered after its wait returned would be read by the next cy_wake of
 * that address, which ASan's use-after-return check reports. */
#include "cytest.h"
#include "cywait.h"

#include <string.h>

/* No record registered with the token (none can be reached by a fire). */
static int token_idle(cy_cancel *c)
{
    cy_mutex_lock(&c->mu);
    int idle = cy_list_empty(&c->waiters);
    cy_mutex_unlock(&c->mu);
    return idle;
}

static uint32_t claim_of(cy_waiter *w) { return atomic_load(&w->claim); }

/* ------------------------------------------------------------- the token */

static void test_token_basics(void)
{
    cy_cancel c, d;
    cy_waiter w;
    cy_cancel_init(&c);
    CHECK(!cy_cancel_fired(&c));
    CHECK(!cy_cancel_fired(NULL));
    CHECK(token_idle(&c));

    /* a record begun with a token is registered until it ends; a fire
     * claims it (CY_CLAIM_CANCEL) and wakes it */
    cy_waiter_begin(&w, &c);
    CHECK(!token_idle(&c));
    CHECK_EQ(claim_of(&w), CY_CLAIM_NONE);
    CHECK_EQ(atomic_load(&w.word), 0);
    cy_cancel_fire(&c);
    CHECK(cy_cancel_fired(&c));
    CHECK_EQ(claim_of(&w), CY_CLAIM_CANCEL);
    CHECK_EQ(atomic_load(&w.word), 1);
    cy_cancel_fire(&c); /* idempotent */
    CHECK(cy_cancel_fired(&c));
    CHECK_EQ(cy_waiter_rearm(&w), CY_CANCELLED); /* the token fired: claimed again */
    cy_waiter_end(&w);
    CHECK(token_idle(&c));

    /* a record begun with a token that has fired already is claimed at once */
    cy_waiter_begin(&w, &c);
    CHECK_EQ(claim_of(&w), CY_CLAIM_CANCEL);
    cy_waiter_end(&w);
    CHECK(token_idle(&c));

    /* one claim per attempt: the loser of a claim race loses cleanly; rearm
     * makes the record claimable again, and a fire then claims it */
    cy_cancel_init(&d);
    cy_waiter_begin(&w, &d);
    CHECK_EQ(cy_waiter_claim(&w, CY_CLAIM_SELF), 1);
    CHECK_EQ(cy_waiter_claim(&w, CY_CLAIM_FIRED), 0);
    cy_cancel_fire(&d); /* loses to our own claim: no wake */
    CHECK_EQ(claim_of(&w), CY_CLAIM_SELF);
    CHECK_EQ(atomic_load(&w.word), 0);
    CHECK_EQ(cy_waiter_rearm(&w), CY_CANCELLED); /* sees the fire it lost to */
    CHECK_EQ(claim_of(&w), CY_CLAIM_CANCEL);
    cy_waiter_end(&w);
    CHECK(token_idle(&d));

    /* without a token: nothing registered, rearm unclaims */
    cy_waiter_begin(&w, NULL);
    CHECK_EQ(cy_waiter_claim(&w, CY_CLAIM_SELF), 1);
    CHECK_EQ(cy_waiter_rearm(&w), CY_OK);
    CHECK_EQ(claim_of(&w), CY_CLAIM_NONE);
    cy_waiter_end(&w);
}

static void test_wait_addr_at_once(void)
{
    cy_cancel c;
    cy_waiter w;
    _Atomic uint32_t word = 0;
    cy_cancel_init(&c);
    cy_waiter_begin(&w, &c);
    CHECK_EQ(cy_wait_addr(&word, 1, cytest_deadline(5), &w), CY_OK); /* word differs */
    CHECK_EQ(cy_wait_addr(&word, 1, cytest_deadline(5), NULL), CY_OK);
    CHECK_EQ(cy_wait_addr(&word, 0, cy_now_ns() - 1, &w), CY_TIMEOUT);
    CHECK_EQ(cy_wait_addr(&word, 0, cy_now_ns() - 1, NULL), CY_TIMEOUT);
    cy_cancel_fire(&c);
    CHECK_EQ(cy_wait_addr(&word, 0, cytest_deadline(5), &w), CY_CANCELLED);
    CHECK_EQ(cy_wait_addr(&word, 1, cytest_deadline(5), &w), CY_CANCELLED); /* the fire wins */
    CHECK_EQ(cy_wait_addr(&word, 0, cy_now_ns() - 1, &w), CY_CANCELLED);
    cy_waiter_end(&w);
    CHECK(token_idle(&c));
    cy_wake(&word, CY_WAKE_ALL); /* nothing registered: touches no dead frame */

    /* through the driver: a token fired before the wait starts ends it at once */
    int64_t t0 = cy_now_ns();
    CHECK_EQ(cyw_addr_wait_ctx(&word, 0, cytest_deadline(10), &c), CY_CANCELLED);
    CHECK_EQ(cy_cancel_wait(&c, cytest_deadline(10)), CY_CANCELLED);
    cy_sema s;
    cy_sema_init(&s, 0);
    CHECK_EQ(cyw_wait(&cy_sema_wait_op, &s, 0, cytest_deadline(10), &c), CY_CANCELLED);
    int64_t took = cy_now_ns() - t0;
    CHECK_MSG(took < 1000000000LL, "fired tokens took %lld ms", (long long)(took / 1000000));
    CHECK(token_idle(&c));

    /* a record without a token: a plain park on the address */
    cy_waiter_begin(&w, NULL);
    CHECK_EQ(cy_wait_addr(&word, 1, cytest_deadline(5), &w), CY_OK);
    CHECK_EQ(cy_wait_addr(&word, 0, cy_now_ns() - 1, &w), CY_TIMEOUT);
    cy_waiter_end(&w);
}

static void test_wait_timeout(void)
{
    cy_cancel c;
    _Atomic uint32_t word = 0;
    cy_cancel_init(&c);
    int64_t dl = cytest_deadline(0.05);
    CHECK_EQ(cyw_addr_wait_ctx(&word, 0, dl, &c), CY_TIMEOUT);
    CHECK(cy_now_ns() >= dl);
    CHECK(token_idle(&c));
    dl = cytest_deadline(0.05);
    cy_status r;
    while ((r = cy_cancel_wait(&c, dl)) == CY_INTR) {
    }
    CHECK_EQ(r, CY_TIMEOUT);
    CHECK(cy_now_ns() >= dl);
    CHECK(token_idle(&c));
    CHECK(!cy_cancel_fired(&c));
}

/* ------------------------------------------- plain waits and table waits */

struct pw {
    _Atomic uint32_t word;
    cy_cancel c;
    int use_token;
    _Atomic int started;
    _Atomic int done;
    cy_status result;
};

static void *pw_main(void *p)
{
    struct pw *x = p;
    atomic_store(&x->started, 1);
    x->result = cyw_addr_wait_ctx(&x->word, 0, cytest_deadline(10), x->use_token ? &x->c : NULL);
    atomic_store(&x->done, 1);
    return NULL;
}

/* A wait without a token is a plain park on the primitive's word: the OS
 * wake alone (cy_wake_os) ends it.  One with a token sleeps on its record
 * and needs cy_wake's poke through the address table. */
static void test_plain_and_table_waits(void)
{
    int stayed = 0;
    for (int round = 0; round < 20; round++) {
        struct pw x;
        memset(&x, 0, sizeof x);
        cy_cancel_init(&x.c);
        x.use_token = round % 2;
        cytest_thread th;
        cytest_start(&th, pw_main, &x);
        cytest_await_flag(&x.started, 10);
        cytest_sleep_us(2000); /* asleep by now, most likely */
        atomic_store(&x.word, 1);
        cy_wake_os(&x.word, 1);
        if (x.use_token) {
#ifndef CY_PARK_FALLBACK
            /* the futex wake went to the word, not to the record (the
             * fallback's buckets may share a condvar: a spurious wake there
             * re-checks the word and may end the wait, which is right too) */
            cytest_sleep_us(20000);
            stayed += !atomic_load(&x.done); /* unless it had not parked yet */
#endif
            cy_wake(&x.word, 1);
        }
        cytest_join(&th);
        CHECK_EQ(x.result, CY_OK);
        CHECK(token_idle(&x.c));
    }
#ifndef CY_PARK_FALLBACK
    CHECK_MSG(stayed > 0, "a token waiter was woken by the OS wake of the word alone, every time");
#else
    (void)stayed;
#endif
}

/* ------------------------------------------------ fire / wake a sleeper */

/* a (with a token) and b (without) wait on the same word. */
struct sleepers {
    _Atomic uint32_t word;
    cy_cancel c;
    cy_status result[2];
};

static void *sleeper_a(void *p)
{
    struct sleepers *s = p;
    s->result[0] = cyw_addr_wait_ctx(&s->word, 0, cytest_deadline(10), &s->c);
    return NULL;
}

static void *sleeper_b(void *p)
{
    struct sleepers *s = p;
    s->result[1] = cyw_park_until_changed(&s->word, 0, cytest_deadline(10));
    return NULL;
}

static void test_fire_and_wake_sleepers(void)
{
    for (long round = 0; round < cytest_n(300); round++) {
        struct sleepers s;
        memset(&s, 0, sizeof s);
        cy_cancel_init(&s.c);
        s.result[0] = s.result[1] = CY_INTR;
        cytest_thread ta, tb;
        int fire = round % 2 == 0;
        cytest_start(&ta, sleeper_a, &s);
        if (!fire)
            cytest_start(&tb, sleeper_b, &s);
        int64_t end = cytest_now_ns() + 10000000000LL;
        while (token_idle(&s.c) && cytest_now_ns() < end)
            sched_yield();
        if (round % 3 == 0)
            cytest_sleep_us(200);
        if (fire) {
            cy_cancel_fire(&s.c);
            cytest_join(&ta);
            CHECK_EQ(s.result[0], CY_CANCELLED);
        } else {
            /* one wake with n = 1: the plain waiter (the one OS sleeper on
             * the word) and the one with a token (poked through the table)
             * both come back */
            atomic_store(&s.word, 1);
            cy_wake(&s.word, 1);
            cytest_join(&ta);
            cytest_join(&tb);
            CHECK_EQ(s.result[0], CY_OK);
            CHECK_EQ(s.result[1], CY_OK);
        }
        CHECK(token_idle(&s.c));
        cy_wake(&s.word, CY_WAKE_ALL); /* no node of theirs left in the table */
    }
}

/* -------------------------------------------- the driver: on_intr, leave */

struct intr {
    _Atomic uint32_t word;
    cy_cancel c;
    cy_wsem ws;
    int kind; /* 0: a word, stop at the first CY_INTR; 1: a word, go on; 2: weighted, stop */
    _Atomic int intrs;
    _Atomic int in_handler, handler_go;
    int result;
    int left; /* wsem: leave(keep = 0)'s answer */
};

static int intr_handler(void *p)
{
    struct intr *x = p;
    int n = atomic_fetch_add(&x->intrs, 1) + 1;
    if (x->kind == 2 && n == 1) {
        /* "the signal handler" runs while the units are granted to us */
        atomic_store(&x->in_handler, 1);
        cytest_await_flag(&x->handler_go, 10);
    }
    if (x->kind == 1)
        return 0; /* it did not raise: wait on */
    return 1;     /* it raised: stop with CY_INTR */
}

static void *intr_main(void *p)
{
    struct intr *x = p;
    int64_t dl = cytest_deadline(10);
    if (x->kind == 2) {
        cy_wsem_waiter node;
        CHECK_EQ(cy_wsem_enqueue(&x->ws, 2, &node), 0);
        x->result = cy_wait(&cy_wsem_wait_op, &x->ws, (uintptr_t)&node, dl, &x->c, intr_handler, x);
        if (x->result == CY_INTR) /* as _block does: leave, giving back what was granted */
            x->left = cy_wsem_wait_op.leave(&x->ws, (uintptr_t)&node, 0);
    } else {
        x->result = cy_wait(&cyw_addr_wait_op, &x->word, 0, dl, &x->c, intr_handler, x);
    }
    return NULL;
}

static void test_driver_on_intr(void)
{
    for (int kind = 0; kind < 3; kind++) {
        struct intr x;
        memset(&x, 0, sizeof x);
        x.kind = kind;
        cy_cancel_init(&x.c);
        cy_wsem_init(&x.ws, 3);
        CHECK_EQ(cy_wsem_try_acquire(&x.ws, 3), 1);
        cytest_thread th;
        cytest_start(&th, intr_main, &x);
        /* poke until the handler ran (futex: EINTR; fallback: a slice ends anyway) */
        int64_t t0 = cy_now_ns();
        long want = kind == 1 ? 3 : 1;
        while (atomic_load(&x.intrs) < want && cy_now_ns() - t0 < 5000000000LL) {
            cytest_sleep_us(2000);
            cytest_poke(th.t);
        }
        CHECK(atomic_load(&x.intrs) >= want);
        if (kind == 1) {
            atomic_store(&x.word, 1);
            cy_wake(&x.word, 1);
        }
        if (kind == 2) {
            cytest_await_flag(&x.in_handler, 10);
            CHECK_EQ(cy_wsem_release(&x.ws, 3), 0); /* serves the queued 2 */
            CHECK_EQ(cy_wsem_held(&x.ws), 2);
            atomic_store(&x.handler_go, 1);
        }
        cytest_join(&th);
        if (kind == 1) {
            CHECK_EQ(x.result, CY_OK);
        } else {
            CHECK_EQ(x.result, CY_INTR);
            CHECK_EQ(atomic_load(&x.intrs), 1); /* stopped at the first */
        }
        if (kind == 2) {
            CHECK_EQ(x.left, 0);
            CHECK_EQ(cy_wsem_held(&x.ws), 0); /* granted, then given back */
            CHECK_EQ(cy_wsem_waiters(&x.ws), 0);
            CHECK_EQ(atomic_load(&x.ws.state), 0);
        }
        CHECK(token_idle(&x.c));
        cy_wake(&x.word, CY_WAKE_ALL);
    }
}

/* ------------------------------------------- every primitive's wait op */

enum { P_WG, P_SEMA, P_EVENT, P_WSEM, P_BARRIER, P_ONCE, P_RECV, P_SEND, P_SELECT, P_N };
static const char *const pname[P_N] = {"waitgroup", "sema", "event", "wsem", "barrier",
                                       "once",      "recv", "send",  "select"};

struct prim {
    int kind;
    cy_cancel c;
    cy_waitgroup wg;
    cy_sema s;
    cy_event e;
    cy_wsem ws;
    cy_barrier b;
    cy_barrier_ticket bt; /* the main thread's arrival */
    cy_once o;
    cy_chan ch, ch2;
    int x;
    _Atomic int started;
    int result;
    int64_t took_ns;
};

static void *prim_waiter(void *p)
{
    struct prim *x = p;
    int64_t dl = cytest_deadline(10);
    int r, ok, last;
    uint32_t idx;
    void *v;
    atomic_store(&x->started, 1);
    int64_t t0 = cy_now_ns();
    switch (x->kind) {
    case P_WG:
        r = cyw_wg_wait_ctx(&x->wg, dl, &x->c);
        break;
    case P_SEMA:
        r = cyw_sema_acquire_ctx(&x->s, dl, &x->c);
        break;
    case P_EVENT:
        r = cyw_event_wait_ctx(&x->e, dl, &x->c);
        break;
    case P_WSEM:
        r = cyw_wsem_acquire_ctx(&x->ws, 2, dl, 0, &x->c);
        break;
    case P_BARRIER:
        r = cyw_barrier_wait_ctx(&x->b, dl, &idx, &last, NULL, NULL, 1, &x->c);
        CHECK(!last);
        break;
    case P_ONCE:
        r = cyw_once_wait_ctx(&x->o, dl, &x->c);
        break;
    case P_RECV:
        r = cyw_chan_recv(&x->ch, &v, dl, &x->c, &ok);
        CHECK(v == NULL && !ok);
        break;
    case P_SEND:
        r = cyw_chan_send(&x->ch, &x->x, dl, &x->c, &ok);
        CHECK(!ok);
        break;
    default: {
        cy_case cs[3];
        cy_select sel;
        memset(cs, 0, sizeof cs);
        cs[0].ch = &x->ch;
        cs[0].dir = CY_CASE_RECV;
        cs[1].ch = &x->ch2;
        cs[1].dir = CY_CASE_SEND;
        cs[1].elem = &x->x;
        cs[2].ch = NULL;
        cs[2].dir = CY_CASE_RECV;
        r = cyw_select(cs, 3, dl, &x->c, &sel);
    }
    }
    x->took_ns = cy_now_ns() - t0;
    x->result = r;
    return NULL;
}

/* The waiter has gone to sleep, or is about to (its queue entry, waiter
 * bit or count is there). */
static int prim_parked(struct prim *x)
{
    switch (x->kind) {
    case P_WG:
        return (atomic_load(&x->wg.state) & CY_WG_WAITERS) != 0;
    case P_SEMA:
        return atomic_load(&x->s.nwaiters) != 0;
    case P_EVENT:
        return (atomic_load(&x->e.state) & CY_EV_WAITERS) != 0;
    case P_WSEM:
        return cy_wsem_waiters(&x->ws) == 1;
    case P_BARRIER: {
        cy_mutex_lock(&x->b.mu);
        int n = x->b.sleepers;
        cy_mutex_unlock(&x->b.mu);
        return n != 0;
    }
    case P_ONCE:
        return atomic_load(&x->o.state) == CY_ONCE_RUNNING_WAITERS;
    case P_RECV:
        return cyw_chan_queued(&x->ch, CY_CASE_RECV) == 1;
    case P_SEND:
        return cyw_chan_queued(&x->ch, CY_CASE_SEND) == 1;
    default:
        return cyw_chan_queued(&x->ch, CY_CASE_RECV) == 1 && cyw_chan_queued(&x->ch2, CY_CASE_SEND) == 1;
    }
}

static void test_primitives_ctx(void)
{
    for (int kind = 0; kind < P_N; kind++) {
        for (int round = 0; round < 30; round++) {
            /* mode 0: fire once parked; 1: the same, a little later; 2:
             * fired before the wait starts (it returns at once) */
            int mode = round % 3;
            struct prim x;
            memset(&x, 0, sizeof x);
            x.kind = kind;
            cy_cancel_init(&x.c);
            cy_wg_init(&x.wg);
            cy_sema_init(&x.s, 0);
            cy_event_init(&x.e);
            cy_wsem_init(&x.ws, 3);
            cy_barrier_init(&x.b, 3);
            cy_once_init(&x.o);
            cy_chan_init(&x.ch, NULL, 0);
            cy_chan_init(&x.ch2, NULL, 0);
            CHECK_EQ(cy_wg_add(&x.wg, 1), 0);
            CHECK_EQ(cy_wsem_try_acquire(&x.ws, 3), 1);
            CHECK_EQ(cy_barrier_arrive(&x.b, &x.bt, 0), CY_OK);
            CHECK_EQ(cy_once_try_begin(&x.o, cy_once_self()), 1);
            if (mode == 2)
                cy_cancel_fire(&x.c);
            cytest_thread th;
            cytest_start(&th, prim_waiter, &x);
            cytest_await_flag(&x.started, 10);
            if (mode != 2) {
                int64_t end = cytest_now_ns() + 10000000000LL;
                while (!prim_parked(&x) && cytest_now_ns() < end)
                    sched_yield();
                CHECK_MSG(prim_parked(&x), "%s: not parked", pname[kind]);
                if (mode == 1)
                    cytest_sleep_us(500); /* asleep by now, most likely */
                cy_cancel_fire(&x.c);
            }
            cytest_join(&th);
            CHECK_MSG(x.result == CY_CANCELLED, "%s, mode %d: %d", pname[kind], mode, x.result);
            if (mode == 2)
                CHECK_MSG(x.took_ns < 1000000000LL, "%s: a fired token took %lld ms", pname[kind],
                          (long long)(x.took_ns / 1000000));
            CHECK(token_idle(&x.c));
            /* and the primitive is as it was (barrier: broken, as by a timeout) */
            CHECK_EQ(cy_wg_count(&x.wg), 1);
            CHECK_EQ(cy_sema_value(&x.s), 0);
            CHECK_EQ(atomic_load(&x.s.nwaiters), 0);
            CHECK(!cy_event_is_set(&x.e));
            CHECK_EQ(cy_wsem_waiters(&x.ws), 0);
            CHECK_EQ(cy_wsem_held(&x.ws), 3);
            CHECK(cy_list_empty(&x.ws.queue));
            CHECK(!cy_once_is_done(&x.o));
            CHECK(cyw_chan_queues_empty(&x.ch));
            CHECK(cyw_chan_queues_empty(&x.ch2));
            CHECK_EQ(cy_chan_try_send(&x.ch, &x.x), CY_CHAN_BLOCK); /* no receiver left behind */
            void *v = NULL;
            CHECK_EQ(cy_chan_try_recv(&x.ch, &v), CY_CHAN_BLOCK); /* no sender left behind */
            CHECK_EQ(cy_chan_try_recv(&x.ch2, &v), CY_CHAN_BLOCK);
            if (kind == P_BARRIER) {
                CHECK(cy_barrier_broken(&x.b));
                CHECK_EQ(cy_barrier_n_waiting(&x.b), 0);
            } else {
                CHECK(!cy_barrier_broken(&x.b));
            }
            /* the primitives still work, and their wakes find no record of
             * the returned wait in the table */
            cy_barrier_leave(&x.b, &x.bt);
            cy_mutex_lock(&x.b.mu);
            CHECK_EQ(x.b.count, 0);
            cy_mutex_unlock(&x.b.mu);
            cy_once_finish(&x.o);
            CHECK(cy_once_is_done(&x.o));
            CHECK_EQ(cy_wg_add(&x.wg, -1), 0);
            CHECK_EQ(cyw_wg_wait(&x.wg, cytest_deadline(1)), CY_OK);
            cy_event_set(&x.e);
            CHECK_EQ(cy_sema_release(&x.s, 1, CY_SEMA_MAX), 0);
            CHECK_EQ(cyw_sema_acquire(&x.s, cytest_deadline(1)), CY_OK);
            CHECK_EQ(cy_wsem_release(&x.ws, 3), 0);
            CHECK_EQ(atomic_load(&x.ws.state), 0);
        }
    }
    /* a fired token does not stop a wait that needs no sleep */
    cy_cancel c;
    cy_sema s;
    cy_cancel_init(&c);
    cy_cancel_fire(&c);
    cy_sema_init(&s, 1);
    CHECK_EQ(cyw_wait(&cy_sema_wait_op, &s, 0, cytest_deadline(1), &c), CY_OK);
    CHECK_EQ(cy_sema_value(&s), 0);
    CHECK_EQ(cyw_wait(&cy_sema_wait_op, &s, 0, cytest_deadline(1), &c), CY_CANCELLED);
    CHECK_EQ(cy_sema_value(&s), 0);
    CHECK_EQ(atomic_load(&s.nwaiters), 0);
    CHECK(token_idle(&c));
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
    _Atomic long round[CPAIRS];   /* controller: round r may start */
    _Atomic long waiting[CPAIRS]; /* waiter: 2r in round r, 2r + 1 done with it */
    _Atomic long released, taken, cancelled, bad;
};

static void fires_thread(void *ctx, int id)
{
    struct fires *f = ctx;
    int k = id / 2;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 1400);
    for (long r = 1; r <= f->rounds; r++) {
        if (id % 2 == 0) {              /* controller */
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
            if (!token_idle(&f->tok[k]))
                atomic_fetch_add(&f->bad, 1);
        } else { /* waiter */
            while (atomic_load(&f->round[k]) < r)
                sched_yield();
            atomic_store(&f->waiting[k], 2 * r);
            cy_status st = cyw_sema_acquire_ctx(&f->s, cytest_deadline(10), &f->tok[k]);
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
    cytest_note("%d pairs x %ld rounds: %ld acquired, %ld cancelled", CPAIRS, f.rounds, atomic_load(&f.taken),
                atomic_load(&f.cancelled));
}

/* ------------------------------------ fires racing hand-offs: weighted */

/* Threads acquire random weights of one weighted semaphore, each wait with a
 * token that a controller fires now and then.  A cancelled wait (the op's
 * CY_CANCELLED) has left the queue and given back units granted at that
 * moment, as _cysync.pyx relies on; the caller does nothing more.  At the
 * end nothing is held and nobody is queued. */
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
                int st = cyw_wait(&cy_wsem_wait_op, &f->s, (uintptr_t)&w, cytest_deadline(20), &f->tok[id]);
                if (st == CY_OK) {
                    got = 1;
                } else if (st == CY_CANCELLED) {
                    atomic_fetch_add_explicit(&f->cancelled, 1, CY_RELAXED);
                    /* served, then cancelled: the op gave the units back */
                    if (atomic_load(&w.ready))
                        atomic_fetch_add_explicit(&f->granted_then_cancelled, 1, CY_RELAXED);
                } else {
                    atomic_fetch_add(&f->bad, 1); /* 20 s without being served */
                    (void)cy_wsem_wait_op.leave(&f->s, (uintptr_t)&w, 0);
                }
            }
            /* take the token back from the controller before it is re-initialised */
            int one = 1;
            while (!atomic_compare_exchange_weak(&f->tok_live[id], &one, 0))
                one = 1;
            if (!token_idle(&f->tok[id]))
                atomic_fetch_add(&f->bad, 1);
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
    CHECK(cy_list_empty(&f.s.queue));
    CHECK_EQ(atomic_load(&f.s.state), 0);
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
};

static void crowd_thread(void *ctx, int id)
{
    struct crowd *c = ctx;
    c->result[id] = cyw_addr_wait_ctx(&c->word, 0, cytest_deadline(10), &c->tok[id]);
}

static void *crowd_driver(void *p)
{
    struct crowd *c = p;
    int64_t end = cytest_now_ns() + 10000000000LL;
    for (int i = 0; i < MANY; i++)
        while (token_idle(&c->tok[i]) && cytest_now_ns() < end)
            sched_yield();
    cytest_sleep_us(100);
    for (int i = 0; i < MANY; i++)
        if (c->fire_mask & (1 << i))
            cy_cancel_fire(&c->tok[i]);
    cytest_sleep_us(100);
    atomic_store(&c->word, 1);
    cy_wake(&c->word, 1); /* n = 1, yet every record in the table is poked */
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
            CHECK(token_idle(&c.tok[i]));
        }
        cy_wake(&c.word, CY_WAKE_ALL); /* their table nodes are gone with their frames */
    }
}

/* ---------------------------------- nothing left behind by ended waits */

/* Many waits with a token end every way a wait ends (fired before, fired
 * while asleep, timed out, woken), each on a record and a table node in the
 * frames of cy_wait and cy_wait_addr.  After each, the primitive's own wake
 * (release, set, done, cy_wake) walks the address table: a node left there
 * would be read in a dead frame (ASan: stack-use-after-return).  At the end
 * plain waiters and waiters with a token are still woken as before. */
struct leftover {
    cy_sema s;
    cy_event e;
    cy_waitgroup wg;
    _Atomic uint32_t word;
    cy_cancel tok;
    _Atomic long round; /* the waiter: round r is on */
    _Atomic long acked; /* the waker: done with round r */
    _Atomic int stop;
    _Atomic long ok, cancelled, timeouts, bad;
};

static void leftover_thread(void *ctx, int id)
{
    struct leftover *l = ctx;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 1700);
    if (id == 1) { /* the waker: once per round, fires the token or wakes the wait */
        long seen = 0;
        while (!atomic_load(&l->stop)) {
            long r = atomic_load(&l->round);
            if (r == seen) {
                sched_yield();
                continue;
            }
            seen = r;
            if (cytest_below(&rng, 4) == 0)
                cytest_sleep_us(100); /* late: short deadlines run out first */
            else
                cytest_spin((unsigned)cytest_below(&rng, 3000));
            if (cytest_below(&rng, 2) == 0) {
                cy_cancel_fire(&l->tok);
            } else {
                switch (r % 4) {
                case 0:
                    (void)cy_sema_release(&l->s, 1, 1);
                    break;
                case 1:
                    cy_event_set(&l->e);
                    break;
                case 2:
                    atomic_store(&l->word, 1);
                    cy_wake(&l->word, 1);
                    break;
                default:
                    CHECK_EQ(cy_wg_add(&l->wg, -1), 0);
                }
            }
            atomic_store(&l->acked, r);
        }
        return;
    }
    long rounds = cytest_n(4000);
    for (long r = 1; r <= rounds; r++) {
        cy_cancel_init(&l->tok);
        cy_event_clear(&l->e);
        atomic_store(&l->word, 0);
        (void)cy_sema_try_acquire(&l->s);
        if (r % 4 == 3)
            CHECK_EQ(cy_wg_add(&l->wg, 1), 0);
        if (cytest_below(&rng, 8) == 0)
            cy_cancel_fire(&l->tok); /* before the wait starts */
        int64_t dl = cytest_deadline(cytest_below(&rng, 4) == 0 ? 1e-6 * (double)cytest_below(&rng, 50) : 10);
        atomic_store(&l->round, r);
        int st;
        switch (r % 4) {
        case 0:
            st = cyw_wait(&cy_sema_wait_op, &l->s, 0, dl, &l->tok);
            break;
        case 1:
            st = cyw_wait(&cy_event_wait_op, &l->e, cy_event_wait_begin(&l->e), dl, &l->tok);
            break;
        case 2:
            st = cyw_addr_wait_ctx(&l->word, 0, dl, &l->tok);
            break;
        default:
            st = cyw_wait(&cy_wg_wait_op, &l->wg, cy_wg_wait_begin(&l->wg), dl, &l->tok);
        }
        if (st == CY_OK)
            atomic_fetch_add_explicit(&l->ok, 1, CY_RELAXED);
        else if (st == CY_CANCELLED)
            atomic_fetch_add_explicit(&l->cancelled, 1, CY_RELAXED);
        else if (st == CY_TIMEOUT)
            atomic_fetch_add_explicit(&l->timeouts, 1, CY_RELAXED);
        else
            atomic_fetch_add(&l->bad, 1);
        if (!token_idle(&l->tok))
            atomic_fetch_add(&l->bad, 1);
        /* every wake of every address it may have waited on, after it returned */
        (void)cy_sema_release(&l->s, 1, 1);
        cy_event_set(&l->e);
        cy_wake(&l->word, CY_WAKE_ALL);
        cy_wake(&l->wg.gen, CY_WAKE_ALL);
        /* the waker's move of this round is over before the token is reused */
        if (!cytest_await_at_least(&l->acked, r, 20)) {
            atomic_fetch_add(&l->bad, 1);
            break;
        }
        if (r % 4 == 3 && cy_wg_count(&l->wg) != 0)
            CHECK_EQ(cy_wg_add(&l->wg, -1), 0);
    }
    atomic_store(&l->stop, 1);
}

struct late {
    cy_sema *s;
    cy_cancel tok;
    int use_token;
    cy_status result;
};

static void *late_main(void *p)
{
    struct late *w = p;
    w->result = cyw_sema_acquire_ctx(w->s, cytest_deadline(10), w->use_token ? &w->tok : NULL);
    return NULL;
}

static void test_nothing_left_behind(void)
{
    struct leftover l;
    memset(&l, 0, sizeof l);
    cy_sema_init(&l.s, 0);
    cy_event_init(&l.e);
    cy_wg_init(&l.wg);
    cytest_parallel(2, leftover_thread, &l);
    CHECK_EQ(atomic_load(&l.bad), 0);
    cytest_note("%ld waits ended: %ld ok, %ld cancelled, %ld timed out", atomic_load(&l.ok) +
                atomic_load(&l.cancelled) + atomic_load(&l.timeouts), atomic_load(&l.ok),
                atomic_load(&l.cancelled), atomic_load(&l.timeouts));
    /* waiters still wake: two plain, two with a token, on one semaphore */
    (void)cy_sema_try_acquire(&l.s);
    CHECK_EQ(cy_sema_value(&l.s), 0);
    struct late w[4];
    cytest_thread th[4];
    for (int i = 0; i < 4; i++) {
        w[i].s = &l.s;
        w[i].use_token = i % 2;
        cy_cancel_init(&w[i].tok);
        w[i].result = CY_INTR;
        cytest_start(&th[i], late_main, &w[i]);
    }
    int64_t end = cytest_now_ns() + 10000000000LL;
    while (atomic_load(&l.s.nwaiters) < 4 && cytest_now_ns() < end)
        sched_yield();
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(cy_sema_release(&l.s, 1, CY_SEMA_MAX), 0);
        cytest_sleep_us(200);
    }
    for (int i = 0; i < 4; i++) {
        cytest_join(&th[i]);
        CHECK_EQ(w[i].result, CY_OK);
        CHECK(token_idle(&w[i].tok));
    }
    CHECK_EQ(cy_sema_value(&l.s), 0);
    CHECK_EQ(atomic_load(&l.s.nwaiters), 0);
}

static const cytest_case cases[] = {
    {"token_basics", test_token_basics, NULL},
    {"wait_addr_at_once", test_wait_addr_at_once, NULL},
    {"wait_timeout", test_wait_timeout, NULL},
    {"plain_and_table_waits", test_plain_and_table_waits, NULL},
    {"fire_and_wake_sleepers", test_fire_and_wake_sleepers, NULL},
    {"driver_on_intr", test_driver_on_intr, NULL},
    {"primitives_ctx", test_primitives_ctx, NULL},
    {"fires_racing_releases", test_fires_racing_releases, NULL},
    {"fires_racing_wsem", test_fires_racing_wsem, NULL},
    {"many_tokens_one_word", test_many_tokens_one_word, NULL},
    {"nothing_left_behind", test_nothing_left_behind, NULL},
};

int main(int argc, char **argv)
{
    return cytest_main(argc, argv, "cancel", cases, sizeof cases / sizeof cases[0]);
}
