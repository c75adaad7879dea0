#include "cy_fork.h"

static cy_mutex reg_mu;
static cy_list reg = {&reg, &reg};
static uint32_t reg_n; /* guarded by reg_mu */

void cy_fork_join_(cy_forknode *n)
{
    n->joined = 1;
    cy_mutex_lock(&reg_mu);
    cy_list_push_back(&reg, &n->link);
    reg_n++;
    cy_mutex_unlock(&reg_mu);
}

void cy_fork_leave_(cy_forknode *n)
{
    n->joined = 0;
    cy_mutex_lock(&reg_mu);
    cy_list_remove(&n->link);
    reg_n--;
    cy_mutex_unlock(&reg_mu);
}

uint32_t cy_fork_child(void)
{
    cy_mutex_init(&reg_mu); /* a vanished thread may have held it */
    /* Detach the whole list first: a reset may join again (the forking
     * thread's own Once still running), which must not be met again here. */
    cy_list old;
    uint32_t n = 0;
    if (cy_list_empty(&reg)) {
        return 0;
    }
    old.next = reg.next;
    old.prev = reg.prev;
    old.next->prev = &old;
    old.prev->next = &old;
    cy_list_init(&reg);
    reg_n = 0;
    while (!cy_list_empty(&old)) {
        cy_forknode *node = cy_container_of(old.next, cy_forknode, link);
        cy_list_remove(&node->link);
        node->joined = 0;
        node->reset(node);
        n++;
    }
    return n;
}

uint32_t cy_fork_registered(void)
{
    cy_mutex_lock(&reg_mu);
    uint32_t n = reg_n;
    cy_mutex_unlock(&reg_mu);
    return n;
}
