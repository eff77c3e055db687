/* Both halves of the segment ABI (shm_layout.h, docs/SHM.md). */
#include "ipc/shm/shm_segment.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ipc/unix/unix.h"

/* Maps every page of the segment into this process now (~1 ms for the
 * 8 MiB of two default rings, once per connection), so that no request or
 * reply takes a page fault on its first pass through a ring: each would
 * cost both sides microseconds, and a fresh connection's first 58 000
 * 64-byte messages would meet one every 57. Best effort: before Linux 5.14
 * pages fault in on first use, as they did before. */
static void ipc__shm_segment_prefault(ipc__shm_segment *seg)
{
#ifdef MADV_POPULATE_READ
    /* READ maps the memfd's (already allocated) pages writable too: a
     * shared mapping needs no copy on write, and memfds track no dirt. */
    (void)madvise(seg->base, seg->size, MADV_POPULATE_READ);
#else
    (void)seg;
#endif
}

/* Writes the segment header and formats both rings; ready goes last. */
static void ipc__shm_segment_format(ipc__shm_segment *seg, uint64_t ring, uint32_t id,
                                    uint32_t max_clients, uint64_t max_request, uint32_t wire)
{
    ipc__shm_seg_header *h = seg->hdr;
    h->magic = IPC_SHM_SEG_MAGIC;
    h->version = IPC_SHM_VERSION;
    h->header_size = IPC_SHM_HEADER_SIZE;
    h->ring_size = ring;
    h->segment_size = seg->size;
    h->req_offset = ipc__shm_req_offset();
    h->resp_offset = ipc__shm_resp_offset(ring);
    h->max_clients = max_clients;
    h->client_id = id;
    h->creator_pid = (uint32_t)getpid();
    h->creator_uid = (uint32_t)geteuid();
    uint64_t ring_max = ipc__spsc_max_payload(ring);
    h->max_request = (uint32_t)(max_request < ring_max ? max_request : ring_max);
    seg->max_request = h->max_request;
    h->wire = wire;
    seg->wire = wire;
    ipc__spsc_format((ipc__spsc_shared *)(seg->base + h->req_offset), ring);
    ipc__spsc_format((ipc__spsc_shared *)(seg->base + h->resp_offset), ring);
    /* Release: publishes the header and ring formats above. */
    atomic_store_explicit(&h->ready, 1, memory_order_release);
}

/* Attaches both rings; the server consumes requests, the client produces. */
static int ipc__shm_segment_attach(ipc__shm_segment *seg, uint64_t ring, bool server)
{
    uint8_t *req = seg->base + ipc__shm_req_offset();
    uint8_t *resp = seg->base + ipc__shm_resp_offset(ring);
    int rc = ipc__spsc_attach(&seg->req, (ipc__spsc_shared *)req, req + IPC_SHM_RING_CTRL_SIZE,
                             ring, server ? IPC__SPSC_CONSUMER : IPC__SPSC_PRODUCER);
    if (rc == 0)
        rc = ipc__spsc_attach(&seg->resp, (ipc__spsc_shared *)resp, resp + IPC_SHM_RING_CTRL_SIZE,
                             ring, server ? IPC__SPSC_PRODUCER : IPC__SPSC_CONSUMER);
    return rc;
}

int ipc__shm_segment_create(ipc__shm_segment *seg, uint64_t ring_size, uint32_t id,
                            uint32_t max_clients, uint64_t max_request, uint32_t wire, int *fd)
{
    size_t size = ipc__shm_segment_size(ring_size);
    void *base;
    int seg_fd, rc = ipc__memfd_create_sealed("ipc-shm", size, &seg_fd, &base);
    if (rc < 0)
        return rc;
    *seg = (ipc__shm_segment){.base = base, .size = size, .hdr = base};
    ipc__shm_segment_prefault(seg);
    ipc__shm_segment_format(seg, ring_size, id, max_clients, max_request, wire);
    if ((rc = ipc__shm_segment_attach(seg, ring_size, true)) < 0)
        goto failed_attach;
    *fd = seg_fd;
    return 0;
failed_attach:
    ipc__shm_segment_unmap(seg);
    close(seg_fd);
    return rc;
}

/* Copy, validate, use: the header is copied once and only the copy is
 * checked and used. max_clients mismatch is the caller's error: -EINVAL;
 * 0 asks for none in particular. */
int ipc__shm_segment_check(const ipc__shm_seg_header *h, uint32_t id, uint32_t max_clients,
                           uint64_t file_size)
{
    if (h->magic != IPC_SHM_SEG_MAGIC || h->version != IPC_SHM_VERSION ||
        h->header_size != IPC_SHM_HEADER_SIZE || !ipc__spsc_capacity_ok(h->ring_size))
        return -EPROTO;
    if (h->segment_size != ipc__shm_segment_size(h->ring_size) || h->segment_size != file_size ||
        h->req_offset != ipc__shm_req_offset() ||
        h->resp_offset != ipc__shm_resp_offset(h->ring_size) ||
        h->client_id != id || h->client_id >= h->max_clients ||
        h->max_request > ipc__spsc_max_payload(h->ring_size) || h->wire > 1)
        return -EPROTO;
    if (max_clients != 0 && h->max_clients != max_clients)
        return -EINVAL;
    return 0;
}

/* Maps the header once the ready flag is seen and checks a copy of it. */
static int ipc__shm_segment_validate(ipc__shm_segment *seg, uint32_t id, uint32_t max_clients,
                                     uint32_t *served)
{
    /* Acquire: pairs with the server's release of ready. */
    if (atomic_load_explicit(&seg->hdr->ready, memory_order_acquire) != 1)
        return -EPROTO;
    ipc__shm_seg_header h;
    memcpy(&h, seg->base, offsetof(ipc__shm_seg_header, ready));
    int rc = ipc__shm_segment_check(&h, id, max_clients, seg->size);
    if (rc == 0 || rc == -EINVAL) /* the header is valid: its capacity is true */
        *served = h.max_clients;
    if (rc < 0)
        return rc;
    seg->max_request = h.max_request;
    seg->wire = h.wire;
    return ipc__shm_segment_attach(seg, h.ring_size, false) < 0 ? -EPROTO : 0;
}

int ipc__shm_segment_map(ipc__shm_segment *seg, int fd, uint32_t id, uint32_t max_clients,
                         uint32_t *served)
{
    uint32_t ignored;
    if (served == NULL)
        served = &ignored;
    *served = 0;
    void *base;
    size_t size;
    int rc = ipc__memfd_map_sealed(fd, IPC_SHM_HEADER_SIZE,
                                   ipc__shm_segment_size(IPC__SPSC_MAX_CAPACITY), &base, &size);
    if (rc < 0)
        return rc;
    *seg = (ipc__shm_segment){.base = base, .size = size, .hdr = base};
    if ((rc = ipc__shm_segment_validate(seg, id, max_clients, served)) < 0)
        ipc__shm_segment_unmap(seg);
    else
        ipc__shm_segment_prefault(seg);
    return rc;
}

void ipc__shm_segment_unmap(ipc__shm_segment *seg)
{
    if (seg->base != NULL)
        munmap(seg->base, seg->size);
    *seg = (ipc__shm_segment){0};
}
