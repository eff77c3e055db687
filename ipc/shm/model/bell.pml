/*
 * bell.pml: the server's doorbell, its self-wake for a stop, and the
 * wake-ups the server owes its clients (replies, space, the drop at close).
 *
 * Models, file by file:
 *   ipc/shm/bell.c        ipc__bell_wait (B1 asleep = 1, fence, B2 ready(),
 *                         B3 epoll_wait, ipc__bell_consume), ipc__bell_ring
 *                         (P1 publish, fence, P2 asleep?, P3 write the
 *                         client's wake object), ipc__bell_ring_self
 *   ipc/shm/mpsc.c        ipc__mpsc_poll (round robin), ipc__mpsc_wait,
 *                         ipc__mpsc_ready
 *   ipc/shm/shm_server.c  ipc__shm_server_wait_for_data, ipc__srv_interrupt,
 *                         ipc__srv_flushable, ipc__srv_flush_all,
 *                         ipc__srv_flush_slot, ipc__shm_server_send,
 *                         ipc__srv_queue ([W]: want_space = 1, fence,
 *                         re-read head), ipc__shm_server_loan,
 *                         ipc__shm_server_commit, ipc__shm_server_release,
 *                         ipc__srv_owe_wake, ipc__shm_server_has_next,
 *                         ipc__shm_server_end_batch, ipc__shm_server_close,
 *                         ipc__srv_drop ([C] server_closed = 1, then notify
 *                         resp.data and req.space), ipc__shm_server_wake
 *   ipc/ipc.c             ipc_server_run, ipc__serve_batch, ipc__serve_one
 *                         (reply, then release), ipc_server_stop ([S] stop,
 *                         then wake)
 *   ipc/shm/shm_client.c  ipc__shm_client_send (ipc__cli_claim,
 *                         ipc__cli_publish), ipc__shm_client_recv
 *                         (ipc__cli_next, ipc__cli_consume,
 *                         ipc__cli_released: [W] head, fence, want_space?),
 *                         ipc__cli_wait, ipc__cli_readable,
 *                         ipc__cli_writable, ipc__cli_closed_flag
 *   ipc/shm/wait.c        ipc__wait_until, ipc__sleep, ipc__wait_notify,
 *                         ipc__wait_notify_pair (as in spsc_wait.pml)
 *
 * The wake object of a client is its eventfd's edge on the server's epoll
 * ready list (EPOLLET, never read by the server): a write sets it, only an
 * epoll_wait that reports it clears it, and nothing the client does to
 * the fd can take it back. A flag here. The server's own (stop, watcher)
 * is another flag.
 *
 * Abstracted away: rings count whole messages (QCAP requests, RCAP
 * replies; records, wrap and validation are spsc_wait.pml's), and each
 * side re-reads the other's index at every look (the cache in the code
 * only skips a look whose answer is already "yes"); the spin phases
 * (ipc__wait_spin, ipc__mpsc_poll_briefly, ipc__wait_spin_briefly: failed
 * looks with no effect); deadlines, the 250 ms and 50 ms slices and the
 * clients' socket hang-up checks (every wait is forever, so a lost
 * wake-up is a process blocked for good); the admin path and the watcher
 * (slots.pml), back-pressure pauses (max_pending_output never reached),
 * the event-loop mode (ipc__bell_hold), zero-copy peeks (the run loop
 * releases before it returns), payload contents; a hostile client (out of
 * scope: it can only wake the server needlessly, since it cannot write
 * the page nor take back an edge once queued).
 * ipc_server_stop's store of stop_requested goes straight to memory: its
 * only later action is the write(2) of the wake, which drains the buffer
 * anyway, so a buffered store shows nothing more.
 *
 * Bounds (QCAP = RCAP = 1 message; see the scopes below): the default
 * scope has 2 clients (2 and 1 requests), SCOPE_REPLIES 1 client with 2
 * requests and their replies, and the stop. The state graph has no cycle
 * (check_models.sh --cycles).
 *
 * Properties (safety run, pan -DSAFETY):
 *   - no lost wake-up, either way: every client gets all its replies, or
 *     (after a stop) is told the server closed; a client blocked for good
 *     in a futex is an invalid end state;
 *   - the server sleeps for good only with nothing to do (end label at
 *     its epoll_wait, and no client may be left waiting), and after a stop
 *     it always leaves its wait and closes: the stopper waits for that and
 *     is no end state;
 *   - replies: a client that was not closed received exactly as many
 *     replies as it sent requests (assertion);
 *   - when nothing can move any more, every request was taken unless the
 *     server was stopped (Quiescence, at timeout).
 *
 * Mutants (-D...; each must give a counterexample):
 *   MUTANT_RING_NO_FENCE       ipc__bell_ring without its fence (P1 P2)
 *   MUTANT_ASLEEP_AFTER_CHECK  ipc__bell_wait stores asleep after its look
 *   MUTANT_STOP_NO_WAKE        ipc_server_stop without ipc__bell_ring_self
 *   MUTANT_DROP_NO_NOTIFY      ipc__srv_drop sets server_closed, wakes nobody
 *   MUTANT_NO_END_BATCH_WAKE   ipc__shm_server_end_batch owes, never pays
 *   MUTANT_CLIENT_RELEASE_NOWAKE  ipc__cli_consume releases with
 *                              ipc__spsc_release_nowake: no fence between
 *                              the head store and the want_space load [W]
 */

