/* test_chan.c - cy_chan: Go's channels and select (runtime/chan.go,
 * runtime/select.go; Go's chan_test.go and select tests are the model).
 * FIFO order, buffered and unbuffered; an unbuffered send blocks until a
 * receiver takes the value; close wakes every blocked sender and receiver;
 * buffered values outlive the close; select chooses uniformly among the
 * ready cases, never a nil-channel case, and leaves no node in any queue
 * when it times out or its token fires; many producers and consumers,
 * plain and through select, each value received exactly once; and the
 * "nothing lost" rule: every value a sender reports as sent is received
 * exactly once, and no other, while timeouts and cancels race the
 * hand-offs.  Values are opaque pointers: (void *)(uintptr_t)k, k >= 1. */
#include "cytest.h"
#include "cywait.h"

#include <stdlib.h>
#include <string.h>

#define V(k) ((void *)(uintptr_t)(k))
#define K(v) ((uintptr_t)(v))

static void **new_buf(uint32_t cap) { return cap ? malloc(cap * sizeof(void *)) : NULL; }

static void set_case(cy_case *c, cy_chan *ch, uint32_t dir, void *elem)
{
    memset(c, 0, sizeof *c);
    c->ch = ch;
    c->dir = dir;
    c->elem = elem;
}

/* ------------------------------------------------------------ one thread */

/* Random try_send / try_recv against a model ring, then close and drain. */
static void test_fifo_buffered(void)
{
    cytest_rng rng;
    cytest_rng_init(&rng, 2100);
    long steps = 20000 + cytest_n(200000);
    uintptr_t model[64];
    for (int round = 0; round < 8 && cytest_failures() == 0; round++) {
        uint32_t cap = 1 + (uint32_t)cytest_below(&rng, 8);
        if (round == 0)
            cap = 1;
        void **buf = new_buf(cap);
        cy_chan ch;
        cy_chan_init(&ch, buf, cap);
        uint32_t head = 0, len = 0;
        uintptr_t next = 1, expect_next = 1;
        for (long i = 0; i < steps / 8 && cytest_failures() == 0; i++) {
            if (cytest_below(&rng, 2)) {
                int r = cy_chan_try_send(&ch, V(next));
                if (len < cap) {
                    CHECK_EQ(r, 0);
                    model[(head + len) % cap] = next++;
                    len++;
                } else {
                    CHECK_EQ(r, CY_CHAN_BLOCK);
                }
            } else {
                void *v = V(12345);
                int r = cy_chan_try_recv(&ch, &v);
                if (len > 0) {
                    CHECK_EQ(r, 0);
                    CHECK_EQ(K(v), model[head]);
                    CHECK_EQ(K(v), expect_next);
                    expect_next++;
                    head = (head + 1) % cap;
                    len--;
                } else {
                    CHECK_EQ(r, CY_CHAN_BLOCK);
                    CHECK_EQ(K(v), 12345); /* untouched */
                }
            }
            CHECK_EQ(cy_chan_len(&ch), len);
        }
        /* closed: no more sends; what is buffered still comes out, in order */
        CHECK(!cy_chan_closed(&ch));
        CHECK_EQ(cy_chan_close(&ch), 0);
        CHECK(cy_chan_closed(&ch));
        CHECK_EQ(cy_chan_close(&ch), -1);
        CHECK_EQ(cy_chan_try_send(&ch, V(next)), CY_CHAN_CLOSED);
        CHECK_EQ(cy_chan_len(&ch), len);
        while (len > 0) {
            void *v = NULL;
            CHECK_EQ(cy_chan_try_recv(&ch, &v), 0);
            CHECK_EQ(K(v), expect_next);
            expect_next++;
            len--;
        }
        void *v = V(1);
        CHECK_EQ(cy_chan_try_recv(&ch, &v), CY_CHAN_CLOSED);
        CHECK(v == NULL);
        CHECK_EQ(cy_chan_drain(&ch, &v), 0);
        free(buf);
    }
    /* drain: the owner's teardown takes what is left, oldest first */
    void **buf = new_buf(3);
    cy_chan ch;
    cy_chan_init(&ch, buf, 3);
    CHECK_EQ(cy_chan_try_send(&ch, V(1)), 0);
    CHECK_EQ(cy_chan_try_send(&ch, V(2)), 0);
    void *v;
    CHECK_EQ(cy_chan_try_recv(&ch, &v), 0);
    CHECK_EQ(cy_chan_try_send(&ch, V(3)), 0);
    CHECK_EQ(cy_chan_try_send(&ch, V(4)), 0); /* wraps around */
    CHECK_EQ(cy_chan_close(&ch), 0);
    for (uintptr_t k = 2; k <= 4; k++) {
        CHECK_EQ(cy_chan_drain(&ch, &v), 1);
        CHECK_EQ(K(v), k);
    }
    CHECK_EQ(cy_chan_drain(&ch, &v), 0);
    CHECK_EQ(cy_chan_len(&ch), 0);
    free(buf);
}

static void test_double_close(void)
{
    cy_chan a, b;
    void **buf = new_buf(2);
    cy_chan_init(&a, NULL, 0);
    cy_chan_init(&b, buf, 2);
    CHECK_EQ(cy_chan_try_send(&b, V(1)), 0);
    CHECK_EQ(cy_chan_close(&a), 0);
    CHECK_EQ(cy_chan_close(&a), -1);
    CHECK_EQ(cy_chan_close(&b), 0);
    CHECK_EQ(cy_chan_close(&b), -1);
    CHECK_EQ(cy_chan_close(&b), -1);
    void *v;
    CHECK_EQ(cy_chan_try_recv(&b, &v), 0); /* the close changed nothing buffered */
    CHECK_EQ(K(v), 1);
    CHECK_EQ(cy_chan_try_recv(&a, &v), CY_CHAN_CLOSED);
    CHECK_EQ(cy_chan_try_recv(&b, &v), CY_CHAN_CLOSED);
    free(buf);
}

/* The blocking helpers on a closed channel: at once, ok == 0. */
static void test_closed_ops(void)
{
    cy_chan ch;
    void **buf = new_buf(2);
    cy_chan_init(&ch, buf, 2);
    CHECK_EQ(cy_chan_try_send(&ch, V(5)), 0);
    CHECK_EQ(cy_chan_close(&ch), 0);
    int ok = -1;
    void *v = NULL;
    CHECK_EQ(cyw_chan_send(&ch, V(6), cytest_deadline(10), NULL, &ok), CY_OK);
    CHECK_EQ(ok, 0);
    CHECK_EQ(cyw_chan_recv(&ch, &v, cytest_deadline(10), NULL, &ok), CY_OK);
    CHECK_EQ(ok, 1);
    CHECK_EQ(K(v), 5);
    CHECK_EQ(cyw_chan_recv(&ch, &v, cytest_deadline(10), NULL, &ok), CY_OK);
    CHECK_EQ(ok, 0);
    CHECK(v == NULL);
    /* a closed case is ready: a select picks it with ok == 0 */
    cy_case cs[2];
    cy_select s;
    cy_chan never;
    cy_chan_init(&never, NULL, 0);
    set_case(&cs[0], &never, CY_CASE_RECV, NULL);
    set_case(&cs[1], &ch, CY_CASE_SEND, V(7));
    CHECK_EQ(cyw_select(cs, 2, cytest_deadline(10), NULL, &s), CY_OK);
    CHECK_EQ(s.chosen, 1);
    CHECK_EQ(s.ok, 0);
    CHECK(s.value == NULL);
    set_case(&cs[1], &ch, CY_CASE_RECV, NULL);
    CHECK_EQ(cyw_select(cs, 2, cytest_deadline(10), NULL, &s), CY_OK);
    CHECK_EQ(s.chosen, 1);
    CHECK_EQ(s.ok, 0);
    CHECK(cyw_chan_queues_empty(&never));
    free(buf);
}

