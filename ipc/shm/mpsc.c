/* MPSC doorbell over per-producer SPSC rings (see mpsc.h). */
#include "ipc/shm/mpsc.h"

void ipc__mpsc_init(ipc__mpsc *m, ipc__spsc_ring *const *rings, size_t count, ipc__bell *bell)
{
    *m = (ipc__mpsc){.rings = rings, .count = count, .bell = bell, .next = 0};
}

int ipc__mpsc_poll(ipc__mpsc *m)
{
    size_t i = m->next < m->count ? m->next : 0;
    for (size_t n = 0; n < m->count; n++) {
        ipc__spsc_ring *r = m->rings[i];
        if (r != NULL && ipc__spsc_readable(r) != 0) {
            /* Next time start after this one: fairness. */
            m->next = i + 1;
            return (int)i;
        }
        if (++i == m->count)
            i = 0;
    }
    return -1;
}

struct ipc__mpsc_wait {
    ipc__mpsc *m;
    bool (*interrupt)(void *);
    void *arg;
    int found;
    bool interrupted;
};

static bool ipc__mpsc_ready(void *p)
{
    struct ipc__mpsc_wait *w = p;
    if (w->interrupt != NULL && w->interrupt(w->arg)) {
        w->interrupted = true;
        return true;
    }
    w->found = ipc__mpsc_poll(w->m);
    return w->found >= 0;
}

int ipc__mpsc_poll_briefly(ipc__mpsc *m, bool (*interrupt)(void *arg), void *arg)
{
    struct ipc__mpsc_wait w = {.m = m, .interrupt = interrupt, .arg = arg, .found = -1};
    if (!ipc__wait_spin_briefly(ipc__mpsc_ready, &w))
        return -1;
    return w.interrupted ? IPC__MPSC_INTERRUPTED : w.found;
}

int ipc__mpsc_wait(ipc__mpsc *m, bool (*interrupt)(void *arg), void *arg, uint64_t spin_ns,
                  uint64_t deadline_ns)
{
    struct ipc__mpsc_wait w = {.m = m, .interrupt = interrupt, .arg = arg, .found = -1};
    int rc = ipc__bell_wait(m->bell, ipc__mpsc_ready, &w, spin_ns, deadline_ns);
    if (rc < 0)
        return rc;
    return w.interrupted ? IPC__MPSC_INTERRUPTED : w.found;
}
