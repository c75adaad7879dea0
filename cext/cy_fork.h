/* cy_fork.h - the objects a forked child must reset, and only those.
 *
 * After fork() only the forking thread exists in the child.  An object whose
 * state names other threads - a queued waiter, a Once function running, a
 * barrier round with threads inside - would wait for them for ever, or hand
 * them what they asked for (units, a value) that nobody then takes.  Such an
 * object joins this registry on its slow path, under its own mutex, when its
 * first waiter queues (its Once function starts) and leaves it, under the
 * same mutex, when the last one is gone: the fast paths never see it.  In
 * the child, cy_fork_child() resets exactly the registered objects.  (CPython
 * keeps a registry of its locks for the same reason: threading's
 * _after_fork, _at_fork_reinit.)
 *
 * The registry's own mutex may be held by a vanished thread at the fork:
 * the child makes a fresh one before anything else.  Lock order: an
 * object's mutex, then the registry's.
 */
#ifndef CY_FORK_H
#define CY_FORK_H

#include "cy_list.h"
#include "cy_mutex.h"

typedef struct cy_forknode {
    cy_list link;    /* in the registry while joined; guarded by the registry's mutex */
    uint32_t joined; /* the same, as a flag its object reads under its own mutex (or,
                      * for a Once, in the one thread that runs fn): a leave that has
                      * nothing to do costs a load, not the registry's mutex */
    /* In the child: forget the vanished threads (a fresh mutex, no queued
     * waiters, ...).  Called with the node out of the registry; it may join
     * again (an object the forking thread itself is inside). */
    void (*reset)(struct cy_forknode *n);
} cy_forknode;

static inline void cy_forknode_init(cy_forknode *n, void (*reset)(cy_forknode *))
{
    cy_list_init(&n->link);
    n->joined = 0;
    n->reset = reset;
}

void cy_fork_join_(cy_forknode *n);
void cy_fork_leave_(cy_forknode *n);

/* Joins (a no-op if joined); the caller holds the object's mutex, or owns
 * the state that made it join (a Once's running call). */
static inline void cy_fork_join(cy_forknode *n)
{
    if (!n->joined)
        cy_fork_join_(n);
}

/* Leaves (a no-op if not joined); the same caller's rule. */
static inline void cy_fork_leave(cy_forknode *n)
{
    if (n->joined)
        cy_fork_leave_(n);
}

/* In the child of a fork, with no other thread started yet: a fresh
 * registry mutex, then every registered object reset and out of the
 * registry (unless its reset joined it again).  Returns how many. */
uint32_t cy_fork_child(void);

/* How many objects are registered now (for tests). */
uint32_t cy_fork_registered(void);

#endif /* CY_FORK_H */