/* ------------------------------------------------- unbuffered hand-offs */

struct handoff {
    cy_chan ch;
    uintptr_t k;
    int dir; /* CY_CASE_SEND: the thread sends k; CY_CASE_RECV: it receives */
    _Atomic int done;
    int result, ok;
    void *got;
};

static void *handoff_main(void *p)
{
    struct handoff *h = p;
    if (h->dir == CY_CASE_SEND)
        h->result = cyw_chan_send(&h->ch, V(h->k), cytest_deadline(10), NULL, &h->ok);
    else
        h->result = cyw_chan_recv(&h->ch, &h->got, cytest_deadline(10), NULL, &h->ok);
    atomic_store(&h->done, 1);
    return NULL;
}

static int await_queued(cy_chan *ch, uint32_t dir, int n)
{
    int64_t end = cytest_now_ns() + 10000000000LL;
    while (cyw_chan_queued(ch, dir) < n) {
        if (cytest_now_ns() > end)
            return 0;
        sched_yield();
    }
    return 1;
}

static void test_unbuffered_send_blocks(void)
{
    for (int round = 0; round < 10; round++) {
        struct handoff h;
        memset(&h, 0, sizeof h);
        cy_chan_init(&h.ch, NULL, 0);
        h.k = 100 + (uintptr_t)round;
        h.dir = round % 2 ? CY_CASE_RECV : CY_CASE_SEND;
        void *v = NULL;
        CHECK_EQ(cy_chan_try_send(&h.ch, V(1)), CY_CHAN_BLOCK);
        CHECK_EQ(cy_chan_try_recv(&h.ch, &v), CY_CHAN_BLOCK);
        cytest_thread th;
        cytest_start(&th, handoff_main, &h);
        CHECK(await_queued(&h.ch, (uint32_t)h.dir, 1));
        cytest_sleep_us(30000);
        CHECK_MSG(!atomic_load(&h.done), "an unbuffered %s returned without a partner",
                  h.dir == CY_CASE_SEND ? "send" : "receive");
        CHECK_EQ(cy_chan_len(&h.ch), 0);
        /* the partner blocks too, briefly: on the sliced backends the waiter
         * may be between two attempts this instant (see
         * paused_partner_keeps_its_place) */
        int ok = 0;
        if (h.dir == CY_CASE_SEND) {
            CHECK_EQ(cy_chan_try_send(&h.ch, V(1)), CY_CHAN_BLOCK); /* a sender is no receiver */
            CHECK_EQ(cyw_chan_recv(&h.ch, &v, cytest_deadline(10), NULL, &ok), CY_OK);
            CHECK_EQ(K(v), h.k);
        } else {
            CHECK_EQ(cy_chan_try_recv(&h.ch, &v), CY_CHAN_BLOCK);
            CHECK_EQ(cyw_chan_send(&h.ch, V(h.k), cytest_deadline(10), NULL, &ok), CY_OK);
        }
        CHECK_EQ(ok, 1);
        cytest_join(&th);
        CHECK_EQ(h.result, CY_OK);
        CHECK_EQ(h.ok, 1);
        if (h.dir == CY_CASE_RECV)
            CHECK_EQ(K(h.got), h.k);
        CHECK(cyw_chan_queues_empty(&h.ch));
    }
}

/* One producer sends 1..n, one consumer receives them, in that order;
 * unbuffered and buffered. */
struct order {
    cy_chan ch;
    long n;
    int producers;
    _Atomic long bad;
};

static void order_thread(void *ctx, int id)
{
    struct order *o = ctx;
    if (id < o->producers) {
        for (long i = 1; i <= o->n; i++) {
            int ok;
            uintptr_t k = (uintptr_t)id * (uintptr_t)o->n + (uintptr_t)i;
            if (cyw_chan_send(&o->ch, V(k), cytest_deadline(20), NULL, &ok) != CY_OK || !ok)
                atomic_fetch_add(&o->bad, 1);
        }
        return;
    }
    uintptr_t last[4] = {0, 0, 0, 0};
    for (long i = 0; i < o->n * o->producers; i++) {
        void *v;
        int ok;
        if (cyw_chan_recv(&o->ch, &v, cytest_deadline(20), NULL, &ok) != CY_OK || !ok) {
            atomic_fetch_add(&o->bad, 1);
            return;
        }
        uintptr_t k = K(v);
        int p = (int)((k - 1) / (uintptr_t)o->n);
        CHECK_MSG(p >= 0 && p < o->producers && k > last[p], "value %lu after %lu", (unsigned long)k,
                  (unsigned long)last[p & 3]);
        last[p & 3] = k;
    }
}

static void test_fifo_threads(void)
{
    for (uint32_t cap = 0; cap <= 4; cap += 4) {
        for (int producers = 1; producers <= 3; producers += 2) {
            struct order o;
            memset(&o, 0, sizeof o);
            void **buf = new_buf(cap);
            cy_chan_init(&o.ch, buf, cap);
            o.n = cytest_n(20000);
            o.producers = producers;
            cytest_parallel(producers + 1, order_thread, &o);
            CHECK_EQ(atomic_load(&o.bad), 0);
            CHECK(cyw_chan_queues_empty(&o.ch));
            CHECK_EQ(cy_chan_len(&o.ch), 0);
            free(buf);
        }
    }
}

/* ------------------------------------------------------------- close */

struct closer {
    cy_chan sch, rch, bch, x; /* senders block on sch (unbuffered) and bch
                                 (buffered, full); receivers on rch; a select
                                 on rch and x */
    _Atomic int results[3][8];
    _Atomic long bad;
};

static void closer_thread(void *ctx, int id)
{
    struct closer *c = ctx;
    int group = id / 8, i = id % 8, ok = -1, r;
    void *v = V(99);
    int64_t dl = cytest_deadline(10);
    if (group == 0) {
        r = cyw_chan_send(i % 2 ? &c->sch : &c->bch, V(1000 + id), dl, NULL, &ok);
        if (r != CY_OK || ok != 0) /* closed: the sender keeps its value */
            atomic_fetch_add(&c->bad, 1);
    } else if (group == 1) {
        r = cyw_chan_recv(&c->rch, &v, dl, NULL, &ok);
        if (r != CY_OK || ok != 0 || v != NULL)
            atomic_fetch_add(&c->bad, 1);
    } else {
        cy_case cs[2];
        cy_select s;
        set_case(&cs[0], &c->x, CY_CASE_RECV, NULL);
        set_case(&cs[1], &c->rch, CY_CASE_RECV, NULL);
        r = cyw_select(cs, 2, dl, NULL, &s);
        if (r != CY_OK || s.chosen != 1 || s.ok != 0 || s.value != NULL)
            atomic_fetch_add(&c->bad, 1);
    }
    atomic_store(&c->results[group][i], 1);
}

