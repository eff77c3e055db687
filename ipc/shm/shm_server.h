/*
 * The shared-memory server's state, shared by its two halves (private to
 * ipc/shm): shm_server.c serves (rings, replies, waits, the ops table),
 * shm_admit.c connects (the watcher thread that accepts, refuses, admits
 * and notices hang-ups; the server thread's install of admitted slots and
 * reclaim of hung-up ones). Only the server's own thread changes the client
 * table (slots, views); the watcher claims an id under admit_mu, builds the
 * slot in staged[id], says hello and hands the id over, and talks to the
 * server thread through hints, admin_pending, accept_pending and the two
 * queues (docs/SHM.md, edges [A] and [Q]; model: ipc/shm/model/slots.pml).
 */
#ifndef IPC_SHM_SHM_SERVER_H
#define IPC_SHM_SHM_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc/shm/bell.h"
#include "ipc/shm/mpsc.h"
#include "ipc/shm/shm_handshake.h"
#include "ipc/shm/shm_layout.h"
#include "ipc/shm/shm_segment.h"
#include "ipc/transport.h"

/* epoll tags besides slot indices. */
#define IPC__TAG_LISTEN (UINT64_MAX - 1)
#define IPC__TAG_STOP UINT64_MAX

typedef struct ipc__shm_out {
    struct ipc__shm_out *next;
    size_t len;
    unsigned char data[];
} ipc__shm_out;

typedef struct ipc__shm_slot {
    int fd; /* rendezvous socket; -1 when the slot is free */
    ipc__shm_segment seg; /* we consume seg.req and produce seg.resp */
    int wake_fd;          /* the client's eventfd in our doorbell's epoll set */
    ipc__shm_out *out_head, *out_tail; /* replies that did not fit */
    size_t out_cost;    /* what they cost us: ipc__out_cost() summed */
    bool paused;        /* queue at its bound: requests left in the ring */
    bool peeked;        /* a request is lent to the application */
    bool doomed;        /* dropped while lent: finish at release */
    uint32_t peeked_len;
    bool loaned;        /* a reply is being written in place */
    bool wake_owed;     /* published to unannounced in a batch: wake at its end */
    bool held;          /* by the run loop (ops->hold): its requests wait */
    uint64_t gen;       /* this connection's number (ops->conn_gen) */
} ipc__shm_slot;

typedef struct ipc__shm_server {
    ipc_server base;
    char name[IPC_SHM_NAME_MAX + 1];
    size_t max_clients;
    ipc__shm_slot *slots;
    ipc__spsc_ring **views;  /* mpsc table: &slots[i].seg.req or NULL */
    _Atomic uint8_t *hints; /* watcher -> main: slot i had a socket event */
    struct pollfd *pfds;    /* sweep scratch */
    ipc__mpsc mpsc;
    size_t n_out; /* slots with queued replies */
    int listen_fd, epoll_fd, stop_fd;
    ipc__bell bell; /* opened at the first listen, lives until destroy (wake) */
    pthread_t watcher;
    bool watcher_running;
    pthread_mutex_t admit_mu; /* guards reserved, staged_ids, admit */
    bool *reserved;  /* id claimed: from the claim until its drop has unmapped */
    ipc__shm_slot *staged; /* built by the watcher, installed by the server */
    int *staged_ids; /* watcher -> main: ids whose hello went out */
    size_t staged_n;
    int *admit;      /* watcher -> main: accepted, checked, no id was free */
    size_t admit_n;
    /* The limit told to new clients: run() may lower base.max_message on
     * the server thread while the watcher builds a segment. */
    _Atomic size_t hello_limit;
    uint64_t last_gen; /* the last connection's number; server thread */
    _Atomic uint32_t admin_pending;
    _Atomic uint32_t accept_pending;
} ipc__shm_server;

static inline ipc__shm_server *ipc__srv(ipc_server *base)
{
    return (ipc__shm_server *)base;
}

/* shm_server.c */
/* The longest request taken now (ipc_server_run() may lower it). */
size_t ipc__srv_limit(ipc__shm_server *s);
/* Drops client id; its segment goes once the application releases a
 * request it still reads, and then the id is free again. */
void ipc__srv_drop(ipc__shm_server *s, int id);

/* shm_admit.c */
int ipc__srv_epoll_add(int ep, int fd, uint32_t events, uint64_t tag);
/* The id of a dropped slot is free again (after its unmap: slots.pml). */
void ipc__srv_unclaim(ipc__shm_server *s, int id);
/* Server thread: puts what the watcher admitted into the table. */
void ipc__srv_install_staged(ipc__shm_server *s);
/* After the watcher stopped: closes connections still queued. */
void ipc__srv_close_queued(ipc__shm_server *s);
/* Server thread: applies what the watcher asked for (hang-ups to reclaim,
 * connections to admit). Cheap when nothing is pending. */
void ipc__srv_admin(ipc__shm_server *s);
/* The watcher thread, from listen() to close(). */
int ipc__srv_start_watcher(ipc__shm_server *s);
void ipc__srv_stop_watcher(ipc__shm_server *s);

#endif
