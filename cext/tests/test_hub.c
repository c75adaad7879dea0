/* test_hub.c - the asyncio hub (cy_hub.h): async records fired by other
 * threads reach the loop thread through one list and one descriptor.
 *
 * The "loop" here is a thread that polls the hub's descriptor, takes the
 * fired records and acts on them as the Cython layer does (a channel
 * receive ended with cy_select_end, an Event wait re-armed).  The records
 * are on the heap and reference-counted: ASan reports a record freed
 * while a firing thread or the hub still touches it, or one never freed. */
#include "cytest.h"

#include <poll.h>
#include <stdlib.h>

#include "cy_chan.h"
#include "cy_event.h"
#include "cy_hub.h"

static int readable(cy_hub *h, int ms)
{
    struct pollfd p = {cy_hub_fd(h), POLLIN, 0};
    return poll(&p, 1, ms) == 1;
}

/* ------------------------------------------------------------- basics */

static void test_fire_take_order_and_coalescing(void)
{
    cy_hub *h = cy_hub_new();
    CHECK(h != NULL);
    int owners[3];
    cy_waiter *w[3];
    for (int i = 0; i < 3; i++) {
        w[i] = cy_async_new(h, &owners[i]);
        CHECK(w[i] != NULL);
        cy_async_begin(w[i], NULL);
    }
    CHECK(!readable(h, 0));
    CHECK(cy_hub_take(h) == NULL);
    /* a poke hands the record to the hub at once: no OS wake to make */
    CHECK(cy_waiter_release(w[1]) == NULL);
    CHECK(readable(h, 0));
    cy_waiter_wake(cy_waiter_release(w[0]));
    cy_waiter_wake(cy_waiter_release(w[1])); /* on the list already: not twice */
    cy_waiter_wake(cy_waiter_release(w[2]));
    cy_waiter *l = cy_hub_take(h);
    CHECK(!readable(h, 0)); /* the descriptor was emptied */
    void *seen[4] = {0};
    int n = 0;
    while (l != NULL) {
        cy_waiter *next = cy_hub_next(l);
        if (n < 4)
            seen[n] = cy_async_owner(l);
        n++;
        cy_async_unref(l); /* the list's reference */
        l = next;
    }
    CHECK_EQ(n, 3);
    CHECK(seen[0] == &owners[1] && seen[1] == &owners[0] && seen[2] == &owners[2]); /* fire order */
    /* taken off the list: a new poke puts it back */
    cy_waiter_release(w[2]);
    l = cy_hub_take(h);
    CHECK(l == w[2] && cy_hub_next(l) == NULL);
    cy_async_unref(l);
    /* the owner lets go while a record is still on the list: the list's
     * reference keeps it (and the hub) until it is taken */
    cy_waiter_release(w[0]);
    for (int i = 0; i < 3; i++) {
        cy_async_set_owner(w[i], NULL);
        cy_waiter_end(w[i]);
        cy_async_unref(w[i]);
    }
    cy_hub_unref(h); /* the loop side goes first */
    l = cy_hub_take(h);
    CHECK(l == w[0] && cy_async_owner(l) == NULL);
    cy_hub_next(l);
    cy_async_unref(l); /* the last reference: the record, then the hub */
}

/* A token's fire claims an async record and hands it to the hub. */
static void test_token_fire_reaches_hub(void)
{
    cy_hub *h = cy_hub_new();
    cy_cancel c;
    cy_cancel_init(&c);
    cy_waiter *w = cy_async_new(h, NULL);
    cy_async_begin(w, &c);
    cy_cancel_fire(&c);
    CHECK_EQ(cy_async_claimed(w), CY_CLAIM_CANCEL);
    CHECK(readable(h, 0));
    cy_waiter *l = cy_hub_take(h);
    CHECK(l == w);
    cy_hub_next(l);
    cy_async_unref(l);
    cy_waiter_end(w);
    cy_async_unref(w);
    /* begun after the fire: claimed at once, nothing queued on the hub */
    w = cy_async_new(h, NULL);
    cy_async_begin(w, &c);
    CHECK_EQ(cy_async_claimed(w), CY_CLAIM_CANCEL);
    CHECK(cy_hub_take(h) == NULL);
    cy_waiter_end(w);
    cy_async_unref(w);
    cy_hub_unref(h);
}

/* ------------------------------------------------ threads feed one loop */

#define RECEIVERS 8

typedef struct {
    cy_chan ch;
    void *buf[4];
    long n;               /* values each sender sends */
    int senders;
    _Atomic long sent;
    _Atomic int stop;
    cy_event ev;          /* poked by a thread, awaited by the loop's records */
    _Atomic long sets;
} feed;

static void sender(void *arg, int id)
{
    feed *f = (feed *)arg;
    for (long i = 0; i < f->n; i++) {
        uintptr_t v = ((uintptr_t)id << 32) | (uintptr_t)(i + 1);
        while (cy_chan_try_send(&f->ch, (void *)v) == CY_CHAN_BLOCK)
            cytest_spin(64);
        atomic_fetch_add(&f->sent, 1);
        if ((i & 63) == 0) {
            cy_event_set(&f->ev);
            cy_event_clear(&f->ev);
            atomic_fetch_add(&f->sets, 1);
        }
    }
}

typedef struct {
    cy_waiter *w;
    cy_select sel;
    cy_case one;
    cy_chan *lock;
} areceive;