static void *close_driver(void *p)
{
    struct closer *c = p;
    /* everyone blocked: 4 + 4 senders, 8 receivers, 8 selects (on rch too) */
    CHECK(await_queued(&c->sch, CY_CASE_SEND, 4));
    CHECK(await_queued(&c->bch, CY_CASE_SEND, 4));
    CHECK(await_queued(&c->rch, CY_CASE_RECV, 16));
    CHECK(await_queued(&c->x, CY_CASE_RECV, 8));
    cytest_sleep_us(1000);
    CHECK_EQ(cy_chan_close(&c->sch), 0);
    CHECK_EQ(cy_chan_close(&c->bch), 0);
    CHECK_EQ(cy_chan_close(&c->rch), 0);
    return NULL;
}

static void test_close_wakes_all(void)
{
    for (long round = 0; round < cytest_n(200) + 2; round++) {
        struct closer c;
        memset(&c, 0, sizeof c);
        void **buf = new_buf(2);
        cy_chan_init(&c.sch, NULL, 0);
        cy_chan_init(&c.rch, NULL, 0);
        cy_chan_init(&c.x, NULL, 0);
        cy_chan_init(&c.bch, buf, 2);
        CHECK_EQ(cy_chan_try_send(&c.bch, V(1)), 0);
        CHECK_EQ(cy_chan_try_send(&c.bch, V(2)), 0);
        cytest_thread drv;
        cytest_start(&drv, close_driver, &c);
        cytest_parallel(24, closer_thread, &c);
        cytest_join(&drv);
        CHECK_EQ(atomic_load(&c.bad), 0);
        CHECK(cyw_chan_queues_empty(&c.sch));
        CHECK(cyw_chan_queues_empty(&c.rch));
        CHECK(cyw_chan_queues_empty(&c.bch));
        CHECK(cyw_chan_queues_empty(&c.x)); /* the selects left x's queue too */
        /* buffered values are still delivered after the close, in order */
        void *v = NULL;
        int ok;
        CHECK_EQ(cyw_chan_recv(&c.bch, &v, cytest_deadline(1), NULL, &ok), CY_OK);
        CHECK(ok == 1 && K(v) == 1);
        CHECK_EQ(cy_chan_try_recv(&c.bch, &v), 0);
        CHECK_EQ(K(v), 2);
        CHECK_EQ(cyw_chan_recv(&c.bch, &v, cytest_deadline(1), NULL, &ok), CY_OK);
        CHECK(ok == 0 && v == NULL);
        CHECK_EQ(cy_chan_try_send(&c.sch, V(3)), CY_CHAN_CLOSED);
        CHECK_EQ(cy_chan_try_recv(&c.rch, &v), CY_CHAN_CLOSED);
        CHECK_EQ(cy_chan_try_send(&c.x, V(3)), CY_CHAN_BLOCK); /* nobody waits on x */
        free(buf);
        if (cytest_failures())
            break;
    }
}

/* ------------------------------------------------------------- select */

/* Every ready case equally likely (Go: uniform pseudo-random choice). */
static void test_select_uniform(void)
{
    enum { NC = 4 };
    long n = 4000 + cytest_n(40000);
    cy_chan ch[NC];
    void **buf[NC];
    cy_chan nil_ready; /* ready, but only behind a NULL case: never chosen */
    cy_chan_init(&nil_ready, NULL, 0);
    for (int mix = 0; mix < 2; mix++) {
        /* mix 0: four receive cases, each channel holding a value;
         * mix 1: two receives from full channels, two sends to empty ones */
        long count[NC + 2] = {0};
        for (int i = 0; i < NC; i++) {
            buf[i] = new_buf(1);
            cy_chan_init(&ch[i], buf[i], 1);
            if (mix == 0 || i < 2)
                CHECK_EQ(cy_chan_try_send(&ch[i], V(i + 1)), 0);
        }
        cy_case cs[NC + 2];
        for (int i = 0; i < NC; i++)
            set_case(&cs[i], &ch[i], mix == 1 && i >= 2 ? CY_CASE_SEND : CY_CASE_RECV, V(10 + i));
        set_case(&cs[NC], NULL, CY_CASE_RECV, NULL);
        set_case(&cs[NC + 1], NULL, CY_CASE_SEND, V(77));
        cy_chan *locks[NC + 2];
        cy_select s;
        cy_select_init(&s, cs, NC + 2, locks);
        CHECK_EQ(s.nlocks, NC);
        for (long i = 0; i < n && cytest_failures() == 0; i++) {
            /* half through cy_select_try, half through the blocking op */
            int r = i % 2 ? cy_select_try(&s)
                          : cyw_wait(&cy_select_wait_op, &s, 0, cytest_deadline(10), NULL);
            CHECK_EQ(r, CY_OK);
            CHECK(s.chosen < NC);
            count[s.chosen]++;
            CHECK_EQ(s.ok, 1);
            cy_chan *c = &ch[s.chosen];
            void *v;
            if (cs[s.chosen].dir == CY_CASE_RECV) { /* put the value back */
                CHECK_EQ(K(s.value), s.chosen + 1);
                CHECK_EQ(cy_chan_try_send(c, s.value), 0);
            } else { /* take the value out again */
                CHECK(s.value == NULL);
                CHECK_EQ(cy_chan_try_recv(c, &v), 0);
                CHECK_EQ(K(v), 10 + s.chosen);
            }
        }
        double expect = (double)n / NC;
        for (int i = 0; i < NC; i++)
            CHECK_MSG(count[i] > expect * 0.75 && count[i] < expect * 1.25,
                      "mix %d: case %d chosen %ld times of %ld (expected about %.0f)", mix, i, count[i], n,
                      expect);
        CHECK_EQ(count[NC] + count[NC + 1], 0);
        cytest_note("mix %d: %ld selects over 4 ready cases: %ld %ld %ld %ld", mix, n, count[0], count[1],
                    count[2], count[3]);
        for (int i = 0; i < NC; i++)
            free(buf[i]);
    }
}

/* A NULL channel's case never fires: alone it blocks until the deadline
 * (or the token), next to a ready case it is never chosen. */