#define NCLI 2
#define SRV 0        /* store-buffer index of the server */
#define CLI(c) (1 + (c))
#define NPROC 3
#define BMAX 4

#define QCAP 1 /* requests a request ring holds */
#define RCAP 1 /* replies a response ring holds */

/* Two scopes, each exhaustive (together they would not fit a CI run):
 * the default, DOORBELL: two clients publish (client 0 two requests back
 * to back, so it also waits for space), read no replies, and nobody stops
 * the server; -DSCOPE_REPLIES: one client sends two requests back to back
 * and reads both replies (the second is queued: [W]), and a stop may come
 * at any point (the close's drop must wake the client). */
#if defined(SCOPE_REPLIES)
#define NREQ0 2
#define NREQ1 0
#else
#define NREQ0 2
#define NREQ1 1
#define NO_RECV
#define NO_STOP
#endif

/* Shared words: ten per client (its segment), then the doorbell page. */
#define REQ_TAIL(c) ((c) * 10 + 0)
#define REQ_HEAD(c) ((c) * 10 + 1)
#define REQ_SPACE_SEQ(c) ((c) * 10 + 2)     /* req.space: client sleeps */
#define REQ_SPACE_WAITERS(c) ((c) * 10 + 3)
#define RESP_TAIL(c) ((c) * 10 + 4)
#define RESP_HEAD(c) ((c) * 10 + 5)
#define RESP_DATA_SEQ(c) ((c) * 10 + 6)     /* resp.data: client sleeps */
#define RESP_DATA_WAITERS(c) ((c) * 10 + 7)
#define WANT_SPACE(c) ((c) * 10 + 8)
#define SERVER_CLOSED(c) ((c) * 10 + 9)
#define ASLEEP 20       /* ipc__bell_page.asleep */
#define STOP_REQUESTED 21
#define NLOC 22

#include "machine.pml"

/* Kernel objects: level-triggered, readable until the server reads them. */
bool wake_edge[NCLI];
bool wake_self;

bool server_done; /* ipc_server_run returned and ipc_server_close ran */

#define NONE 255

/* The server's private state (ipc__shm_slot, ipc__mpsc). */
byte srv_req_head[NCLI];  /* seg.req.head: requests consumed */
byte srv_resp_tail[NCLI]; /* seg.resp.tail: replies published */
byte out[NCLI];           /* replies queued (out_head..out_tail) */
byte n_out;
byte rr_next;             /* ipc__mpsc.next */
bool wake_owed;

/* ---------------------------------------------------------------- server */

/* ipc__spsc_readable on client c's request ring. */
inline srv_readable(c, v)
{
    tso_load(SRV, REQ_TAIL(c), v);
    v = v != srv_req_head[c]
}

/* ipc__spsc_writable on client c's response ring: [H] head. */
inline srv_writable(c, v)
{
    tso_load(SRV, RESP_HEAD(c), v);
    v = srv_resp_tail[c] - v < RCAP
}

/* ipc__mpsc_poll: the first readable ring after the one served last. */
inline mpsc_poll(id, v)
{
    id = NONE;
    i = rr_next;
    n = 0;
    do
    :: n < NCLI ->
        srv_readable(i, v);
        if
        :: v -> id = i; rr_next = (i + 1) % NCLI; break
        :: else -> i = (i + 1) % NCLI; n++
        fi
    :: else -> break
    od;
    i = 0;
    n = 0;
    v = 0
}

/* ipc__srv_flushable: some queued reply can move. */
inline flushable(v)
{
    v = false;
    if
    :: n_out != 0 ->
        for (i : 0 .. NCLI - 1) {
            if
            :: out[i] != 0 && !v -> srv_writable(i, v)
            :: else -> skip
            fi
        };
        i = 0
    :: else -> skip
    fi
}