/* Each value once: seen[id][i] (several receivers take values in any order). */
static void take_value(void *value, unsigned char **seen, long n, long *got)
{
    uintptr_t v = (uintptr_t)value;
    int id = (int)(v >> 32);
    long i = (long)(v & 0xffffffffu) - 1;
    CHECK(id >= 0 && id < 3 && i >= 0 && i < n);
    if (id >= 0 && id < 3 && i >= 0 && i < n) {
        CHECK_EQ(seen[id][i], 0);
        seen[id][i] = 1;
    }
    (*got)++;
}

static void arm_receive(cy_hub *h, feed *f, areceive *r, long *got, unsigned char **seen)
{
    for (;;) {
        r->w = cy_async_new(h, r);
        cy_async_begin(r->w, NULL);
        r->one.ch = &f->ch;
        r->one.dir = CY_CASE_RECV;
        r->one.elem = NULL;
        cy_select_init(&r->sel, &r->one, 1, &r->lock);
        int rc = cy_select_arm(&r->sel, r->w);
        if (rc == CY_AGAIN)
            return;
        CHECK_EQ(rc, CY_OK); /* a value was there: take it, arm again */
        take_value(r->sel.value, seen, f->n, got);
        cy_async_set_owner(r->w, NULL);
        cy_async_unref(r->w);
    }
}

typedef struct {
    feed *f;
    int id;
} job;

static void *sender_main(void *arg)
{
    job *j = (job *)arg;
    sender(j->f, j->id);
    return NULL;
}

static void test_threads_feed_one_loop(void)
{
    feed *f = (feed *)calloc(1, sizeof *f);
    cy_hub *h = cy_hub_new();
    f->n = cytest_n(20000);
    f->senders = 3;
    cy_chan_init(&f->ch, f->buf, 4);
    cy_event_init(&f->ev);
    long got = 0, total = f->n * f->senders, event_wakes = 0;
    unsigned char *seen[3];
    for (int i = 0; i < 3; i++)
        seen[i] = (unsigned char *)calloc((size_t)f->n, 1);
    areceive rs[RECEIVERS];
    for (int i = 0; i < RECEIVERS; i++)
        arm_receive(h, f, &rs[i], &got, seen);
    /* one record waits on the event too, armed again after every poke */
    cy_waiter *ew = cy_async_new(h, NULL);
    cy_wnode en;
    cy_async_begin(ew, NULL);
    int erc = cy_event_arm(&f->ev, cy_event_wait_begin(&f->ev), &en, ew);
    CHECK_EQ(erc, CY_AGAIN);

    job jobs[3];
    cytest_thread th[3];
    for (int i = 0; i < f->senders; i++) {
        jobs[i].f = f;
        jobs[i].id = i;
        cytest_start(&th[i], sender_main, &jobs[i]);
    }
    int64_t deadline = cytest_deadline(60);
    while (got < total && cytest_now_ns() < deadline) {
        if (!readable(h, 100))
            continue;
        cy_waiter *l = cy_hub_take(h);
        while (l != NULL) {
            cy_waiter *next = cy_hub_next(l);
            if (l == ew) {
                event_wakes++;
                cy_addr_disarm(&en);
                do /* a new generation: wait for the next set() */
                    erc = cy_event_arm(&f->ev, cy_event_wait_begin(&f->ev), &en, ew);
                while (erc == CY_OK);
                CHECK_EQ(erc, CY_AGAIN);
            } else {
                areceive *r = (areceive *)cy_async_owner(l);
                if (r != NULL && r->w == l) {
                    CHECK_EQ(cy_async_claimed(l), CY_CLAIM_FIRED);
                    CHECK_EQ(cy_select_end(&r->sel, l), CY_OK);
                    take_value(r->sel.value, seen, f->n, &got);
                    cy_async_set_owner(l, NULL);
                    cy_async_unref(l); /* the owner's reference */
                    arm_receive(h, f, r, &got, seen);
                }
            }
            cy_async_unref(l); /* the list's */
            l = next;
        }
    }
    for (int i = 0; i < f->senders; i++)
        cytest_join(&th[i]);
    CHECK_EQ(got, total);
    CHECK(event_wakes >= 1);
    /* Tear down: the receivers still queued give up (their claim wins:
     * nothing more is sent), and whatever the hub still holds is let go. */
    for (int i = 0; i < RECEIVERS; i++) {
        CHECK(cy_async_claim_self(rs[i].w));
        CHECK_EQ(cy_select_end(&rs[i].sel, rs[i].w), CY_TIMEOUT);
        cy_async_set_owner(rs[i].w, NULL);
        cy_async_unref(rs[i].w);
    }
    cy_addr_disarm(&en);
    cy_async_unref(ew);
    for (cy_waiter *l = cy_hub_take(h), *next; l != NULL; l = next) {
        next = cy_hub_next(l);
        cy_async_unref(l);
    }
    cy_hub_unref(h);
    for (int i = 0; i < 3; i++)
        free(seen[i]);
    free(f);
}

static const cytest_case cases[] = {
    {"fire_take_order_and_coalescing", test_fire_take_order_and_coalescing, NULL},
    {"token_fire_reaches_hub", test_token_fire_reaches_hub, NULL},
    {"threads_feed_one_loop", test_threads_feed_one_loop, NULL},
};

int main(int argc, char **argv)
{
    return cytest_main(argc, argv, "hub", cases, sizeof cases / sizeof cases[0]);
}