static void test_select_nil_case(void)
{
    cy_case cs[3];
    cy_select s;
    cy_chan ch;
    void **buf = new_buf(1);
    cy_chan_init(&ch, buf, 1);
    set_case(&cs[0], NULL, CY_CASE_RECV, NULL);
    set_case(&cs[1], NULL, CY_CASE_SEND, V(1));
    int64_t dl = cytest_deadline(0.02);
    CHECK_EQ(cyw_select(cs, 2, dl, NULL, &s), CY_TIMEOUT);
    CHECK(cy_now_ns() >= dl);
    CHECK_EQ(cyw_select(cs, 2, cy_now_ns() - 1, NULL, &s), CY_TIMEOUT); /* a poll */
    CHECK_EQ(cyw_select(cs, 0, cy_now_ns() - 1, NULL, &s), CY_TIMEOUT);  /* select {} with a deadline */
    cy_cancel c;
    cy_cancel_init(&c);
    cy_cancel_fire(&c);
    CHECK_EQ(cyw_select(cs, 2, cytest_deadline(10), &c, &s), CY_CANCELLED);
    set_case(&cs[2], &ch, CY_CASE_SEND, V(5));
    for (int i = 0; i < 200; i++) {
        CHECK_EQ(cyw_select(cs, 3, cytest_deadline(10), NULL, &s), CY_OK);
        CHECK_EQ(s.chosen, 2);
        void *v;
        CHECK_EQ(cy_chan_try_recv(&ch, &v), 0);
        CHECK_EQ(K(v), 5);
    }
    free(buf);
}

/* Timed-out selects leave no node in any queue: afterwards an unbuffered
 * try_send finds no receiver, a try_recv no sender. */
static void test_select_timeout_no_trace(void)
{
    cytest_rng rng;
    cytest_rng_init(&rng, 2200);
    cy_chan a, b, c;
    void **buf = new_buf(2);
    cy_chan_init(&a, NULL, 0);
    cy_chan_init(&b, NULL, 0);
    cy_chan_init(&c, buf, 2);
    void *v;
    int ok;
    long rounds = 50 + cytest_n(2000);
    for (long i = 0; i < rounds && cytest_failures() == 0; i++) {
        /* tiny deadlines, past ones, and some long enough to park */
        double t = i % 50 == 0 ? 0.005 : 1e-6 * (double)cytest_below(&rng, 100) - 1e-5;
        int64_t dl = cytest_deadline(t);
        int r;
        switch (i % 3) {
        case 0:
            r = cyw_chan_recv(&a, &v, dl, NULL, &ok);
            CHECK(v == NULL && !ok);
            break;
        case 1:
            r = cyw_chan_send(&a, V(1), dl, NULL, &ok);
            CHECK(!ok);
            break;
        default: {
            cy_case cs[4];
            cy_select s;
            set_case(&cs[0], &a, CY_CASE_RECV, NULL);
            set_case(&cs[1], &b, CY_CASE_SEND, V(2));
            set_case(&cs[2], &c, CY_CASE_RECV, NULL);
            set_case(&cs[3], &a, CY_CASE_SEND, V(3)); /* both ways on a: cannot pair with itself */
            r = cyw_select(cs, 4, dl, NULL, &s);
        }
        }
        CHECK_EQ(r, CY_TIMEOUT);
        CHECK(cyw_chan_queues_empty(&a));
        CHECK(cyw_chan_queues_empty(&b));
        CHECK(cyw_chan_queues_empty(&c));
        CHECK_EQ(cy_chan_try_send(&a, V(4)), CY_CHAN_BLOCK);
        CHECK_EQ(cy_chan_try_recv(&a, &v), CY_CHAN_BLOCK);
        CHECK_EQ(cy_chan_try_recv(&b, &v), CY_CHAN_BLOCK);
    }
    free(buf);
}

/* A select blocked on three channels, its token fired from another thread:
 * CY_CANCELLED, no node left, nothing moved. */
struct csel {
    cy_chan a, b, c;
    cy_cancel tok;
    int result;
};

static void *csel_main(void *p)
{
    struct csel *x = p;
    cy_case cs[3];
    cy_select s;
    set_case(&cs[0], &x->a, CY_CASE_RECV, NULL);
    set_case(&cs[1], &x->b, CY_CASE_SEND, V(8));
    set_case(&cs[2], &x->c, CY_CASE_RECV, NULL);
    x->result = cyw_select(cs, 3, cytest_deadline(10), &x->tok, &s);
    return NULL;
}

static void test_select_cancel_no_trace(void)
{
    for (int round = 0; round < 40; round++) {
        struct csel x;
        memset(&x, 0, sizeof x);
        void **buf = new_buf(1);
        cy_chan_init(&x.a, NULL, 0);
        cy_chan_init(&x.b, NULL, 0);
        cy_chan_init(&x.c, buf, 1);
        cy_cancel_init(&x.tok);
        cytest_thread th;
        cytest_start(&th, csel_main, &x);
        CHECK(await_queued(&x.a, CY_CASE_RECV, 1));
        CHECK(await_queued(&x.b, CY_CASE_SEND, 1));
        CHECK(await_queued(&x.c, CY_CASE_RECV, 1));
        if (round % 2)
            cytest_sleep_us(500);
        cy_cancel_fire(&x.tok);
        cytest_join(&th);
        CHECK_EQ(x.result, CY_CANCELLED);
        CHECK(cyw_chan_queues_empty(&x.a));
        CHECK(cyw_chan_queues_empty(&x.b));
        CHECK(cyw_chan_queues_empty(&x.c));
        void *v;
        CHECK_EQ(cy_chan_try_send(&x.a, V(1)), CY_CHAN_BLOCK);
        CHECK_EQ(cy_chan_try_recv(&x.b, &v), CY_CHAN_BLOCK);
        CHECK_EQ(cy_chan_try_send(&x.c, V(1)), 0); /* into the buffer: no receiver took it */
        CHECK_EQ(cy_chan_len(&x.c), 1);
        free(buf);
    }
}

/* A cancel racing a hand-off: the receive either got the value (and the
 * sender saw it taken) or was cancelled (and the sender found nobody).
 * Three threads, round after round: 0 receives with a token, 1 fires it
 * while 2 tries to send. */
struct spinbar {
    _Atomic long count, gen;
    long n;
};

/* A spinning barrier for n threads, reusable. */
static void spinbar_wait(struct spinbar *b)
{
    long g = atomic_load(&b->gen);
    if (atomic_fetch_add(&b->count, 1) + 1 == b->n) {
        atomic_store(&b->count, 0);
        atomic_fetch_add(&b->gen, 1);
    } else {
        while (atomic_load(&b->gen) == g)
            sched_yield();
    }
}

struct crace {
    cy_chan ch;
    cy_cancel tok;
    struct spinbar bar;
    long rounds;
    _Atomic long go;
    int result, ok, sent;
    void *got;
    long taken, cancelled;
};

static void crace_thread(void *ctx, int id)
{
    struct crace *x = ctx;
    for (long r = 0; r < x->rounds; r++) {
        uintptr_t k = 1 + (uintptr_t)r;
        if (id == 0) {
            cy_chan_init(&x->ch, NULL, 0);
            cy_cancel_init(&x->tok);
            x->got = NULL;
        }
        spinbar_wait(&x->bar);
        if (id == 0) {
            x->result = cyw_chan_recv(&x->ch, &x->got, cytest_deadline(10), &x->tok, &x->ok);
        } else {
            if (!await_queued(&x->ch, CY_CASE_RECV, 1))
                CHECK(!"the receiver never queued");
            /* the two go at the same instant */
            atomic_fetch_add(&x->go, 1);
            for (int i = 0; atomic_load(&x->go) < 2 * (r + 1); i++)
                if (i % 64 == 63)
                    sched_yield();
                else
                    cy_cpu_relax();
            if (id == 1)
                cy_cancel_fire(&x->tok);
            else
                x->sent = cy_chan_try_send(&x->ch, V(k));
        }
        spinbar_wait(&x->bar);
        if (id == 0) {
            if (x->sent == 0) {
                x->taken++;
                CHECK_EQ(x->result, CY_OK);
                CHECK_EQ(x->ok, 1);
                CHECK_EQ(K(x->got), k);
            } else {
                x->cancelled++;
                CHECK_EQ(x->sent, CY_CHAN_BLOCK);
                CHECK_EQ(x->result, CY_CANCELLED);
                CHECK(x->got == NULL && !x->ok);
            }
            CHECK(cyw_chan_queues_empty(&x->ch));
        }
    }
}

