#include "cy_hub.h"

#include <stdlib.h>

static cy_hub *hub_alloc(void)
{
    cy_hub *h = (cy_hub *)malloc(sizeof *h);
    if (h == NULL)
        return NULL;
    atomic_init(&h->head, NULL);
    atomic_init(&h->refs, 1);
    atomic_init(&h->seq, 0);
    atomic_init(&h->waiting, 0);
    h->rfd = h->wfd = -1;
    return h;
}

#ifdef _WIN32
/* No descriptor: the loop side waits with cy_hub_wait. */
cy_hub *cy_hub_new(void) { return hub_alloc(); }
static void hub_signal(cy_hub *h) { (void)h; }
static void hub_clear(cy_hub *h) { (void)h; }
static void hub_close(cy_hub *h) { (void)h; }
#else
#include <fcntl.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

cy_hub *cy_hub_new(void)
{
    cy_hub *h = hub_alloc();
    if (h == NULL)
        return NULL;
#ifdef __linux__
    h->rfd = h->wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (h->rfd < 0)
        h->rfd = h->wfd = -1; /* the loop side waits with cy_hub_wait */
#else
    int fds[2];
    if (pipe(fds) != 0)
        return h;
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    h->rfd = fds[0];
    h->wfd = fds[1];
#endif
    return h;
}

static void hub_signal(cy_hub *h)
{
    if (h->wfd < 0)
        return;
    uint64_t one = 1;
    /* A full pipe (EAGAIN) is signalled already. */
#ifdef __linux__
    ssize_t r = write(h->wfd, &one, sizeof one);
#else
    ssize_t r = write(h->wfd, &one, 1);
#endif
    (void)r;
}

static void hub_clear(cy_hub *h)
{
    if (h->rfd < 0)
        return;
    uint64_t buf[8];
    while (read(h->rfd, buf, sizeof buf) > 0) {
#ifdef __linux__
        break; /* an eventfd reads its whole count at once */
#endif
    }
}

static void hub_close(cy_hub *h)
{
    if (h->rfd < 0)
        return;
    close(h->rfd);
    if (h->wfd != h->rfd)
        close(h->wfd);
}
#endif

static void hub_ref(cy_hub *h) { atomic_fetch_add_explicit(&h->refs, 1, CY_RELAXED); }

void cy_hub_unref(cy_hub *h)
{
    if (atomic_fetch_sub_explicit(&h->refs, 1, CY_ACQ_REL) == 1) {
        hub_close(h);
        free(h);
    }
}

cy_waiter *cy_hub_take(cy_hub *h)
{
    /* Cleared first: a record pushed after the exchange below finds the
     * list empty and writes again, so none is left without a wake-up. */
    hub_clear(h);
    cy_waiter *w = atomic_exchange_explicit(&h->head, NULL, CY_ACQ_REL), *prev = NULL;
    while (w != NULL) { /* last fired first: reverse */
        cy_waiter *next = w->hnext;
        w->hnext = prev;
        prev = w;
        w = next;
    }
    return prev;
}

void cy_hub_fire(cy_waiter *w)
{
    /* The record is alive here (its claimer or poker holds what keeps it
     * queued); once the word is 1 its owner may drop its reference, so
     * take one for the time of the firing first, and one on the hub. */
    cy_hub *h = w->hub;
    atomic_fetch_add_explicit(&w->refs, 1, CY_RELAXED);
    hub_ref(h);
    atomic_store_explicit(&w->word, 1, CY_RELEASE);
    if (atomic_exchange_explicit(&w->inhub, 1, CY_SEQ_CST) == 0) {
        /* Our reference goes with the record onto the list. */
        cy_waiter *head = atomic_load_explicit(&h->head, CY_RELAXED);
        do
            w->hnext = head;
        while (!atomic_compare_exchange_weak_explicit(&h->head, &head, w, CY_RELEASE, CY_RELAXED));
        if (head == NULL) {
            hub_signal(h);
            /* Dekker with cy_hub_wait: it sets waiting, then reads seq. */
            atomic_fetch_add_explicit(&h->seq, 1, CY_SEQ_CST);
            if (atomic_load_explicit(&h->waiting, CY_SEQ_CST))
                cy_wake_os(&h->seq, CY_WAKE_ALL);
        }
    } else {
        cy_async_unref(w); /* on the list already: it will look again */
    }
    cy_hub_unref(h);
}

cy_status cy_hub_wait(cy_hub *h, uint32_t seen, int64_t deadline)
{
    atomic_store_explicit(&h->waiting, 1, CY_SEQ_CST);
    if (atomic_load_explicit(&h->seq, CY_SEQ_CST) != seen)
        return CY_OK;
    return cy_park(&h->seq, seen, deadline);
}

cy_waiter *cy_async_new(cy_hub *h, void *owner)
{
    cy_waiter *w = (cy_waiter *)malloc(sizeof *w);
    if (w == NULL)
        return NULL;
    atomic_init(&w->word, 0);
    atomic_init(&w->claim, CY_CLAIM_NONE);
    w->fired = NULL;
    w->cancel = NULL;
    w->hub = h;
    w->hnext = NULL;
    atomic_init(&w->inhub, 0);
    atomic_init(&w->refs, 1);
    w->owner = owner;
    hub_ref(h);
    return w;
}

void cy_async_begin(cy_waiter *w, cy_cancel *c)
{
    w->cancel = c;
    if (c == NULL)
        return;
    w->cnode.waiter = w;
    w->cnode.key = NULL;
    cy_mutex_lock(&c->mu);
    cy_list_push_back(&c->waiters, &w->cnode.link);
    cy_mutex_unlock(&c->mu);
    if (atomic_load_explicit(&c->fired, CY_SEQ_CST))
        cy_waiter_claim(w, CY_CLAIM_CANCEL); /* it is no task's yet: nothing to fire */
}

void cy_async_unref(cy_waiter *w)
{
    if (atomic_fetch_sub_explicit(&w->refs, 1, CY_ACQ_REL) == 1) {
        cy_hub *h = w->hub;
        free(w);
        cy_hub_unref(h);
    }
}

void cy_async_settle(cy_waiter *w)
{
    /* Nobody wakes an async record's word by address: spin, then nap. */
    for (int i = 0; atomic_load_explicit(&w->word, CY_ACQUIRE) == 0; i++) {
        if (i < CY_SPIN)
            cy_cpu_relax();
        else
            (void)cy_park(&w->word, 0, cy_deadline_after(20000));
    }
}