/* ipc__wait_notify / ipc__wake_sleepers, by the server. */
inline srv_wake_sleepers(SEQ, WAITERS, v)
{
    tso_load(SRV, WAITERS, v); /* P2 */
    if
    :: v != 0 -> tso_fetch_add(SRV, SEQ, 1); futex_wake(SRV, SEQ) /* P3 */
    :: else -> skip
    fi;
    v = 0
}

inline srv_notify(SEQ, WAITERS, v)
{
    tso_fence(SRV);
    srv_wake_sleepers(SEQ, WAITERS, v)
}

/* ipc__srv_flush_slot: push queued replies while they fit. */
inline flush_slot(c, v)
{
    do
    :: out[c] != 0 ->
        srv_writable(c, v);
        if
        :: v ->
            /* ipc__spsc_push -> ipc__spsc_publish: [T], then notify */
            srv_resp_tail[c]++;
            tso_store(SRV, RESP_TAIL(c), srv_resp_tail[c]);
            srv_notify(RESP_DATA_SEQ(c), RESP_DATA_WAITERS(c), v);
            out[c]--
        :: else -> break
        fi
    :: else -> break
    od;
    if
    :: out[c] == 0 ->
        n_out--;
        /* Relaxed: a stale 1 costs the client one needless ring. */
        tso_store(SRV, WANT_SPACE(c), 0)
    :: else -> skip
    fi;
    v = 0
}

inline flush_all(v)
{
    for (k : 0 .. NCLI - 1) {
        if
        :: out[k] != 0 -> flush_slot(k, v)
        :: else -> skip
        fi
    };
    k = 0
}

/* ipc__srv_queue: the reply waits; [W] want_space = 1, fence, re-read
 * head (the flush). Without this fence the model still passes: before it
 * sleeps, ipc__bell_wait fences (B1) and looks at head again. The fence
 * is for the event-loop mode (ipc__bell_hold), which is not modelled:
 * there the server's last look may come before its want_space store
 * leaves the store buffer. */
inline queue_reply(c, v)
{
    out[c]++;
    if
    :: out[c] == 1 ->
        n_out++;
        tso_store(SRV, WANT_SPACE(c), 1);
        tso_fence(SRV);
        flush_slot(c, v)
    :: else -> skip
    fi
}

/* ipc__srv_owe_wake: a sleeper already seen is woken now; the rest at
 * the batch's end. */
inline owe_wake(SEQ, WAITERS, v)
{
    tso_load(SRV, WAITERS, v); /* ipc__wait_sleeper_seen: relaxed */
    if
    :: v != 0 -> srv_notify(SEQ, WAITERS, v)
    :: else -> skip
    fi;
    wake_owed = true;
    v = 0
}

/* ipc__mpsc_ready with ipc__srv_interrupt: stop, a queued reply that can
 * move, or a request. */
inline srv_ready(v)
{
    id = NONE;
    tso_load(SRV, STOP_REQUESTED, v);
    if
    :: v == 0 ->
        flushable(v);
        if
        :: !v -> mpsc_poll(id, v); v = id != NONE
        :: else -> skip
        fi
    :: else -> skip
    fi
}