static void test_cancel_racing_handoff(void)
{
    struct crace x;
    memset(&x, 0, sizeof x);
    x.bar.n = 3;
    x.rounds = 20 + cytest_n(5000);
    cytest_parallel(3, crace_thread, &x);
    cytest_note("%ld races: %ld values taken, %ld receives cancelled", x.rounds, x.taken, x.cancelled);
}

/* ------------------------------------------------------ send and receive */

/* A select with a send and a receive case on the same channel. */
struct sr {
    cy_chan ch;
    struct spinbar bar;
    long rounds;
    uint32_t chosen[2];
    uintptr_t got[2];
    _Atomic long bad, sends[2];
};

static void sr_thread(void *ctx, int id)
{
    struct sr *x = ctx;
    for (long r = 0; r < x->rounds; r++) {
        spinbar_wait(&x->bar); /* both start the round together */
        cy_case cs[2];
        cy_select s;
        set_case(&cs[0], &x->ch, CY_CASE_SEND, V(1 + id));
        set_case(&cs[1], &x->ch, CY_CASE_RECV, NULL);
        int rc = cyw_select(cs, 2, cytest_deadline(10), NULL, &s);
        x->chosen[id] = rc == CY_OK && s.ok ? s.chosen : 9;
        x->got[id] = K(s.value);
        spinbar_wait(&x->bar); /* both done before one checks */
        if (id == 0) {
            int ok;
            if (x->chosen[0] == 0) /* 0 sent, 1 received its value */
                ok = x->chosen[1] == 1 && x->got[1] == 1 && x->got[0] == 0;
            else
                ok = x->chosen[0] == 1 && x->chosen[1] == 0 && x->got[0] == 2 && x->got[1] == 0;
            if (!ok) {
                atomic_fetch_add(&x->bad, 1);
                cytest_note("round %ld: chosen %u %u, got %lu %lu", r, x->chosen[0], x->chosen[1],
                            (unsigned long)x->got[0], (unsigned long)x->got[1]);
            }
            atomic_fetch_add(&x->sends[x->chosen[0] == 0 ? 0 : 1], 1);
        }
    }
}

static void test_select_send_recv_same_channel(void)
{
    /* alone, it cannot pair with itself */
    cy_chan ch;
    cy_chan_init(&ch, NULL, 0);
    cy_case cs[2];
    cy_select s;
    set_case(&cs[0], &ch, CY_CASE_SEND, V(1));
    set_case(&cs[1], &ch, CY_CASE_RECV, NULL);
    CHECK_EQ(cyw_select(cs, 2, cytest_deadline(0.01), NULL, &s), CY_TIMEOUT);
    CHECK(cyw_chan_queues_empty(&ch));
    /* buffered: empty, only the send is ready; full, only the receive */
    void **buf = new_buf(1);
    cy_chan b;
    cy_chan_init(&b, buf, 1);
    set_case(&cs[0], &b, CY_CASE_SEND, V(1));
    set_case(&cs[1], &b, CY_CASE_RECV, NULL);
    for (int i = 0; i < 50; i++) {
        CHECK_EQ(cyw_select(cs, 2, cytest_deadline(1), NULL, &s), CY_OK);
        CHECK_EQ(s.chosen, 0);
        CHECK_EQ(cyw_select(cs, 2, cytest_deadline(1), NULL, &s), CY_OK);
        CHECK_EQ(s.chosen, 1);
        CHECK_EQ(K(s.value), 1);
    }
    free(buf);
    /* two threads, each with both cases on one unbuffered channel: one
     * sends, the other receives its value */
    struct sr x;
    memset(&x, 0, sizeof x);
    cy_chan_init(&x.ch, NULL, 0);
    x.rounds = 20 + cytest_n(5000);
    x.bar.n = 2;
    cytest_parallel(2, sr_thread, &x);
    CHECK_EQ(atomic_load(&x.bad), 0);
    CHECK(cyw_chan_queues_empty(&x.ch));
    cytest_note("%ld rounds: thread 0 sent %ld times, thread 1 %ld times", x.rounds, atomic_load(&x.sends[0]),
                atomic_load(&x.sends[1]));
}

/* ------------------------------------------------ many producers, consumers */

#define MAXP 16

struct mpmc {
    cy_chan ch[4];
    int nch; /* 1: plain sends and receives on ch[0]; 4: selects over all four */
    int producers;
    long per;
    _Atomic unsigned char *seen;
    _Atomic int producers_left;
    _Atomic long received, bad;
};

static void mpmc_thread(void *ctx, int id)
{
    struct mpmc *m = ctx;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 2300);
    if (id < m->producers) {
        for (long i = 0; i < m->per; i++) {
            uintptr_t k = (uintptr_t)id * (uintptr_t)m->per + (uintptr_t)i + 1;
            int r, ok;
            if (m->nch == 1 || (id % 2 == 1 && i % 2 == 1)) {
                r = cyw_chan_send(&m->ch[m->nch == 1 ? 0 : k % 4], V(k), cytest_deadline(20), NULL, &ok);
            } else {
                cy_case cs[4];
                cy_select s;
                for (int c = 0; c < 4; c++)
                    set_case(&cs[c], &m->ch[c], CY_CASE_SEND, V(k));
                r = cyw_select(cs, 4, cytest_deadline(20), NULL, &s);
                ok = s.ok;
                CHECK(s.value == NULL);
            }
            if (r != CY_OK || !ok) {
                atomic_fetch_add(&m->bad, 1);
                cytest_note("producer %d: send of %lu: %d, ok %d", id, (unsigned long)k, r, ok);
                break;
            }
            if ((i & 255) == 0)
                sched_yield();
        }
        if (atomic_fetch_sub(&m->producers_left, 1) == 1)
            for (int c = 0; c < m->nch; c++)
                CHECK_EQ(cy_chan_close(&m->ch[c]), 0);
        return;
    }
    uintptr_t last[MAXP] = {0};
    cy_case cs[4];
    int active = m->nch;
    for (int c = 0; c < 4; c++)
        set_case(&cs[c], &m->ch[c], CY_CASE_RECV, NULL);
    for (;;) {
        void *v;
        int r, ok;
        if (m->nch == 1) {
            r = cyw_chan_recv(&m->ch[0], &v, cytest_deadline(20), NULL, &ok);
        } else {
            cy_select s;
            r = cyw_select(cs, 4, cytest_deadline(20), NULL, &s);
            ok = s.ok;
            v = s.value;
            if (r == CY_OK && !ok) { /* closed and drained: from now on a nil channel */
                cs[s.chosen].ch = NULL;
                if (--active > 0)
                    continue;
            }
        }
        if (r != CY_OK) {
            atomic_fetch_add(&m->bad, 1);
            cytest_note("consumer %d: receive: %d", id, r);
            return;
        }
        if (!ok)
            return;
        uintptr_t k = K(v);
        if (k < 1 || k > (uintptr_t)(m->producers * m->per)) {
            atomic_fetch_add(&m->bad, 1);
            continue;
        }
        if (atomic_fetch_add(&m->seen[k], 1) != 0)
            atomic_fetch_add(&m->bad, 1); /* received twice */
        atomic_fetch_add_explicit(&m->received, 1, CY_RELAXED);
        /* one channel is FIFO: each consumer sees each producer's values in order */
        int p = (int)((k - 1) / (uintptr_t)m->per);
        if (m->nch == 1) {
            CHECK_MSG(k > last[p], "consumer %d: %lu after %lu", id, (unsigned long)k,
                      (unsigned long)last[p]);
            last[p] = k;
        }
    }
}

