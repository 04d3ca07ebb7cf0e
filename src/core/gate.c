/*
 * gate: at most max holders at once; the others wait their turn, first come first served,
 * for a bounded time (core.h). A slot a holder leaves goes straight to the oldest waiter,
 * so a stream of newcomers never overtakes those already waiting.
 */
#include "core/core.h"

#include <errno.h>
#include <time.h>

struct gate_waiter {
    struct gate_waiter *next;
    int granted;
};

void gate_init(struct gate *g, int max)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* deadlines that wall-clock jumps ignore */
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    g->max = max > 0 ? max : 1;
    g->in = 0;
    g->head = NULL;
    g->tail = &g->head;
}

void gate_release(struct gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

int gate_enter(struct gate *g, int64_t timeout_ms)
{
    struct gate_waiter w = {NULL, 0};
    struct timespec deadline;
    int rc = 0;

    pthread_mutex_lock(&g->mu);
    if (g->in < g->max && !g->head) {
        g->in++;
        pthread_mutex_unlock(&g->mu);
        return 0;
    }
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)(timeout_ms / 1000);
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    *g->tail = &w;
    g->tail = &w.next;
    while (!w.granted && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&g->cv, &g->mu, &deadline);
    if (!w.granted) {
        /* gave up: out of the queue, which goes on without us */
        struct gate_waiter **pp = &g->head;

        while (*pp != &w)
            pp = &(*pp)->next;
        *pp = w.next;
        if (g->tail == &w.next)
            g->tail = pp;
        pthread_mutex_unlock(&g->mu);
        return -1;
    }
    pthread_mutex_unlock(&g->mu);
    return 0;
}

void gate_leave(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    if (g->head) {
        /* the slot passes to the oldest waiter: in stays as it is */
        struct gate_waiter *w = g->head;

        g->head = w->next;
        if (!g->head)
            g->tail = &g->head;
        w->granted = 1;
        pthread_cond_broadcast(&g->cv);
    } else {
        g->in--;
    }
    pthread_mutex_unlock(&g->mu);
}

int gate_waiting(struct gate *g)
{
    int n = 0;

    pthread_mutex_lock(&g->mu);
    for (struct gate_waiter *w = g->head; w; w = w->next)
        n++;
    pthread_mutex_unlock(&g->mu);
    return n;
}
