/* smoke_portable.c - every primitive once, from one thread, in plain C11 (no
 * pthreads, no fork, no signals): built and run with the Linux backends, and
 * cross-compiled and linked against the Windows backend (mingw-w64) by
 * run.sh, so that the WaitOnAddress path is at least built here.  Every
 * wait goes through the one driver, cy_wait(), with the primitive's op, as
 * the Python layer's do. */
#include <stdio.h>
#include <stdlib.h>

#include "cy_barrier.h"
#include "cy_chan.h"
#include "cy_event.h"
#include "cy_mutex.h"
#include "cy_once.h"
#include "cy_park.h"
#include "cy_rwmutex.h"
#include "cy_sema.h"
#include "cy_waitgroup.h"
#include "cy_waiter.h"
#include "cy_wsem.h"

static int failed;

#define EXPECT(c)                                                                                  \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            printf("    FAILED smoke_portable.c:%d: %s\n", __LINE__, #c);                         \
            failed++;                                                                              \
        }                                                                                          \
    } while (0)

/* A wait that must time out: retries CY_INTR (sliced backends) until then
 * (cy_wait does that itself; the bare calls need it). */
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
    TIMES_OUT(cy_wg_wait(&wg, cy_wg_wait_begin(&wg), cy_deadline_after(1000000), NULL));
    soon = cy_deadline_after(1000000);
    TIMES_OUT(cy_wait(&cy_wg_wait_op, &wg, cy_wg_wait_begin(&wg), soon, NULL, NULL, NULL));
    EXPECT(cy_wg_add(&wg, -3) == CY_WG_NEGATIVE);
    EXPECT(cy_wg_add(&wg, -2) == 0);
    EXPECT(cy_wait(&cy_wg_wait_op, &wg, cy_wg_wait_begin(&wg), cy_now_ns(), NULL, NULL, NULL) == CY_OK);

    cy_once o;
    cy_once_init(&o);
    EXPECT(cy_once_try_begin(&o, cy_once_self()) == 1);
    EXPECT(cy_once_try_begin(&o, cy_once_self()) == 0);
    cy_once_finish(&o);
    EXPECT(cy_once_is_done(&o));
    EXPECT(cy_once_wait(&o, 0, cy_deadline_after(0), NULL) == CY_OK);
    EXPECT(cy_wait(&cy_once_wait_op, &o, 0, cy_deadline_after(0), NULL, NULL, NULL) == CY_OK);

    cy_sema s;
    cy_sema_init(&s, 1);
    EXPECT(cy_sema_try_acquire(&s));
    TIMES_OUT(cy_sema_acquire(&s, 0, cy_deadline_after(1000000), NULL));
    TIMES_OUT(cy_wait(&cy_sema_wait_op, &s, 0, cy_deadline_after(1000000), NULL, NULL, NULL));
    EXPECT(cy_sema_release(&s, 1, 1) == 0);
    EXPECT(cy_sema_release(&s, 1, 1) == -1);

    cy_event e;
    cy_event_init(&e);
    soon = cy_deadline_after(1000000);
    TIMES_OUT(cy_wait(&cy_event_wait_op, &e, cy_event_wait_begin(&e), soon, NULL, NULL, NULL));
    cy_event_set(&e);
    EXPECT(cy_event_wait(&e, cy_event_wait_begin(&e), cy_deadline_after(0), NULL) == CY_OK);
    cy_event_clear(&e);
    EXPECT(!cy_event_is_set(&e));

    cy_wsem ws;
    cy_wsem_waiter w;
    cy_wsem_init(&ws, 4);
    EXPECT(cy_wsem_try_acquire(&ws, 3));
    EXPECT(cy_wsem_enqueue(&ws, 2, &w) == 0);
    TIMES_OUT(cy_wait(&cy_wsem_wait_op, &ws, (uintptr_t)&w, cy_deadline_after(1000000), NULL, NULL, NULL));
    EXPECT(cy_wsem_wait_op.leave(&ws, (uintptr_t)&w, 1) == 0);
    EXPECT(cy_wsem_waiters(&ws) == 0);
    EXPECT(cy_wsem_release(&ws, 3) == 0);
    EXPECT(cy_wsem_held(&ws) == 0);

    cy_rwmutex rw;
    cy_rw_waiter rn, wn;
    cy_rw_init(&rw);
    EXPECT(cy_rw_try_rlock(&rw) && cy_rw_try_rlock(&rw) && !cy_rw_try_lock(&rw));
    EXPECT(cy_rw_unlock(&rw) == -1 && cy_rw_readers(&rw) == 2);
    EXPECT(cy_rw_enqueue(&rw, 1, &wn) == 0);
    EXPECT(!cy_rw_try_rlock(&rw)); /* a waiting writer blocks new readers */
    TIMES_OUT(cy_wait(&cy_rw_wait_op, &rw, (uintptr_t)&wn, cy_deadline_after(1000000), NULL, NULL, NULL));
    EXPECT(cy_rw_wait_op.leave(&rw, (uintptr_t)&wn, 1) == 0);
    EXPECT(cy_rw_waiting(&rw, 1) == 0 && cy_rw_try_rlock(&rw));
    EXPECT(cy_rw_enqueue(&rw, 1, &wn) == 0);
    EXPECT(cy_rw_runlock(&rw) == 0 && cy_rw_runlock(&rw) == 0 && cy_rw_runlock(&rw) == 0);
    EXPECT(cy_wait(&cy_rw_wait_op, &rw, (uintptr_t)&wn, cy_deadline_after(0), NULL, NULL, NULL) == CY_OK);
    EXPECT(cy_rw_enqueue(&rw, 0, &rn) == 0);
    EXPECT(cy_rw_unlock(&rw) == 0 && cy_rw_readers(&rw) == 1); /* the reader waiting goes in */
    EXPECT(cy_wait(&cy_rw_wait_op, &rw, (uintptr_t)&rn, cy_deadline_after(0), NULL, NULL, NULL) == CY_OK);
    EXPECT(cy_rw_runlock(&rw) == 0 && cy_rw_runlock(&rw) == -1);

    /* tokens: a wait on the token alone, then every primitive's op with a
     * fired token (a wait that needs no sleep still succeeds) */
    cy_cancel c;
    int64_t later = cy_deadline_after(1000000000);
    cy_cancel_init(&c);
    EXPECT(cy_sema_try_acquire(&s));
    TIMES_OUT(cy_cancel_wait(&c, cy_deadline_after(1000000)));
    TIMES_OUT(cy_wait(&cy_sema_wait_op, &s, 0, cy_deadline_after(1000000), &c, NULL, NULL));
    cy_cancel_fire(&c);
    EXPECT(cy_cancel_fired(&c));
    EXPECT(cy_cancel_wait(&c, cy_deadline_after(1000000000)) == CY_CANCELLED);
    EXPECT(cy_wait(&cy_sema_wait_op, &s, 0, cy_deadline_after(1000000000), &c, NULL, NULL) == CY_CANCELLED);
    EXPECT(cy_wg_add(&wg, 1) == 0);
    EXPECT(cy_wait(&cy_wg_wait_op, &wg, cy_wg_wait_begin(&wg), later, &c, NULL, NULL) == CY_CANCELLED);
    EXPECT(cy_wg_add(&wg, -1) == 0);
    cy_event_clear(&e);
    EXPECT(cy_wait(&cy_event_wait_op, &e, cy_event_wait_begin(&e), later, &c, NULL, NULL) == CY_CANCELLED);
    EXPECT(cy_sema_release(&s, 1, 1) == 0);
    EXPECT(cy_wait(&cy_sema_wait_op, &s, 0, cy_deadline_after(1000000000), &c, NULL, NULL) == CY_OK);
    EXPECT(cy_wsem_try_acquire(&ws, 4));
    EXPECT(cy_wsem_enqueue(&ws, 1, &w) == 0);
    EXPECT(cy_wait(&cy_wsem_wait_op, &ws, (uintptr_t)&w, cy_deadline_after(1000000000), &c, NULL, NULL) ==
           CY_CANCELLED);
    EXPECT(cy_wsem_waiters(&ws) == 0); /* a cancelled waiter has left the queue */
    EXPECT(cy_wsem_release(&ws, 4) == 0);
    EXPECT(cy_rw_try_lock(&rw));
    EXPECT(cy_rw_enqueue(&rw, 0, &rn) == 0);
    EXPECT(cy_wait(&cy_rw_wait_op, &rw, (uintptr_t)&rn, cy_deadline_after(1000000000), &c, NULL, NULL) ==
           CY_CANCELLED);
    EXPECT(cy_rw_waiting(&rw, 0) == 0 && cy_rw_unlock(&rw) == 0);
    EXPECT(cy_list_empty(&c.waiters));

    cy_barrier b;
    cy_barrier_ticket t0, t1;
    cy_barrier_init(&b, 2);
    EXPECT(cy_barrier_arrive(&b, &t0, 1) == CY_OK && t0.index == 0);
    EXPECT(cy_barrier_arrive(&b, &t1, 1) == CY_BARRIER_LAST && t1.index == 1);
    EXPECT(cy_barrier_action_done(&b, 1) == CY_OK);
    EXPECT(cy_wait(&cy_barrier_wait_op, &b, (uintptr_t)&t0, cy_deadline_after(0), NULL, NULL, NULL) == CY_OK);
    EXPECT(cy_barrier_n_waiting(&b) == 0);
    EXPECT(cy_barrier_arrive(&b, &t0, 0) == CY_OK);
    EXPECT(cy_wait(&cy_barrier_wait_op, &b, (uintptr_t)&t0, cy_deadline_after(1000000000), &c, NULL, NULL) ==
           CY_CANCELLED);
    EXPECT(cy_barrier_broken(&b));

    /* channels: a buffered one in FIFO order, close, drain; an unbuffered
     * one blocks; a select times out and leaves no node behind */
    cy_chan ch, un;
    void **buf = malloc(2 * sizeof *buf);
    void *v = NULL;
    int x1, x2, x3;
    cy_chan_init(&ch, buf, 2);
    cy_chan_init(&un, NULL, 0);
    EXPECT(cy_chan_try_send(&ch, &x1) == 0);
    EXPECT(cy_chan_try_send(&ch, &x2) == 0);
    EXPECT(cy_chan_try_send(&ch, &x3) == CY_CHAN_BLOCK);
    EXPECT(cy_chan_len(&ch) == 2);
    EXPECT(cy_chan_try_recv(&ch, &v) == 0 && v == &x1);
    EXPECT(cy_chan_try_send(&ch, &x3) == 0);
    EXPECT(cy_chan_try_send(&un, &x1) == CY_CHAN_BLOCK);
    EXPECT(cy_chan_try_recv(&un, &v) == CY_CHAN_BLOCK);
    cy_case cs[3];
    cy_chan *locks[3];
    cy_select sel;
    cs[0].ch = &un;
    cs[0].dir = CY_CASE_RECV;
    cs[1].ch = &un;
    cs[1].dir = CY_CASE_SEND;
    cs[1].elem = &x1;
    cs[2].ch = NULL; /* never fires */
    cs[2].dir = CY_CASE_RECV;
    cy_select_init(&sel, cs, 3, locks);
    EXPECT(sel.nlocks == 1);
    EXPECT(cy_select_try(&sel) == CY_CHAN_BLOCK);
    TIMES_OUT(cy_wait(&cy_select_wait_op, &sel, 0, cy_deadline_after(1000000), NULL, NULL, NULL));
    EXPECT(cy_wait(&cy_select_wait_op, &sel, 0, later, &c, NULL, NULL) == CY_CANCELLED);
    EXPECT(cy_chan_try_send(&un, &x1) == CY_CHAN_BLOCK); /* nobody left queued */
    cs[0].ch = &ch;
    cy_select_init(&sel, cs, 3, locks);
    EXPECT(cy_select_try(&sel) == CY_OK && sel.chosen == 0 && sel.ok && sel.value == &x2);
    EXPECT(cy_chan_close(&ch) == 0);
    EXPECT(cy_chan_close(&ch) == -1);
    EXPECT(cy_chan_try_send(&ch, &x1) == CY_CHAN_CLOSED);
    EXPECT(cy_chan_try_recv(&ch, &v) == 0 && v == &x3); /* still delivered after close */
    EXPECT(cy_chan_try_recv(&ch, &v) == CY_CHAN_CLOSED && v == NULL);
    EXPECT(cy_select_try(&sel) == CY_OK && sel.chosen == 0 && !sel.ok && sel.value == NULL);
    EXPECT(cy_chan_try_send(&ch, &x1) == CY_CHAN_CLOSED);
    EXPECT(cy_chan_drain(&ch, &v) == 0);
    free(buf);

    printf("%s smoke_portable\n", failed ? "[ FAIL ]" : "[  OK  ]");
    printf("%d passed, %d failed\n", failed ? 0 : 1, failed ? 1 : 0);
    return failed ? 1 : 0;
}