static void run_mpmc(int producers, int consumers, int nch, const uint32_t *caps, long per)
{
    struct mpmc m;
    void **bufs[4];
    memset(&m, 0, sizeof m);
    m.nch = nch;
    m.producers = producers;
    m.per = per;
    long total = producers * per;
    m.seen = calloc((size_t)total + 1, sizeof *m.seen);
    for (int c = 0; c < 4; c++) {
        bufs[c] = new_buf(caps[c]);
        cy_chan_init(&m.ch[c], bufs[c], caps[c]);
    }
    atomic_store(&m.producers_left, producers);
    cytest_parallel(producers + consumers, mpmc_thread, &m);
    CHECK_EQ(atomic_load(&m.bad), 0);
    CHECK_EQ(atomic_load(&m.received), total);
    long missing = 0;
    for (long k = 1; k <= total; k++)
        missing += atomic_load(&m.seen[k]) != 1;
    CHECK_MSG(missing == 0, "%ld values not received exactly once", missing);
    for (int c = 0; c < nch; c++) {
        CHECK(cyw_chan_queues_empty(&m.ch[c]));
        CHECK_EQ(cy_chan_len(&m.ch[c]), 0);
    }
    cytest_note("%d producers x %ld values, %d consumers, %d channel%s (caps %u %u %u %u): each received "
                "once",
                producers, per, consumers, nch, nch > 1 ? "s, selects" : "", caps[0], nch > 1 ? caps[1] : 0,
                nch > 1 ? caps[2] : 0, nch > 1 ? caps[3] : 0);
    for (int c = 0; c < 4; c++)
        free(bufs[c]);
    free((void *)m.seen);
}

static const uint32_t caps_unbuffered[4] = {0, 0, 0, 0};
static const uint32_t caps_buffered[4] = {16, 0, 0, 0};
static const uint32_t caps_mixed[4] = {0, 1, 4, 0};

static void test_mpmc_unbuffered(void) { run_mpmc(8, 8, 1, caps_unbuffered, cytest_n(20000)); }
static void test_mpmc_buffered(void) { run_mpmc(8, 8, 1, caps_buffered, cytest_n(20000)); }
static void test_mpmc_select(void) { run_mpmc(8, 8, 4, caps_mixed, cytest_n(20000)); }
static void test_mpmc_select_unbuffered(void) { run_mpmc(6, 3, 4, caps_unbuffered, cytest_n(10000)); }

/* ------------------------------------------------------- nothing lost */

/* Senders and receivers with tiny deadlines (or tokens that a controller
 * fires) race each other.  Every attempt sends a value of its own: the
 * values a sender reports as sent (CY_OK, ok == 1) must be received exactly
 * once, and no other value at all (a send that timed out or was cancelled
 * moved nothing). */
#define TRIES 16
#define LT 8

struct lost {
    cy_chan ch[2];
    int senders, receivers, use_select, tok_side; /* tok_side 1: receivers, 2: senders */
    long per;
    _Atomic unsigned char *status; /* per attempt: 1 when reported sent */
    _Atomic unsigned char *seen;
    cy_cancel tok[2 * LT];
    _Atomic int tok_live[2 * LT];
    _Atomic int senders_left, workers_left;
    _Atomic long sent, received, timeouts, cancels, bad;
};

static cy_cancel *lost_token(struct lost *l, int id)
{
    cy_cancel_init(&l->tok[id]);
    atomic_store(&l->tok_live[id], 1);
    return &l->tok[id];
}

static void lost_token_done(struct lost *l, int id)
{
    int one = 1;
    while (!atomic_compare_exchange_weak(&l->tok_live[id], &one, 0))
        one = 1;
}

