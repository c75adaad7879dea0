/* cy_fork.h - the objects a forked child must reset, and only those.
 *
 * After fork() only the forking thread exists in the child.  An object whose
 * state names other threads - a queued waiter, a Once function running, a
 * barrier round with a thread waiting inside - would wait for them for ever,
 * or hand them what they asked for (units) that nobody then takes.  Such an
 * object joins this registry on its slow path, under its own mutex, when
 * that state begins (its first waiter queues, its Once function starts) and
 * leaves it, under the same mutex, when it ends; each object knows from its
 * own state whether it is in (the QUEUED bit, a count, the Once's state), so
 * fast paths never look.  In the child, cy_fork_child() resets exactly the
 * registered objects.  (CPython does the same for its own locks: threading's
 * _after_fork and _at_fork_reinit.)
 *
 * The registry is an array of (object, reset) beside the objects, so that
 * they carry no link of their own (the Python objects stay within their
 * size budget); an object leaves by a search, over the objects that have
 * waiters right now.  Its mutex may be held by a vanished thread at the
 * fork: the child makes a fresh one before anything else.  Lock order: an
 * object's mutex, then the registry's.
 */
#ifndef CY_FORK_H
#define CY_FORK_H

#include <stdint.h>

/* In the child: forget the vanished threads (a fresh mutex, no queued
 * waiters, ...).  Called with the object out of the registry; it may join
 * again (an object the forking thread itself is inside). */
typedef void (*cy_fork_reset_fn)(void *obj);

/* Joins; the caller holds the object's mutex (or owns the state that made
 * it join: a Once's running call) and has not joined it yet.  Returns 0, or
 * -1 when out of memory: then the object is not reset in a child. */
int cy_fork_join(void *obj, cy_fork_reset_fn reset);

/* Leaves (a no-op if it is not in: a join that ran out of memory). */
void cy_fork_leave(void *obj);

/* In the child of a fork, with no other thread started yet: a fresh
 * registry mutex, then every registered object out of the registry and
 * reset (unless its reset joined it again).  Returns how many. */
uint32_t cy_fork_child(void);

/* How many objects are registered now (for tests). */
uint32_t cy_fork_registered(void);

#endif /* CY_FORK_H */
