#include "ipc/shm/fd_relay.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ipc/unix/unix.h"

struct ipc__relay_wait {
    ipc__waitpoint *bell;
    uint32_t seq;
};

static bool ipc__relay_moved(void *arg)
{
    struct ipc__relay_wait *w = arg;
    /* Acquire: pairs with the notifier's release bump of seq. */
    return atomic_load_explicit(&w->bell->seq, memory_order_acquire) != w->seq;
}

void ipc__relay_signal_now(ipc__fd_relay *r)
{
    ipc__eventfd_signal(r->efd);
}

static void *ipc__relay_main(void *arg)
{
    ipc__fd_relay *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        while (!r->armed && !r->quit)
            pthread_cond_wait(&r->cv, &r->mu);
        struct ipc__relay_wait w = {r->bell, r->seq};
        bool quit = r->quit;
        pthread_mutex_unlock(&r->mu);
        if (quit)
            return NULL;
        /* Wakes on a notify, on the tick, or (via a bump) on stop. */
        (void)ipc__wait_until(r->bell, ipc__relay_moved, &w, 0,
                             ipc__now_ns() + IPC_RELAY_TICK_NS);
        pthread_mutex_lock(&r->mu);
        quit = r->quit;
        r->armed = false;
        pthread_mutex_unlock(&r->mu);
        if (quit)
            return NULL;
        ipc__relay_signal_now(r);
    }
}

int ipc__relay_start(ipc__fd_relay *r, ipc__waitpoint *bell)
{
    memset(r, 0, sizeof(*r));
    r->bell = bell;
    r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r->efd < 0)
        return -errno;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    ipc__wait_subscribe(bell);
    int rc = ipc__thread_start_nosig(&r->thread, ipc__relay_main, r);
    if (rc < 0) {
        ipc__wait_unsubscribe(bell);
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        close(r->efd);
        r->efd = -1;
        return rc;
    }
    r->running = true;
    return 0;
}

void ipc__relay_stop(ipc__fd_relay *r)
{
    if (!r->running)
        return;
    pthread_mutex_lock(&r->mu);
    r->quit = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    ipc__wait_notify(r->bell); /* subscribed: bumps seq, so a sleeping relay wakes */
    pthread_join(r->thread, NULL);
    ipc__wait_unsubscribe(r->bell);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    close(r->efd);
    r->efd = -1;
    r->running = false;
}

uint32_t ipc__relay_seq(const ipc__fd_relay *r)
{
    /* Acquire: what a notifier published before bumping seq is visible to
     * the owner's look that follows. */
    return atomic_load_explicit(&r->bell->seq, memory_order_acquire);
}

void ipc__relay_arm(ipc__fd_relay *r, uint32_t seq)
{
    pthread_mutex_lock(&r->mu);
    r->armed = true;
    r->seq = seq;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void ipc__relay_drain(ipc__fd_relay *r)
{
    ipc__eventfd_drain(r->efd);
}