proctype Server()
{
    byte i, k, n, v, id;
    bool fired0, fired1, fired_self;

    /* ipc_server_run */
    do
    :: tso_load(SRV, STOP_REQUESTED, v);
        if
        :: v != 0 -> break
        :: else -> skip
        fi;
        /* ipc__shm_server_wait_for_data */
        do
        :: tso_load(SRV, STOP_REQUESTED, v);
            if
            :: v != 0 -> goto stopped /* -ECANCELED */
            :: else -> skip
            fi;
            if
            :: n_out != 0 -> flush_all(v)
            :: else -> skip
            fi;
            mpsc_poll(id, v);
            if
            :: id != NONE -> break
            :: else -> skip
            fi;
            /* ipc__mpsc_wait -> ipc__bell_wait */
            srv_ready(v);
            if
            :: v -> skip
            :: else ->
#if !defined(MUTANT_ASLEEP_AFTER_CHECK)
                tso_store(SRV, ASLEEP, 1); /* B1 */
                tso_fence(SRV);
#endif
                do
                :: srv_ready(v); /* B2 */
                    if
                    :: v -> break
                    :: else -> skip
                    fi;
#if defined(MUTANT_ASLEEP_AFTER_CHECK)
                    tso_store(SRV, ASLEEP, 1);
                    tso_fence(SRV);
#endif
                    /* B3: epoll_wait returns the readable wake objects;
                     * ipc__bell_consume then reads each of them. */
end_idle:           atomic {
                        wake_edge[0] || wake_edge[1] || wake_self ->
                        fired0 = wake_edge[0];
                        fired1 = wake_edge[1];
                        fired_self = wake_self
                    };
                    if
                    :: fired0 -> wake_edge[0] = false; fired0 = false
                    :: else -> skip
                    fi;
                    if
                    :: fired1 -> wake_edge[1] = false; fired1 = false
                    :: else -> skip
                    fi;
                    if
                    :: fired_self -> wake_self = false; fired_self = false
                    :: else -> skip
                    fi
                od;
                /* Relaxed: a stale 1 costs a client one needless write. */
                tso_store(SRV, ASLEEP, 0)
            fi;
            if
            :: id != NONE -> break
            :: else -> skip /* interrupted: look again */
            fi
        od;
        /* ipc__serve_batch: every ready request of client id */
        wake_owed = false;
        do
        :: /* ipc__serve_one: the handler's reply (ipc_response_reserve:
            * a loan, else ipc__shm_server_send), then the release */
            if
            :: out[id] == 0 -> srv_writable(id, v)
            :: else -> v = false /* the loan says -EAGAIN: queue first */
            fi;
            if
            :: v ->
                /* ipc__shm_server_commit in a batch: publish_nowake */
                srv_resp_tail[id]++;
                tso_store(SRV, RESP_TAIL(id), srv_resp_tail[id]);
                owe_wake(RESP_DATA_SEQ(id), RESP_DATA_WAITERS(id), v)
            :: else ->
                /* ipc__shm_server_send: push if nothing is queued */
                if
                :: out[id] == 0 -> srv_writable(id, v)
                :: else -> v = false
                fi;
                if
                :: v ->
                    srv_resp_tail[id]++;
                    tso_store(SRV, RESP_TAIL(id), srv_resp_tail[id]);
                    srv_notify(RESP_DATA_SEQ(id), RESP_DATA_WAITERS(id), v)
                :: else -> queue_reply(id, v)
                fi
            fi;
            /* ipc__shm_server_release in a batch: release_nowake [H] */
            srv_req_head[id]++;
            tso_store(SRV, REQ_HEAD(id), srv_req_head[id]);
            owe_wake(REQ_SPACE_SEQ(id), REQ_SPACE_WAITERS(id), v);
            /* ipc__shm_server_has_next */
            srv_readable(id, v);
            if
            :: !v -> break
            :: else -> skip
            fi
        od;
        /* ipc__shm_server_end_batch */
        if
        :: wake_owed ->
            wake_owed = false;
#if !defined(MUTANT_NO_END_BATCH_WAKE)
            tso_fence(SRV); /* ipc__wait_notify_pair */
            srv_wake_sleepers(RESP_DATA_SEQ(id), RESP_DATA_WAITERS(id), v);
            srv_wake_sleepers(REQ_SPACE_SEQ(id), REQ_SPACE_WAITERS(id), v)
#else
            skip
#endif
        :: else -> skip
        fi;
        id = NONE
    od;
stopped:
    /* ipc_server_close -> ipc__shm_server_close -> ipc__srv_drop each */
    for (k : 0 .. NCLI - 1) {
        tso_store(SRV, SERVER_CLOSED(k), 1); /* [C] release */
#if !defined(MUTANT_DROP_NO_NOTIFY)
        srv_notify(RESP_DATA_SEQ(k), RESP_DATA_WAITERS(k), v);
        srv_notify(REQ_SPACE_SEQ(k), REQ_SPACE_WAITERS(k), v)
#endif
    };
    tso_fence(SRV); /* close(2) of the fds */
    server_done = true
}

/* ---------------------------------------------------------------- client */

/* ipc__cli_writable: room in the request ring, or the server closed. */
inline cli_writable(c, v)
{
    tso_load(CLI(c), REQ_HEAD(c), v);
    v = tail - v < QCAP;
    if
    :: !v -> tso_load(CLI(c), SERVER_CLOSED(c), v)
    :: else -> skip
    fi
}

/* ipc__cli_readable: a reply, or the server closed. */
inline cli_readable(c, v)
{
    tso_load(CLI(c), RESP_TAIL(c), v);
    v = v != head;
    if
    :: !v -> tso_load(CLI(c), SERVER_CLOSED(c), v)
    :: else -> skip
    fi
}

inline cli_ready(c, for_space, v)
{
    if
    :: for_space -> cli_writable(c, v)
    :: else -> cli_readable(c, v)
    fi
}