static void lost_thread(void *ctx, int id)
{
    struct lost *l = ctx;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 2400);
    int nthreads = l->senders + l->receivers;
    if (id == nthreads) { /* the controller */
        while (atomic_load(&l->workers_left) > 0) {
            int k = (int)cytest_below(&rng, (uint64_t)nthreads);
            int one = 1;
            if (atomic_compare_exchange_strong(&l->tok_live[k], &one, 2)) {
                cy_cancel_fire(&l->tok[k]);
                atomic_store(&l->tok_live[k], 1);
            }
            cytest_spin((unsigned)cytest_below(&rng, 200));
            if (cytest_below(&rng, 16) == 0)
                sched_yield();
        }
        return;
    }
    /* between operations: a little work, more on the side without tokens
     * (so that the side with tokens has to wait, and be cancelled) */
    unsigned pause = l->tok_side == 0 ? 300 : (l->tok_side == 1) == (id < l->senders) ? 3000 : 50;
    if (id < l->senders) {
        for (long i = 0; i < l->per; i++) {
            cytest_spin((unsigned)cytest_below(&rng, pause));
            int t;
            for (t = 0; t < TRIES; t++) {
                uintptr_t a = (((uintptr_t)id * (uintptr_t)l->per + (uintptr_t)i) * TRIES + (uintptr_t)t) + 1;
                int last = t == TRIES - 1;
                int64_t dl = cytest_deadline(last ? 20 : 1e-6 * (double)cytest_below(&rng, 30));
                cy_cancel *tok = NULL;
                if (l->tok_side == 2 && !last) {
                    tok = lost_token(l, id);
                    dl = cytest_deadline(20);
                }
                int r, ok;
                if (l->use_select) {
                    cy_case cs[2];
                    cy_select s;
                    set_case(&cs[0], &l->ch[0], CY_CASE_SEND, V(a));
                    set_case(&cs[1], &l->ch[1], CY_CASE_SEND, V(a));
                    r = cyw_select(cs, 2, dl, tok, &s);
                    ok = r == CY_OK && s.ok;
                } else {
                    r = cyw_chan_send(&l->ch[0], V(a), dl, tok, &ok);
                }
                if (tok)
                    lost_token_done(l, id);
                if (r == CY_OK && ok) {
                    atomic_store(&l->status[a], 1);
                    atomic_fetch_add(&l->sent, 1);
                    break;
                }
                if (r == CY_TIMEOUT)
                    atomic_fetch_add_explicit(&l->timeouts, 1, CY_RELAXED);
                else if (r == CY_CANCELLED)
                    atomic_fetch_add_explicit(&l->cancels, 1, CY_RELAXED);
                else
                    atomic_fetch_add(&l->bad, 1);
            }
            if (t == TRIES)
                atomic_fetch_add(&l->bad, 1); /* 20 s without a receiver */
        }
        atomic_fetch_sub(&l->senders_left, 1);
        atomic_fetch_sub(&l->workers_left, 1);
        return;
    }
    int64_t end = cytest_now_ns() + 60000000000LL;
    for (;;) {
        if (atomic_load(&l->senders_left) == 0 && atomic_load(&l->received) == atomic_load(&l->sent))
            break;
        if (cytest_now_ns() > end) {
            atomic_fetch_add(&l->bad, 1);
            break;
        }
        cytest_spin((unsigned)cytest_below(&rng, pause));
        int64_t dl = cytest_deadline(1e-6 * (double)cytest_below(&rng, 30));
        cy_cancel *tok = NULL;
        if (l->tok_side == 1) {
            tok = lost_token(l, id);
            dl = cytest_deadline(0.05); /* then look at the counts again */
        }
        void *v = NULL;
        int r, ok;
        if (l->use_select) {
            cy_case cs[2];
            cy_select s;
            set_case(&cs[0], &l->ch[0], CY_CASE_RECV, NULL);
            set_case(&cs[1], &l->ch[1], CY_CASE_RECV, NULL);
            r = cyw_select(cs, 2, dl, tok, &s);
            ok = r == CY_OK && s.ok;
            v = s.value;
        } else {
            r = cyw_chan_recv(&l->ch[0], &v, dl, tok, &ok);
        }
        if (tok)
            lost_token_done(l, id);
        if (r == CY_OK && ok) {
            uintptr_t a = K(v);
            if (a < 1 || a > (uintptr_t)(l->senders * l->per * TRIES)) {
                atomic_fetch_add(&l->bad, 1);
                continue;
            }
            atomic_fetch_add(&l->seen[a], 1);
            atomic_fetch_add(&l->received, 1);
        } else if (r == CY_TIMEOUT) {
            atomic_fetch_add_explicit(&l->timeouts, 1, CY_RELAXED);
        } else if (r == CY_CANCELLED) {
            atomic_fetch_add_explicit(&l->cancels, 1, CY_RELAXED);
        } else {
            atomic_fetch_add(&l->bad, 1);
        }
    }
    atomic_fetch_sub(&l->workers_left, 1);
}

static void run_lost(uint32_t cap0, uint32_t cap1, int use_select, int tok_side)
{
    struct lost l;
    memset(&l, 0, sizeof l);
    l.senders = 4;
    l.receivers = 4;
    l.use_select = use_select;
    l.tok_side = tok_side;
    l.per = cytest_n(5000);
    long attempts = l.senders * l.per * TRIES;
    l.status = calloc((size_t)attempts + 1, 1);
    l.seen = calloc((size_t)attempts + 1, 1);
    void **b0 = new_buf(cap0), **b1 = new_buf(cap1);
    cy_chan_init(&l.ch[0], b0, cap0);
    cy_chan_init(&l.ch[1], b1, cap1);
    atomic_store(&l.senders_left, l.senders);
    atomic_store(&l.workers_left, l.senders + l.receivers);
    cytest_parallel(l.senders + l.receivers + (tok_side ? 1 : 0), lost_thread, &l);
    CHECK_EQ(atomic_load(&l.bad), 0);
    CHECK_EQ(atomic_load(&l.sent), l.senders * l.per);
    CHECK_EQ(atomic_load(&l.received), atomic_load(&l.sent));
    long lost = 0, ghost = 0, twice = 0;
    for (long a = 1; a <= attempts; a++) {
        int st = atomic_load(&l.status[a]), se = atomic_load(&l.seen[a]);
        lost += st == 1 && se == 0;
        ghost += st == 0 && se != 0;
        twice += se > 1;
    }
    CHECK_MSG(lost + ghost + twice == 0,
              "%ld values reported sent were never received, %ld received that were never reported sent, "
              "%ld received twice",
              lost, ghost, twice);
    CHECK(cyw_chan_queues_empty(&l.ch[0]));
    CHECK(cyw_chan_queues_empty(&l.ch[1]));
    CHECK_EQ(cy_chan_len(&l.ch[0]) + cy_chan_len(&l.ch[1]), 0);
    static const char *const how[3] = {"deadlines", "receivers cancelled", "senders cancelled"};
    cytest_note("caps %u/%u, %s, %s: %ld sent, %ld timed out, %ld cancelled", cap0, cap1,
                use_select ? "selects" : "plain", how[tok_side], atomic_load(&l.sent),
                atomic_load(&l.timeouts), atomic_load(&l.cancels));
    free(b0);
    free(b1);
    free((void *)l.status);
    free((void *)l.seen);
}

static void test_nothing_lost_unbuffered(void) { run_lost(0, 0, 0, 0); }
static void test_nothing_lost_buffered(void) { run_lost(2, 0, 0, 0); }
static void test_nothing_lost_select(void) { run_lost(0, 1, 1, 0); }
static void test_nothing_lost_cancel_recv(void) { run_lost(0, 0, 0, 1); }
static void test_nothing_lost_cancel_send(void) { run_lost(0, 1, 1, 2); }

/* ------------------------------------------------ queued waiters: FIFO */

/* Blocked senders (receivers) are served in the order they queued, as in
 * Go (a channel's sendq / recvq). */
#define QN 6

struct qfifo;

struct qwaiter {
    struct qfifo *q;
    int id;
    cytest_thread th;
};

struct qfifo {
    cy_chan ch;
    uint32_t dir;
    int intr; /* poke the first queued waiter with a signal, and wait three slices */
    _Atomic long bad;
    uintptr_t got[QN];
    struct qwaiter w[QN];
};

static void *qfifo_thread(void *p)
{
    struct qwaiter *me = p;
    struct qfifo *q = me->q;
    int id = me->id;
    if (!await_queued(&q->ch, q->dir, id)) { /* queue one after another */
        atomic_fetch_add(&q->bad, 1);
        return NULL;
    }
    int ok;
    void *v = NULL;
    int r = q->dir == CY_CASE_SEND ? cyw_chan_send(&q->ch, V(id + 1), cytest_deadline(10), NULL, &ok)
                                   : cyw_chan_recv(&q->ch, &v, cytest_deadline(10), NULL, &ok);
    if (r != CY_OK || !ok)
        atomic_fetch_add(&q->bad, 1);
    q->got[id] = K(v);
    return NULL;
}

