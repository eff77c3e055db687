#include "ipc/socket/frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A drained buffer larger than this is given back, so one big message does
 * not pin memory for the life of the connection. */
#define IPC_FRAME_KEEP (64u << 10)

void ipc__frame_reader_init(ipc__frame_reader *r, size_t max_payload)
{
    memset(r, 0, sizeof(*r));
    r->max_payload = max_payload;
}

void ipc__frame_reader_free(ipc__frame_reader *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

size_t ipc__frame_reader_room(ipc__frame_reader *r, size_t min_room, uint8_t **dst)
{
    if (r->start == r->end) {
        r->start = r->end = 0;
        if (r->capacity > IPC_FRAME_KEEP && min_room <= IPC_FRAME_KEEP) {
            free(r->buf);
            r->buf = NULL;
            r->capacity = 0;
        }
    }
    if (r->capacity - r->end < min_room && r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->capacity - r->end < min_room) {
        size_t cap = r->capacity ? r->capacity : 4096;
        while (cap - r->end < min_room)
            cap *= 2;
        uint8_t *p = realloc(r->buf, cap);
        if (p != NULL) {
            r->buf = p;
            r->capacity = cap;
        }
    }
    *dst = r->buf + r->end;
    return r->capacity - r->end;
}

void ipc__frame_reader_commit(ipc__frame_reader *r, size_t n)
{
    r->end += n;
}

int ipc__frame_reader_peek(const ipc__frame_reader *r, const uint8_t **payload, uint32_t *len)
{
    size_t avail = r->end - r->start;
    if (avail < IPC__FRAME_HEADER)
        return 0;
    uint32_t n = ipc__frame_get_len(r->buf + r->start);
    if (n > r->max_payload)
        return -EMSGSIZE;
    if (avail - IPC__FRAME_HEADER < n)
        return 0;
    *payload = r->buf + r->start + IPC__FRAME_HEADER;
    *len = n;
    return 1;
}

void ipc__frame_reader_consume(ipc__frame_reader *r)
{
    r->start += IPC__FRAME_HEADER + ipc__frame_get_len(r->buf + r->start);
}

size_t ipc__frame_reader_missing(const ipc__frame_reader *r)
{
    size_t avail = r->end - r->start;
    if (avail < IPC__FRAME_HEADER)
        return IPC__FRAME_HEADER - avail;
    size_t whole = IPC__FRAME_HEADER + (size_t)ipc__frame_get_len(r->buf + r->start);
    return whole > avail ? whole - avail : 0;
}
