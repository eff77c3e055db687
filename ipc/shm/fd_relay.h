/*
 * Turns a futex waitpoint into a pollable file descriptor, for event loops
 * (ipc_client_fd on shared memory; the server's doorbell is an epoll set
 * already, bell.h). Internal.
 *
 * The owner works without waiting (try_ calls). When it finds nothing to do
 * it arms the relay with the doorbell's seq as it read it *before* its last
 * look; a relay thread, subscribed to the doorbell so that every notify bumps
 * seq, sleeps until seq moves past that value and then makes the eventfd
 * readable. A notify that raced with the owner's last look either was seen by
 * that look or moved seq after the armed value: no wake is lost. The thread
 * touches only the doorbell and its own fields, never the rings. It also
 * fires every IPC_RELAY_TICK_NS while armed, so a peer that scribbles the
 * doorbell can delay the owner by at most that long.
 */
#ifndef IPC_SHM_FD_RELAY_H
#define IPC_SHM_FD_RELAY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ipc/shm/wait.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IPC_RELAY_TICK_NS (250ull * 1000 * 1000)

typedef struct ipc__fd_relay {
    ipc__waitpoint *bell;
    int efd;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool running;
    bool armed;      /* under mu */
    bool quit;       /* under mu */
    uint32_t seq;    /* under mu: the doorbell value the owner last saw */
} ipc__fd_relay;

/* Starts relaying bell to a new eventfd (r->efd). 0 or -errno. */
int ipc__relay_start(ipc__fd_relay *r, ipc__waitpoint *bell);
/* Stops the thread and closes the eventfd. Safe on a relay never started. */
void ipc__relay_stop(ipc__fd_relay *r);
/* The doorbell value to arm with: read it before the last look for work. */
uint32_t ipc__relay_seq(const ipc__fd_relay *r);
/* Asks for a readable eventfd once the doorbell moves past seq. */
void ipc__relay_arm(ipc__fd_relay *r, uint32_t seq);
/* Makes the eventfd readable now (for a first look by the owner). */
void ipc__relay_signal_now(ipc__fd_relay *r);
/* Empties the eventfd (non-blocking). */
void ipc__relay_drain(ipc__fd_relay *r);

#ifdef __cplusplus
}
#endif

#endif
