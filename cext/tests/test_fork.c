/* test_fork.c - the fork registry (cy_fork.h): objects join it only while
 * threads are inside them, and a forked child resets exactly those (a
 * weighted semaphore forgets its queue, a barrier starts a fresh round, a
 * Once whose fn ran in another thread is new again). */
#include "cytest.h"
#include "cywait.h"

#include <sys/wait.h>
#include <unistd.h>

#include "cy_barrier.h"
#include "cy_fork.h"
#include "cy_once.h"
#include "cy_wsem.h"

static void test_join_leave(void)
{
    uint32_t base = cy_fork_registered();
    cy_wsem s;
    cy_wsem_init(&s, 2);
    cy_wsem_waiter a;
    CHECK_EQ(cy_wsem_enqueue(&s, 2, &a), 1); /* fast: taken, not registered */
    CHECK_EQ(cy_fork_registered(), base);
    CHECK_EQ(cy_wsem_enqueue(&s, 1, &a), 0); /* queued: registered */
    CHECK_EQ(cy_fork_registered(), base + 1);
    CHECK_EQ(cy_wsem_release(&s, 2), 0); /* serves a: the queue is empty */
    CHECK_EQ(cy_fork_registered(), base);
    CHECK_EQ(cy_wsem_enqueue(&s, 2, &a), 0);
    CHECK_EQ(cy_fork_registered(), base + 1);
    CHECK_EQ(cy_wsem_cancel(&s, &a), 0); /* the last waiter gives up */
    CHECK_EQ(cy_fork_registered(), base);

    cy_barrier b;
    cy_barrier_init(&b, 2);
    cy_barrier_ticket t1, t2;
    CHECK_EQ(cy_barrier_arrive(&b, &t1, 0), CY_OK);
    CHECK_EQ(cy_fork_registered(), base + 1);
    CHECK_EQ(cy_barrier_arrive(&b, &t2, 0), CY_BARRIER_LAST);
    CHECK_EQ(cy_barrier_action_done(&b, 1), CY_OK); /* released: nobody inside */
    CHECK_EQ(cy_fork_registered(), base);
    CHECK_EQ(cy_barrier_arrive(&b, &t1, 0), CY_OK);
    cy_barrier_leave(&b, &t1);
    CHECK_EQ(cy_fork_registered(), base);

    cy_once o;
    cy_once_init(&o);
    CHECK_EQ(cy_once_try_begin(&o, cy_once_self()), 1);
    CHECK_EQ(cy_fork_registered(), base + 1);
    cy_once_finish(&o);
    CHECK_EQ(cy_fork_registered(), base);
}

/* ------------------------------------------------------------- a real fork */

struct parent {
    cy_wsem s;
    cy_barrier b;
    cy_once o, mine;
    _Atomic int queued, inside, running;
    _Atomic int go; /* lets the parent's threads finish */
};

static void *wsem_waiter(void *arg)
{
    struct parent *p = arg;
    cy_wsem_waiter w;
    if (cy_wsem_enqueue(&p->s, 1, &w) == 0) {
        atomic_store(&p->queued, 1);
        CHECK_EQ(cyw_wait(&cy_wsem_wait_op, &p->s, (uintptr_t)&w, CY_NO_DEADLINE, NULL), CY_OK);
    }
    CHECK_EQ(cy_wsem_release(&p->s, 1), 0);
    return NULL;
}

static void *barrier_waiter(void *arg)
{
    struct parent *p = arg;
    cy_barrier_ticket t;
    CHECK_EQ(cy_barrier_arrive(&p->b, &t, 0), CY_OK);
    atomic_store(&p->inside, 1);
    CHECK_EQ(cyw_wait(&cy_barrier_wait_op, &p->b, (uintptr_t)&t, CY_NO_DEADLINE, NULL), CY_OK);
    return NULL;
}

static void *once_runner(void *arg)
{
    struct parent *p = arg;
    CHECK_EQ(cy_once_try_begin(&p->o, cy_once_self()), 1);
    atomic_store(&p->running, 1);
    while (!atomic_load(&p->go))
        cy_cpu_relax();
    cy_once_finish(&p->o);
    return NULL;
}

static void test_child_resets(void)
{
    static struct parent p;
    cy_wsem_init(&p.s, 2);
    CHECK_EQ(cy_wsem_try_acquire(&p.s, 2), 1);
    cy_barrier_init(&p.b, 2);
    cy_once_init(&p.o);
    cy_once_init(&p.mine);
    pthread_t th[3];
    pthread_create(&th[0], NULL, wsem_waiter, &p);
    pthread_create(&th[1], NULL, barrier_waiter, &p);
    pthread_create(&th[2], NULL, once_runner, &p);
    CHECK(cytest_await_flag(&p.queued, 5.0));
    CHECK(cytest_await_flag(&p.inside, 5.0));
    CHECK(cytest_await_flag(&p.running, 5.0));
    /* This thread's own Once runs across the fork: the child keeps it running. */
    CHECK_EQ(cy_once_try_begin(&p.mine, cy_once_self()), 1);
    uint32_t base = cy_fork_registered();
    CHECK(base >= 4);

    pid_t pid = fork();
    if (pid == 0) {
        cy_wait_table_fork_child();
        int bad = cy_fork_child() != base;
        bad |= cy_fork_registered() != 1; /* only our own Once, still running */
        bad |= cy_wsem_waiters(&p.s) != 0 || cy_wsem_held(&p.s) != 2;
        bad |= cy_wsem_release(&p.s, 2) != 0 || !cy_wsem_try_acquire(&p.s, 2); /* none lost */
        bad |= cy_barrier_n_waiting(&p.b) != 0 || cy_barrier_broken(&p.b);
        cy_barrier_ticket t;
        bad |= cy_barrier_arrive(&p.b, &t, 0) != CY_OK; /* a fresh round of 2 */
        cy_barrier_leave(&p.b, &t);
        bad |= cy_once_try_begin(&p.o, cy_once_self()) != 1; /* new again: ours to run */
        cy_once_finish(&p.o);
        bad |= !cy_once_is_done(&p.o);
        bad |= !cy_once_running_in(&p.mine, cy_once_self());
        cy_once_finish(&p.mine);
        bad |= cy_fork_registered() != 0;
        _exit(bad);
    }
    CHECK(pid > 0);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    /* The parent is untouched: everything goes on. */
    cy_once_finish(&p.mine);
    atomic_store(&p.go, 1);
    CHECK_EQ(cy_wsem_release(&p.s, 2), 0);
    cy_barrier_ticket t;
    CHECK_EQ(cy_barrier_arrive(&p.b, &t, 0), CY_BARRIER_LAST);
    CHECK_EQ(cy_barrier_action_done(&p.b, 1), CY_OK);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(cy_wsem_held(&p.s), 0);
    CHECK_EQ(cy_fork_registered(), 0);
}

static const cytest_case cases[] = {
    {"join_leave", test_join_leave, NULL},
    {"child_resets", test_child_resets, NULL},
};

int main(int argc, char **argv)
{
    return cytest_main(argc, argv, "fork", cases, sizeof cases / sizeof cases[0]);
}
