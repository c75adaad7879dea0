/* cy_list.h - the one intrusive list every queue of waiters uses.
 *
 * Circular and doubly linked, with a head node (CPython's
 * Include/internal/pycore_llist.h, Linux's list.h): a node lives inside the
 * record it links (a waiter on a caller's stack), so queueing never
 * allocates, and unlinking a node is O(1) from the node alone.  A node that
 * is on no list points to itself, so "am I still queued?" is one load.
 * Not thread-safe: each list is guarded by its owner's mutex.
 */
#ifndef CY_LIST_H
#define CY_LIST_H

#include <stddef.h>

typedef struct cy_list {
    struct cy_list *next, *prev;
} cy_list;

/* The record that holds `node` as its `member`. */
#define cy_container_of(node, type, member) ((type *)((char *)(node) - offsetof(type, member)))

static inline void cy_list_init(cy_list *l) { l->next = l->prev = l; }

static inline int cy_list_empty(const cy_list *head) { return head->next == head; }

/* Whether a node (initialised with cy_list_init) is on a list now. */
static inline int cy_list_linked(const cy_list *node) { return node->next != node; }

static inline void cy_list_push_back(cy_list *head, cy_list *node)
{
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}

static inline void cy_list_push_front(cy_list *head, cy_list *node)
{
    cy_list_push_back(head->next, node);
}

/* Unlinks `node` and leaves it pointing to itself. */
static inline void cy_list_remove(cy_list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    cy_list_init(node);
}

#endif /* CY_LIST_H */
