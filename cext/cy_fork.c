#include "cy_fork.h"

#include <stdlib.h>

#include "cy_mutex.h"

typedef struct {
    void *obj;
    cy_fork_reset_fn reset;
} entry;

static cy_mutex reg_mu;
static entry *reg;      /* guarded by reg_mu */
static uint32_t reg_n;  /* entries in use */
static uint32_t reg_cap;

int cy_fork_join(void *obj, cy_fork_reset_fn reset)
{
    int rc = 0;
    cy_mutex_lock(&reg_mu);
    if (reg_n == reg_cap) {
        uint32_t cap = reg_cap == 0 ? 16 : reg_cap * 2;
        entry *grown = cap > reg_cap ? realloc(reg, (size_t)cap * sizeof *reg) : NULL;
        if (grown == NULL) {
            rc = -1;
            goto out;
        }
        reg = grown;
        reg_cap = cap;
    }
    reg[reg_n].obj = obj;
    reg[reg_n].reset = reset;
    reg_n++;
out:
    cy_mutex_unlock(&reg_mu);
    return rc;
}

void cy_fork_leave(void *obj)
{
    cy_mutex_lock(&reg_mu);
    /* From the end: the objects that joined last tend to leave first. */
    for (uint32_t i = reg_n; i-- > 0;) {
        if (reg[i].obj == obj) {
            reg[i] = reg[--reg_n];
            break;
        }
    }
    cy_mutex_unlock(&reg_mu);
}

uint32_t cy_fork_child(void)
{
    cy_mutex_init(&reg_mu); /* a vanished thread may have held it */
    /* Detach the entries first: a reset may join again (the forking
     * thread's own Once still running), which must not be met again here. */
    entry *old = reg;
    uint32_t n = reg_n;
    reg = NULL;
    reg_n = reg_cap = 0;
    for (uint32_t i = 0; i < n; i++)
        old[i].reset(old[i].obj);
    free(old);
    return n;
}

uint32_t cy_fork_registered(void)
{
    cy_mutex_lock(&reg_mu);
    uint32_t n = reg_n;
    cy_mutex_unlock(&reg_mu);
    return n;
}
