/*
 * Socket framing: a 4-byte little-endian u32 length, then that many payload
 * bytes (docs/PROTOCOL.md). This target holds the byte order and the
 * reassembly buffer the server feeds from non-blocking reads; it does no I/O,
 * so it can be fuzzed alone.
 */
#ifndef IPC_SOCKET_FRAME_H
#define IPC_SOCKET_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IPC__FRAME_HEADER 4u

static inline void ipc__frame_put_len(uint8_t out[IPC__FRAME_HEADER], uint32_t len)
{
    out[0] = (uint8_t)len;
    out[1] = (uint8_t)(len >> 8);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 24);
}

static inline uint32_t ipc__frame_get_len(const uint8_t in[IPC__FRAME_HEADER])
{
    return (uint32_t)in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 |
           (uint32_t)in[3] << 24;
}

/*
 * Reassembly of a byte stream into frames. Bytes [start, end) of buf are
 * received and not yet consumed. The buffer grows to hold one whole frame of
 * at most max_payload bytes and shrinks back once drained.
 */
typedef struct ipc__frame_reader {
    uint8_t *buf;
    size_t capacity;
    size_t start;
    size_t end;
    size_t max_payload;
} ipc__frame_reader;

void ipc__frame_reader_init(ipc__frame_reader *r, size_t max_payload);
void ipc__frame_reader_free(ipc__frame_reader *r);

/* Space to read into: at least min_room bytes when memory allows. Returns
 * the room (0 when out of memory) and sets *dst. */
size_t ipc__frame_reader_room(ipc__frame_reader *r, size_t min_room, uint8_t **dst);

/* Records n bytes written at the pointer ipc__frame_reader_room() gave. */
void ipc__frame_reader_commit(ipc__frame_reader *r, size_t n);

/*
 * The next whole frame: 1 with *payload / *len set (valid until the next
 * call on r), 0 when more bytes are needed, -EMSGSIZE when the announced
 * length exceeds max_payload (the stream cannot be trusted further).
 */
int ipc__frame_reader_peek(const ipc__frame_reader *r, const uint8_t **payload, uint32_t *len);

/* Drops the frame ipc__frame_reader_peek() returned. */
void ipc__frame_reader_consume(ipc__frame_reader *r);

/* Bytes still to receive before the frame at the front is whole (at least
 * the header); 0 when a whole frame is buffered. Use it only after
 * ipc__frame_reader_peek() returned 0. */
size_t ipc__frame_reader_missing(const ipc__frame_reader *r);

/* Bytes received and not yet consumed. */
static inline size_t ipc__frame_reader_buffered(const ipc__frame_reader *r)
{
    return r->end - r->start;
}

#ifdef __cplusplus
}
#endif

#endif /* IPC_SOCKET_FRAME_H */
