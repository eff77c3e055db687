/*
 * The read-only page through which a server publishes its counters
 * (counters.h) to other processes, and the client that reads it. Internal.
 *
 * Publication: the counters of a server live in a memfd. While it listens, a
 * small thread accepts on the abstract socket "\0ipc-stats/<transport>/<id>"
 * and hands each caller that passes the credential rule (ipc/unix/unix.h) a
 * read-only descriptor of that memfd (SCM_RIGHTS). Nothing touches the file
 * system, and the name vanishes with the process.
 */
#ifndef IPC_STATS_H
#define IPC_STATS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "ipc/counters.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A server's counters and their publication. */
typedef struct ipc__stats_pub {
    ipc__stats_block *block; /* never NULL once created */
    int memfd;               /* -1 when the block is on the heap */
    int listen_fd;           /* the abstract socket, -1 when not published */
    pthread_t thread;
    bool thread_running;
} ipc__stats_pub;

/* Allocates zeroed counters (a memfd mapping, else the heap). 0 or -ENOMEM. */
int ipc__stats_pub_init(ipc__stats_pub *p);
/* Starts answering on "\0ipc-stats/<transport>/<id>" (a thread of its
 * own). 0, also when there is nothing to publish (the counters are on the
 * heap) or another process holds the name (a squatter cannot keep a server
 * from serving); -EUSERS when the thread cannot start (unix.h), or -errno
 * when the socket cannot be made. On failure nothing is left. */
int ipc__stats_publish(ipc__stats_pub *p, const char *transport, const char *name);
void ipc__stats_unpublish(ipc__stats_pub *p);
void ipc__stats_pub_free(ipc__stats_pub *p);

/* The abstract address for a server's stats page. */
int ipc__stats_addr(const char *transport, const char *name, char *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* IPC_STATS_H */
