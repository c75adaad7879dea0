/* test_ctx.c - the C half of a context (cy_ctx.h): the state word is won
 * once, and firing the token ends the waits parked with it, from another
 * thread and among many threads racing to end the same context. */
#include "cytest.h"
#include "cywait.h"

#include "cy_ctx.h"

static void test_state_is_won_once(void)
{
    cy_ctx c;
    cy_ctx_init(&c);
    CHECK_EQ(cy_ctx_state(&c), CY_CTX_LIVE);
    CHECK(!cy_cancel_fired(cy_ctx_token(&c)));
    CHECK(cy_ctx_mark(&c, CY_CTX_DEADLINE));
    CHECK(!cy_ctx_mark(&c, CY_CTX_CANCELED)); /* the first end wins */
    CHECK_EQ(cy_ctx_state(&c), CY_CTX_DEADLINE);
    cy_ctx_fire(&c);
    CHECK(cy_cancel_fired(cy_ctx_token(&c)));
    /* a wait that begins after the fire ends at once */
    CHECK_EQ(cy_cancel_wait(cy_ctx_token(&c), CY_NO_DEADLINE), CY_CANCELLED);
}

typedef struct {
    cy_ctx *c;
    _Atomic int parked;
    _Atomic int result;
} waiter_arg;

static void *wait_on_token(void *p)
{
    waiter_arg *a = p;
    int64_t deadline = cy_deadline_after(10000000000LL);
    cy_status r;
    atomic_fetch_add(&a->parked, 1);
    /* A wait on the token alone may also end early (a signal, a spurious
     * wake-up): wait again, as the Python layer's callers do. */
    do
        r = cy_cancel_wait(cy_ctx_token(a->c), deadline);
    while ((r == CY_OK || r == CY_INTR) && !cy_cancel_fired(cy_ctx_token(a->c)));
    atomic_store(&a->result, (int)r);
    return NULL;
}

static void test_fire_wakes_parked_waits(void)
{
    enum { N = 8 };
    cy_ctx c;
    cy_ctx_init(&c);
    waiter_arg a[N];
    cytest_thread th[N];
    for (int i = 0; i < N; i++) {
        a[i].c = &c;
        atomic_init(&a[i].parked, 0);
        atomic_init(&a[i].result, -1);
        cytest_start(&th[i], wait_on_token, &a[i]);
    }
    for (int i = 0; i < N; i++)
        while (!atomic_load(&a[i].parked))
            cytest_sleep_us(100);
    cytest_sleep_us(2000); /* parked or about to: either way the fire ends it */
    CHECK(cy_ctx_mark(&c, CY_CTX_CANCELED));
    cy_ctx_fire(&c);
    for (int i = 0; i < N; i++) {
        cytest_join(&th[i]);
        /* ended by the fire (not by its 10 s deadline) */
        CHECK(atomic_load(&a[i].result) != (int)CY_TIMEOUT);
    }
}

typedef struct {
    cy_ctx *c;
    uint32_t why;
    _Atomic int *wins;
} ender_arg;

static void *end_it(void *p)
{
    ender_arg *e = p;
    if (cy_ctx_mark(e->c, e->why)) {
        atomic_fetch_add(e->wins, 1);
        cy_ctx_fire(e->c);
    }
    return NULL;
}

static void test_racing_ends_have_one_winner(void)
{
    enum { N = 4, ROUNDS = 200 };
    for (int r = 0; r < ROUNDS; r++) {
        cy_ctx c;
        cy_ctx_init(&c);
        _Atomic int wins;
        atomic_init(&wins, 0);
        ender_arg e[N];
        cytest_thread th[N];
        for (int i = 0; i < N; i++) {
            e[i].c = &c;
            e[i].why = (i & 1) ? CY_CTX_DEADLINE : CY_CTX_CANCELED;
            e[i].wins = &wins;
            cytest_start(&th[i], end_it, &e[i]);
        }
        for (int i = 0; i < N; i++)
            cytest_join(&th[i]);
        CHECK_EQ(atomic_load(&wins), 1);
        CHECK(cy_ctx_state(&c) != CY_CTX_LIVE);
        CHECK(cy_cancel_fired(cy_ctx_token(&c)));
    }
}

static const cytest_case cases[] = {
    {"state_is_won_once", test_state_is_won_once, NULL},
    {"fire_wakes_parked_waits", test_fire_wakes_parked_waits, NULL},
    {"racing_ends_have_one_winner", test_racing_ends_have_one_winner, NULL},
};

int main(int argc, char **argv)
{
    return cytest_main(argc, argv, "ctx", cases, sizeof cases / sizeof cases[0]);
}