/* ipc__cli_wait -> ipc__wait_until -> ipc__sleep (wait.c), then the
 * closed-flag check: true when the server closed. */
inline cli_wait(c, SEQ, WAITERS, for_space, v, seen, closed)
{
    cli_ready(c, for_space, v);
    if
    :: v -> skip
    :: else ->
        tso_fetch_add(CLI(c), WAITERS, 1); /* W1 */
        tso_fence(CLI(c));
        do
        :: tso_load(CLI(c), SEQ, seen); /* W2 */
            cli_ready(c, for_space, v);
            if
            :: v -> break
            :: else -> futex_wait(CLI(c), SEQ, seen) /* W3 */
            fi
        od;
        tso_fetch_add(CLI(c), WAITERS, -1);
        seen = 0
    fi;
    tso_load(CLI(c), SERVER_CLOSED(c), closed);
    v = 0
}

/* ipc__bell_ring: P1 was the caller's store. */
inline bell_ring(c, v)
{
#if !defined(MUTANT_RING_NO_FENCE)
    tso_fence(CLI(c));
#endif
    tso_load(CLI(c), ASLEEP, v); /* P2 */
    if
    :: v != 0 -> d_step { tso_flush_body(CLI(c)); wake_edge[c] = true } /* P3 write(2) */
    :: else -> skip
    fi;
    v = 0
}

proctype Client(byte c; byte nreq)
{
    byte tail, head, k, v, seen, closed;

    /* ipc__shm_client_send, nreq times back to back */
    for (k : 1 .. nreq) {
        /* ipc__cli_claim */
        tso_load(CLI(c), SERVER_CLOSED(c), closed);
        if
        :: closed -> goto gone /* -EPIPE */
        :: else -> skip
        fi;
        do
        :: tso_load(CLI(c), REQ_HEAD(c), v);
            if
            :: tail - v < QCAP -> break
            :: else ->
                cli_wait(c, REQ_SPACE_SEQ(c), REQ_SPACE_WAITERS(c), true, v, seen, closed);
                if
                :: closed -> goto gone /* -ECONNRESET */
                :: else -> skip
                fi
            fi
        od;
        /* ipc__cli_publish: publish_nowake [T], then ring */
        tail++;
        tso_store(CLI(c), REQ_TAIL(c), tail);
        bell_ring(c, v)
    };
#if !defined(NO_RECV)
    /* ipc__shm_client_recv, nreq times */
    for (k : 1 .. nreq) {
        /* ipc__cli_next */
        do
        :: tso_load(CLI(c), RESP_TAIL(c), v);
            if
            :: v != head -> break
            :: else -> skip
            fi;
            /* replies in the ring come before the closed flag */
            tso_load(CLI(c), SERVER_CLOSED(c), closed);
            if
            :: closed -> goto gone
            :: else -> skip
            fi;
            cli_wait(c, RESP_DATA_SEQ(c), RESP_DATA_WAITERS(c), false, v, seen, closed);
            if
            :: closed -> goto gone
            :: else -> skip
            fi
        od;
        /* ipc__cli_consume: ipc__spsc_release [H] (its notify's fence; the
         * server never sleeps on resp.space), then ipc__cli_released */
        head++;
        tso_store(CLI(c), RESP_HEAD(c), head);
#if !defined(MUTANT_CLIENT_RELEASE_NOWAKE)
        tso_fence(CLI(c));
#endif
        tso_load(CLI(c), WANT_SPACE(c), v);
        if
        :: v != 0 -> bell_ring(c, v)
        :: else -> skip
        fi;
        v = 0
    };
    assert(head == nreq);
#endif
gone:
    skip
}

/* ---------------------------------------------------------------- stop */

active proctype Stopper()
{
    if
    :: skip /* nobody stops the server: it must serve everything */
#if !defined(NO_STOP)
    :: /* ipc_server_stop: [S], then ipc__shm_server_wake */
        mem[STOP_REQUESTED] = 1;
#if !defined(MUTANT_STOP_NO_WAKE)
        wake_self = true;
#endif
        server_done /* the server left its wait and closed */
#endif
    fi
}

/* When nothing can move any more, every request was taken, unless the
 * server was stopped: a request the doorbell lost leaves the server asleep
 * (a valid end state of its own) with a request in a ring. */
active proctype Quiescence()
{
    timeout ->
    assert(server_done || srv_req_head[0] == NREQ0 && srv_req_head[1] == NREQ1)
}

init
{
    atomic {
        run Server();
        run Client(0, NREQ0);
        run Client(1, NREQ1)
    }
}
