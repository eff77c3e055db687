/* The server's doorbell: a read-only page and per-client eventfds (bell.h). */
#include "ipc/shm/bell.h"

#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ipc/shm/wait.h"
#include "ipc/unix/unix.h"

/* epoll tag of self_fd; clients' eventfds are tagged with their fd. */
#define IPC__BELL_TAG_SELF UINT64_MAX

static int ipc__bell_watch(int ep, int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

void ipc__bell_init(ipc__bell *b)
{
    *b = (ipc__bell){.page_fd = -1, .ep = -1};
    atomic_init(&b->self_fd, -1);
}

int ipc__bell_open(ipc__bell *b, uint32_t version)
{
    ipc__bell_init(b);
    void *page;
    int rc = ipc__memfd_create_owner_writes("ipc-shm-bell", IPC__BELL_PAGE_SIZE, &b->page_fd,
                                            &page);
    if (rc < 0)
        return rc;
    b->page = page;
    b->page->magic = IPC__BELL_MAGIC;
    b->page->version = version;
    atomic_store_explicit(&b->page->asleep, 0, memory_order_relaxed);
    b->ep = epoll_create1(EPOLL_CLOEXEC);
    if (b->ep < 0) {
        rc = -errno;
        goto failed_page;
    }
    int self = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (self < 0) {
        rc = -errno;
        goto failed_epoll;
    }
    /* Level-triggered and drained: only this process holds self_fd. */
    if ((rc = ipc__bell_watch(b->ep, self, EPOLLIN, IPC__BELL_TAG_SELF)) < 0)
        goto failed_self;
    /* Relaxed: wake() may read it from a signal handler of this thread, or
     * from a thread that got the server object through a synchronising
     * hand-off; the fd value publishes nothing else. */
    atomic_store_explicit(&b->self_fd, self, memory_order_relaxed);
    return 0;
failed_self:
    close(self);
failed_epoll:
    close(b->ep);
    b->ep = -1;
failed_page:
    munmap(b->page, IPC__BELL_PAGE_SIZE);
    close(b->page_fd);
    ipc__bell_init(b);
    return rc;
}

void ipc__bell_close(ipc__bell *b)
{
    int self = atomic_exchange_explicit(&b->self_fd, -1, memory_order_relaxed);
    if (self >= 0)
        close(self);
    if (b->ep >= 0)
        close(b->ep);
    if (b->page != NULL)
        munmap(b->page, IPC__BELL_PAGE_SIZE);
    if (b->page_fd >= 0)
        close(b->page_fd);
    ipc__bell_init(b);
}

int ipc__bell_add(ipc__bell *b, int *efd)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return -errno;
    /* Edge-triggered, never read: the client shares this open file
     * description, so its O_NONBLOCK flag and its counter are the client's
     * to change. Every write queues an edge that the next epoll_wait
     * reports, whatever the counter holds, so nothing the client does to
     * the fd reaches past its own wake-ups (bell.h). */
    int rc = ipc__bell_watch(b->ep, fd, EPOLLIN | EPOLLET, (uint64_t)fd);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    *efd = fd;
    return 0;
}

void ipc__bell_remove(ipc__bell *b, int efd)
{
    if (efd < 0)
        return;
    (void)epoll_ctl(b->ep, EPOLL_CTL_DEL, efd, NULL);
    close(efd);
}

void ipc__bell_ring_self(ipc__bell *b)
{
    int fd = atomic_load_explicit(&b->self_fd, memory_order_relaxed);
    if (fd >= 0)
        ipc__eventfd_signal(fd);
}

/* Empties what fired among evs[0..n): self_fd only. A client's eventfd is
 * edge-triggered, so reporting it consumed its edge; it is never read. */
static void ipc__bell_consume(ipc__bell *b, const struct epoll_event *evs, int n)
{
    for (int i = 0; i < n; i++)
        if (evs[i].data.u64 == IPC__BELL_TAG_SELF)
            ipc__eventfd_drain(atomic_load_explicit(&b->self_fd, memory_order_relaxed));
}

void ipc__bell_drain(ipc__bell *b)
{
    struct epoll_event evs[64];
    int n;
    while ((n = epoll_wait(b->ep, evs, 64, 0)) > 0) {
        ipc__bell_consume(b, evs, n);
        if (n < 64)
            return;
    }
}

