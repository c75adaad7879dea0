/* smoke_portable.c - every primitive once, from one thread, in plain C11 (no
 * pthreads, no fork, no signals): built and run with the Linux backends, and
 * cross-compiled and linked against the Windows backend (mingw-w64) by
 * run.sh, so that the WaitOnAddress path is at least built here. */
#include <stdio.h>

#include "cy_barrier.h"
#include "cy_cancel.h"
#include "cy_event.h"
#include "cy_mutex.h"
#include "cy_once.h"
#include "cy_park.h"
#include "cy_sema.h"
#include "cy_waitgroup.h"
#include "cy_wsem.h"

static int failed;

#define EXPECT(c)                                                                                  \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            printf("    FAILED smoke_portable.c:%d: %s\n", __LINE__, #c);                         \
            failed++;                                                                              \
        }                                                                                          \
    } while (0)

/* A wait that must time out: retries CY_INTR (sliced backends) until then. */
#define TIMES_OUT(call)                                                                            \
    do {                                                                                           \
        int r_;                                                                                    \
        while ((r_ = (call)) == CY_INTR) {                                                         \
        }                                                                                          \
        EXPECT(r_ == CY_TIMEOUT);                                                                  \
    } while (0)

int main(void)
{
    int64_t soon;
    _Atomic uint32_t word = 0;

    printf("== smoke: park backend %s\n", cy_park_backend());
    EXPECT(cy_now_ns() > 0);
    soon = cy_deadline_after(5 * 1000 * 1000);
    TIMES_OUT(cy_park(&word, 0, soon));
    EXPECT(cy_park(&word, 1, cy_deadline_after(1000000000)) == CY_OK);
    cy_wake(&word, 1);
    cy_wake_os(&word, CY_WAKE_ALL);

    cy_mutex m;
    cy_mutex_init(&m);
    cy_mutex_lock(&m);
    cy_mutex_unlock(&m);

    cy_waitgroup wg;
    cy_wg_init(&wg);
    EXPECT(cy_wg_add(&wg, 2) == 0);
    TIMES_OUT(cy_wg_wait(&wg, cy_deadline_after(1000000)));
    EXPECT(cy_wg_add(&wg, -3) == CY_WG_NEGATIVE);
    EXPECT(cy_wg_add(&wg, -2) == 0);
    EXPECT(cy_wg_wait(&wg, cy_deadline_after(0)) == CY_OK);

    cy_once o;
    cy_once_init(&o);
    EXPECT(cy_once_try_begin(&o, cy_once_self()) == 1);
    EXPECT(cy_once_try_begin(&o, cy_once_self()) == 0);
    cy_once_finish(&o);
    EXPECT(cy_once_is_done(&o));
    EXPECT(cy_once_wait(&o, cy_deadline_after(0)) == CY_OK);

    cy_sema s;
    cy_sema_init(&s, 1);
    EXPECT(cy_sema_try_acquire(&s));
    TIMES_OUT(cy_sema_acquire_slow(&s, cy_deadline_after(1000000)));
    EXPECT(cy_sema_release(&s, 1, 1) == 0);
    EXPECT(cy_sema_release(&s, 1, 1) == -1);

    cy_event e;
    cy_event_init(&e);
    TIMES_OUT(cy_event_wait(&e, cy_deadline_after(1000000)));
    cy_event_set(&e);
    EXPECT(cy_event_wait(&e, cy_deadline_after(0)) == CY_OK);
    cy_event_clear(&e);
    EXPECT(!cy_event_is_set(&e));

    cy_wsem ws;
    cy_wsem_waiter w;
    cy_wsem_init(&ws, 4);
    EXPECT(cy_wsem_try_acquire(&ws, 3));
    EXPECT(cy_wsem_enqueue(&ws, 2, &w) == 0);
    TIMES_OUT(cy_wsem_wait(&w, cy_deadline_after(1000000)));
    EXPECT(cy_wsem_cancel(&ws, &w) == 0);
    EXPECT(cy_wsem_release(&ws, 3) == 0);
    EXPECT(cy_wsem_held(&ws) == 0);

    cy_cancel c;
    cy_cancel_init(&c);
    TIMES_OUT(cy_park_cancel(&word, 0, cy_deadline_after(1000000), &c));
    cy_cancel_fire(&c);
    EXPECT(cy_park_cancel(&word, 0, cy_deadline_after(1000000000), &c) == CY_CANCELLED);

    cy_barrier b;
    cy_barrier_ticket t0, t1;
    cy_barrier_init(&b, 2);
    EXPECT(cy_barrier_arrive(&b, &t0, 1) == CY_OK && t0.index == 0);
    EXPECT(cy_barrier_arrive(&b, &t1, 1) == CY_BARRIER_LAST && t1.index == 1);
    EXPECT(cy_barrier_action_done(&b, 1) == CY_OK);
    EXPECT(cy_barrier_await(&b, &t0, cy_deadline_after(0)) == CY_OK);
    EXPECT(cy_barrier_n_waiting(&b) == 0);

    printf("%s smoke_portable\n", failed ? "[ FAIL ]" : "[  OK  ]");
    printf("%d passed, %d failed\n", failed ? 0 : 1, failed ? 1 : 0);
    return failed ? 1 : 0;
}