static void run_qfifo(int intr, int check_order)
{
    for (int round = 0; round < 2; round++) {
        struct qfifo q;
        memset(&q, 0, sizeof q);
        cy_chan_init(&q.ch, NULL, 0);
        q.dir = round % 2 ? CY_CASE_RECV : CY_CASE_SEND;
        q.intr = intr;
        for (int i = 0; i < QN; i++) {
            q.w[i].q = &q;
            q.w[i].id = i;
            cytest_start(&q.w[i].th, qfifo_thread, &q.w[i]);
        }
        CHECK(await_queued(&q.ch, q.dir, QN));
        if (intr) {
            /* a signal to the first in line (the Python layer runs the
             * handlers and waits on); the sliced backends also end every
             * wait's slice meanwhile */
            cytest_poke(q.w[0].th.t);
            cytest_sleep_us(60000);
        }
        uintptr_t order[QN];
        for (int i = 0; i < QN; i++) {
            void *v = NULL;
            int r = q.dir == CY_CASE_SEND ? cy_chan_try_recv(&q.ch, &v) : cy_chan_try_send(&q.ch, V(100 + i));
            if (r == CY_CHAN_BLOCK) { /* a waiter between two attempts: not queued this instant */
                i--;
                sched_yield();
                continue;
            }
            CHECK_EQ(r, 0);
            order[i] = K(v);
        }
        for (int i = 0; i < QN; i++)
            cytest_join(&q.w[i].th);
        CHECK_EQ(atomic_load(&q.bad), 0);
        CHECK(cyw_chan_queues_empty(&q.ch));
        int fifo = 1;
        char seen[64] = "", *p = seen;
        for (int i = 0; i < QN; i++) {
            /* send: the i-th value out came from the sender that queued i-th;
             * receive: the receiver that queued i-th got the i-th value */
            uintptr_t who = q.dir == CY_CASE_SEND ? order[i] : q.got[i] - 99;
            fifo &= who == (uintptr_t)i + 1;
            p += snprintf(p, (size_t)(seen + sizeof seen - p), " %lu", (unsigned long)who);
        }
        if (check_order)
            CHECK_MSG(fifo, "%s queued in the order 1..%d were served in the order%s", q.dir == CY_CASE_SEND ?
                      "senders" : "receivers (by the value each got)", QN, seen);
        else if (!fifo)
            cytest_note("(not checked here) %s served in the order%s", q.dir == CY_CASE_SEND ? "senders" :
                        "receivers", seen);
    }
}

/* Right after they queued (no signal, no slice end: the futex backend). */
static void test_queued_fifo(void)
{
#ifdef CY_PARK_FALLBACK
    run_qfifo(0, 0); /* the 20 ms slices may end first: see queued_fifo_across_intr */
#else
    run_qfifo(0, 1);
#endif
}

/* After a CY_INTR (a signal, or any wait longer than a slice on the
 * fallback, macOS and Windows backends) the waiters are still in line. */
static void test_queued_fifo_across_intr(void) { run_qfifo(1, 1); }

/* A blocked sender keeps its place in the queue while cy_wait runs on_intr
 * (the Python layer: takes the GIL and runs the signal handlers, which can
 * take a while), paused: a receive that does not wait passes it by then
 * (a thread running signal handlers is not waiting in the channel, and a
 * value handed to it could be lost if a handler raised), and once the
 * handlers return it is served again, in its place. */
struct vis {
    cy_chan ch;
    _Atomic int in_handler, go_on;
    int result, ok;
};

static int vis_on_intr(void *p)
{
    struct vis *x = p;
    if (!atomic_exchange(&x->in_handler, 1))
        cytest_await_flag(&x->go_on, 10);
    return 0; /* the handlers did not raise: wait on */
}

static void *vis_main(void *p)
{
    struct vis *x = p;
    cy_case cs;
    cy_chan *locks[1];
    cy_select s;
    set_case(&cs, &x->ch, CY_CASE_SEND, V(42));
    cy_select_init(&s, &cs, 1, locks);
    x->result = cy_wait(&cy_select_wait_op, &s, 0, cytest_deadline(10), NULL, vis_on_intr, x);
    x->ok = (int)s.ok;
    return NULL;
}

static void test_paused_partner_keeps_its_place(void)
{
    struct vis x;
    memset(&x, 0, sizeof x);
    cy_chan_init(&x.ch, NULL, 0);
    cytest_thread th;
    cytest_start(&th, vis_main, &x);
    CHECK(await_queued(&x.ch, CY_CASE_SEND, 1));
    /* a signal (futex: EINTR; the sliced backends end a slice anyway) */
    int64_t t0 = cy_now_ns();
    while (!atomic_load(&x.in_handler) && cy_now_ns() - t0 < 5000000000LL) {
        cytest_poke(th.t);
        cytest_sleep_us(2000);
    }
    CHECK(atomic_load(&x.in_handler));
    int queued = cyw_chan_queued(&x.ch, CY_CASE_SEND);
    void *v = NULL;
    int r = cy_chan_try_recv(&x.ch, &v);
    CHECK_MSG(queued == 1, "the sender, paused in cy_wait, lost its place while on_intr runs");
    CHECK_MSG(r == CY_CHAN_BLOCK, "a paused sender was claimed while its signal handlers ran (%d)", r);
    atomic_store(&x.go_on, 1);
    int ok;
    CHECK_EQ(cyw_chan_recv(&x.ch, &v, cytest_deadline(10), NULL, &ok), CY_OK);
    CHECK_EQ(K(v), 42);
    cytest_join(&th);
    CHECK_EQ(x.result, CY_OK);
    CHECK_EQ(x.ok, 1);
    CHECK(cyw_chan_queues_empty(&x.ch));
}

static const cytest_case cases[] = {
    {"fifo_buffered", test_fifo_buffered, NULL},
    {"double_close", test_double_close, NULL},
    {"closed_ops", test_closed_ops, NULL},
    {"unbuffered_send_blocks", test_unbuffered_send_blocks, NULL},
    {"fifo_threads", test_fifo_threads, NULL},
    {"close_wakes_all", test_close_wakes_all, NULL},
    {"select_uniform", test_select_uniform, NULL},
    {"select_nil_case", test_select_nil_case, NULL},
    {"select_timeout_no_trace", test_select_timeout_no_trace, NULL},
    {"select_cancel_no_trace", test_select_cancel_no_trace, NULL},
    {"cancel_racing_handoff", test_cancel_racing_handoff, NULL},
    {"select_send_recv_same_channel", test_select_send_recv_same_channel, NULL},
    {"mpmc_unbuffered", test_mpmc_unbuffered, NULL},
    {"mpmc_buffered", test_mpmc_buffered, NULL},
    {"mpmc_select", test_mpmc_select, NULL},
    {"mpmc_select_unbuffered", test_mpmc_select_unbuffered, NULL},
    {"nothing_lost_unbuffered", test_nothing_lost_unbuffered, NULL},
    {"nothing_lost_buffered", test_nothing_lost_buffered, NULL},
    {"nothing_lost_select", test_nothing_lost_select, NULL},
    {"nothing_lost_cancel_recv", test_nothing_lost_cancel_recv, NULL},
    {"nothing_lost_cancel_send", test_nothing_lost_cancel_send, NULL},
    {"queued_fifo", test_queued_fifo, NULL},
    {"queued_fifo_across_intr", test_queued_fifo_across_intr, NULL},
    {"paused_partner_keeps_its_place", test_paused_partner_keeps_its_place, NULL},
};

int main(int argc, char **argv)
{
    return cytest_main(argc, argv, "chan", cases, sizeof cases / sizeof cases[0]);
}