/* ms for epoll_wait until the deadline, rounded up (never early); -1 for
 * no limit. */
static int ipc__bell_ms(uint64_t deadline_ns, uint64_t now)
{
    if (deadline_ns == IPC__WAIT_FOREVER)
        return -1;
    uint64_t ms = (deadline_ns - now + 999999) / 1000000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

static void ipc__bell_set_asleep(ipc__bell *b, uint32_t v)
{
    if (!b->held)
        /* Relaxed: ordered by the fence that follows (W1) or, when
         * clearing, a stale 1 only costs a client one needless write. */
        atomic_store_explicit(&b->page->asleep, v, memory_order_relaxed);
}

/* epoll_wait slept to its timeout and ready() now holds, with asleep still
 * set and the last W2 having missed the publish: by the handshake the
 * publisher's P3 (an eventfd write) must follow. Wait up to the grace for
 * it (wait.h: stalled waits). Cold: only a timeout with the condition held. */
__attribute__((noinline, cold)) static void ipc__bell_judge_timeout(ipc__bell *b)
{
    uint64_t until = ipc__now_ns() + IPC__WAIT_STALL_GRACE_NS;
    for (;;) {
        uint64_t now = ipc__now_ns();
        if (now >= until) {
            ipc__wait_count_timeout_held(false);
            return;
        }
        struct epoll_event evs[64];
        int n = epoll_wait(b->ep, evs, 64, ipc__bell_ms(until, now));
        if (n > 0) {
            ipc__bell_consume(b, evs, n);
            ipc__wait_count_timeout_held(true);
            return;
        }
    }
}

int ipc__bell_wait(ipc__bell *b, bool (*ready)(void *), void *arg, uint64_t spin_ns,
                   uint64_t deadline_ns)
{
    if (ready(arg) || ipc__wait_spin(ready, arg, spin_ns, deadline_ns))
        return 0;
    ipc__bell_set_asleep(b, 1); /* W1 */
    ipc__wait_fence();
    int rc = 0;
    for (;;) {
        if (ready(arg)) /* W2 */
            break;
        uint64_t now = ipc__now_ns();
        if (now >= deadline_ns) {
            rc = -ETIMEDOUT;
            break;
        }
        struct epoll_event evs[64];
        int n = epoll_wait(b->ep, evs, 64, ipc__bell_ms(deadline_ns, now)); /* W3 */
        if (n > 0) {
            ipc__bell_consume(b, evs, n);
        } else if (n == 0 && ready(arg)) {
            /* The sleep timed out with the condition held: lost or late? */
            ipc__bell_judge_timeout(b);
            break;
        }
    }
    ipc__bell_set_asleep(b, 0);
    return rc;
}

int ipc__bell_hold(ipc__bell *b)
{
    atomic_store_explicit(&b->page->asleep, 1, memory_order_relaxed);
    b->held = true;
    /* The owner's next look for work comes after this fence (W1 of every
     * wait the event loop does in poll()). */
    ipc__wait_fence();
    return b->ep;
}

int ipc__bell_map(int fd, uint32_t version, const ipc__bell_page **page)
{
    const void *p;
    int rc = ipc__memfd_map_readonly(fd, IPC__BELL_PAGE_SIZE, &p);
    if (rc < 0)
        return rc;
    const ipc__bell_page *bp = p;
    uint64_t magic = bp->magic; /* each field read once */
    uint32_t v = bp->version;
    if (magic != IPC__BELL_MAGIC || v != version) {
        munmap((void *)p, IPC__BELL_PAGE_SIZE);
        return -EPROTO;
    }
    *page = bp;
    return 0;
}

void ipc__bell_unmap(const ipc__bell_page *page)
{
    if (page != NULL)
        munmap((void *)page, IPC__BELL_PAGE_SIZE);
}

void ipc__bell_ring(const ipc__bell_page *page, int efd)
{
    /* P1 (the caller's publish) before P2. */
    ipc__wait_fence();
    /* Relaxed: the fence pair orders it; the value publishes nothing. */
    if (atomic_load_explicit(&page->asleep, memory_order_relaxed) != 0)
        ipc__eventfd_signal(efd);
}
