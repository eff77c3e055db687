/*
 * slots.pml: slot claim, hand-off, release and reclaim of hung-up clients,
 * between the watcher thread and the serving thread.
 *
 * Models (function names as in the C):
 *   ipc/shm/shm_admit.c   ipc__srv_watch (accept, hang-up events -> hints,
 *                         admin_pending = 1 [A], ring), and on the watcher
 *                         ipc__srv_watch_admit: the claim of a free id
 *                         (ipc__srv_claim: reserved[id] = 1 under
 *                         admit_mu), the segment, the epoll registration,
 *                         the hello (ipc__srv_build), the hand-off of the
 *                         staged slot (admit_mu, [Q]); a raw connection
 *                         queued when no id is free;
 *                         ipc__srv_admin (exchange admin_pending [A],
 *                         ipc__srv_install_staged, hints re-checked with
 *                         ipc__fd_hung_up on the current fd),
 *                         ipc__srv_admit_all, ipc__srv_admit (sweep first
 *                         when no id is free, ipc__srv_sweep)
 *   ipc/shm/shm_server.c  ipc__srv_drop (close and unmap; then
 *                         reserved[id] = 0 under admit_mu: ipc__srv_unclaim),
 *                         ipc__srv_kick (a protocol violation)
 *   ipc/unix/unix.c       ipc__fd_hung_up (the kernel's view, exact)
 *
 * Abstracted away: the doorbell (the serving thread sleeps until
 * admin_pending is set; bell.pml proves that wake is never lost); the
 * rings; a refused peer (other uid: never queued); failures of memfd,
 * epoll_ctl and accept; the accept batch (one connection per step). A
 * hello to a client that already hung up is treated like any hello (the
 * slot is staged and reclaimed through the hang-up). The C watcher also
 * releases the id itself when the hello fails (EPIPE): a second releaser,
 * which unwinds (close, unmap) before ipc__srv_unclaim, the order
 * MUTANT_RELEASE_BEFORE_DROP shows is needed; not modelled separately.
 * Interleaving semantics, no store buffers: nothing here is a Dekker pair
 * (admit_mu is a mutex, [A] a release/acquire message passing, both kept
 * by x86-TSO), so a sequentially consistent model is exact.
 * The watcher's epoll is edge-triggered for client sockets: a hang-up
 * gives one event, also when the socket hung up before it was added;
 * closing the fd removes a pending event, but one the watcher already
 * took still becomes a hint: a stale hint for a slot's next occupant.
 *
 * Bounds: 2 slots, 4 connections (each connects once and hangs up at any
 * point after), at most one protocol-violation drop. The state graph has
 * no cycle (check_models.sh --cycles).
 *
 * Properties (safety run, pan -DSAFETY):
 *   - no double claim: a hello never gives an id that another live
 *     connection holds, and a segment is never built for an id whose old
 *     segment is still mapped (assertions);
 *   - a stale hint never drops an occupant that did not hang up itself
 *     (assertion at every drop by hint);
 *   - every hang-up is reclaimed: all clients hang up in the end, so when
 *     nothing can move (timeout) every connection is closed by the server,
 *     every id is free and every segment unmapped (Quiescence).
 *
 * Mutants (-D...; each must give a counterexample):
 *   MUTANT_RELEASE_BEFORE_DROP  reserved[id] = 0 before the close and unmap
 *   MUTANT_NO_HUNG_UP_RECHECK   a hint drops the slot's occupant unchecked
 *   MUTANT_CLAIM_UNLOCKED       the look for a free id and the claim are
 *                               two steps, not one under admit_mu (both
 *                               threads claim: the watcher, and the serving
 *                               thread for a queued raw connection)
 *   MUTANT_HINTS_BEFORE_INSTALL ipc__srv_admin looks at the hints before it
 *                               installs the staged slots
 *   MUTANT_HINT_OF_FREE_SLOT_CONSUMED  a hint is exchanged (consumed) even
 *                               when its slot is not installed yet
 *                               (`exchange(hints[i]) && slots[i].fd >= 0`)
 */

#define NSLOT 2
#ifndef NCONN
#define NCONN 4 /* two more than the slots: a connect finds none free
                 * while another races it for a freed id */
#endif
#define NONE 255

#if NCONN > 3
#define ANY_CONN_3(a) a[3]
#define ONE_OF_CONN_3(a) :: a[3] -> c = 3
#else
#define ANY_CONN_3(a) false
#define ONE_OF_CONN_3(a)
#endif

/* admit_mu and what it guards. A critical section touches nothing else
 * that the other thread reads, so it is one indivisible step here. */
bool reserved[NSLOT];
byte staged[NSLOT];   /* watcher -> serving: 1 + the connection, 0: none */
byte raw[NCONN];      /* watcher -> serving: connections with no id yet */
byte n_raw;

/* watcher -> serving, lock-free */
bool admin_pending;
bool hints[NSLOT];

/* the serving thread's table */
byte installed[NSLOT]; /* 1 + the connection in slots[id], 0: free */
bool seg_mapped[NSLOT];  /* the server's mapping of id's segment */
byte violations;

/* the kernel: sockets and the watcher's epoll */
bool in_backlog[NCONN];
bool hung_up[NCONN];     /* the client closed its end */
bool server_closed[NCONN]; /* the server closed its fd */
bool registered[NCONN];  /* in the watcher's epoll set */
byte reg_tag[NCONN];     /* its tag: the slot id */
bool event_ready[NCONN]; /* an edge of the hang-up not yet read */

/* ghost */
byte holds[NCONN];       /* the id the hello gave, NONE: none */
bool live[NCONN];        /* hello sent, server fd still open */
byte scan;               /* scratch of the d_steps, always 0 between them */

/* epoll_ctl(ADD, EPOLLIN | EPOLLRDHUP | EPOLLET): readiness at the add
 * counts as an edge. */
inline register(c, id)
{
    d_step {
        registered[c] = true;
        reg_tag[c] = id;
        event_ready[c] = hung_up[c]
    }
}

/* ipc__shm_segment_create: never for an id whose old segment is mapped. */
inline build_segment(id)
{
    d_step {
        assert(!seg_mapped[id]);
        seg_mapped[id] = true
    }
}

/* ipc__shm_hello_send(status 0, id): no other live connection holds id. */
inline hello(c, id)
{
    d_step {
        scan = 0;
        do
        :: scan < NCONN ->
            assert(scan == c || !live[scan] || holds[scan] != id);
            scan++
        :: else -> break
        od;
        scan = 0;
        holds[c] = id;
        live[c] = true
    }
}

/* A free id, claimed under admit_mu: NONE when all are reserved. */
inline claim(id)
{
#if defined(MUTANT_CLAIM_UNLOCKED)
    id = NONE;
    if
    :: !reserved[0] -> id = 0
    :: else -> if :: !reserved[1] -> id = 1 :: else -> skip fi
    fi;
    if
    :: id != NONE -> reserved[id] = true
    :: else -> skip
    fi
#else
    d_step {
        if
        :: !reserved[0] -> id = 0
        :: else -> if :: !reserved[1] -> id = 1 :: else -> id = NONE fi
        fi;
        if
        :: id != NONE -> reserved[id] = true
        :: else -> skip
        fi
    }
#endif
}

/* close(fd) by the server: the epoll registration and any edge not yet
 * read go with it. */
inline close_conn(c)
{
    d_step {
        server_closed[c] = true;
        registered[c] = false;
        event_ready[c] = false;
        live[c] = false
    }
}

/* ipc__srv_drop: close and unmap, and only then free the id. */
inline drop(id)
{
#if defined(MUTANT_RELEASE_BEFORE_DROP)
    reserved[id] = false;
#endif
    d_step {
        cc = installed[id] - 1;
        installed[id] = 0
    };
    close_conn(cc);
    seg_mapped[id] = false; /* ipc__shm_segment_unmap */
    cc = 0;
#if !defined(MUTANT_RELEASE_BEFORE_DROP)
    reserved[id] = false /* under admit_mu */
#endif
}

active proctype Watcher()
{
    byte c, id;

end_idle:
    do
    :: /* the listener is readable: accept4, peer allowed */
        atomic {
            (in_backlog[0] || in_backlog[1] || in_backlog[2] || ANY_CONN_3(in_backlog)) ->
            c = 0;
            do /* the backlog is FIFO, and clients connect in index order */
            :: !in_backlog[c] -> c++
            :: else -> break
            od;
            in_backlog[c] = false
        };
        claim(id);
        if
        :: id != NONE ->
            build_segment(id);
            register(c, id);
            hello(c, id);
            staged[id] = c + 1 /* [Q], under admit_mu */
        :: else ->
            d_step { raw[n_raw] = c + 1; n_raw++ } /* ipc__srv_watch_admit, no id free */
        fi;
        admin_pending = true; /* [A] release, then ring the doorbell */
        c = 0;
        id = 0
    :: /* a hang-up edge of a registered socket */
        atomic {
            (event_ready[0] || event_ready[1] || event_ready[2] || ANY_CONN_3(event_ready)) ->
            if
            :: event_ready[0] -> c = 0
            :: event_ready[1] -> c = 1
            :: event_ready[2] -> c = 2
            ONE_OF_CONN_3(event_ready)
            fi;
            event_ready[c] = false;
            id = reg_tag[c]
        };
        hints[id] = true; /* relaxed, published by [A] */
        admin_pending = true;
        c = 0;
        id = 0
    od
}

/* Takes the staged slots under admit_mu: installed, polled from now on. */
inline install_staged()
{
    d_step {
        for (k : 0 .. NSLOT - 1) {
            if
            :: staged[k] != 0 -> installed[k] = staged[k]; staged[k] = 0
            :: else -> skip
            fi
        };
        k = 0
    }
}

/* The hints: re-checked on the current fd (a hint may be stale). */
inline apply_hints()
{
    for (k : 0 .. NSLOT - 1) {
#if defined(MUTANT_HINT_OF_FREE_SLOT_CONSUMED)
        if
        :: hints[k] -> hints[k] = false; hint = true
        :: else -> hint = false
        fi;
        if
        :: hint && installed[k] != 0 ->
#else
        if
        :: installed[k] != 0 && hints[k] ->
            hints[k] = false;
#endif
#if !defined(MUTANT_NO_HUNG_UP_RECHECK)
            if
            :: hung_up[installed[k] - 1] -> /* ipc__fd_hung_up */
#else
            if
            :: true ->
#endif
                assert(hung_up[installed[k] - 1]);
                drop(k)
            :: else -> skip
            fi
        :: else -> skip
        fi;
        hint = false
    };
    k = 0
}

/* ipc__srv_sweep: every installed client whose socket hung up. */
inline sweep()
{
    for (k : 0 .. NSLOT - 1) {
        if
        :: installed[k] != 0 && hung_up[installed[k] - 1] -> drop(k)
        :: else -> skip
        fi
    };
    k = 0
}

active proctype Serving()
{
    byte k, c, cc, id;
    bool hint;

end_idle:
    do
    :: /* ipc__srv_admin: the acquire exchange of admin_pending [A] */
        atomic { admin_pending -> admin_pending = false };
#if defined(MUTANT_HINTS_BEFORE_INSTALL)
        apply_hints();
        install_staged();
#else
        install_staged();
        apply_hints();
#endif
        /* ipc__srv_admit_all: connections that found no free id */
        do
        :: atomic {
                if
                :: n_raw != 0 -> n_raw--; c = raw[n_raw] - 1; raw[n_raw] = 0
                :: else -> break
                fi
            };
            /* ipc__srv_admit: sweep first when no id is free */
            claim(id);
            if
            :: id == NONE -> sweep(); claim(id)
            :: else -> skip
            fi;
            if
            :: id != NONE ->
                build_segment(id);
                register(c, id);
                hello(c, id);
                installed[id] = c + 1
            :: else -> close_conn(c) /* hello with -EAGAIN */
            fi;
            c = 0;
            id = 0
        od
    :: /* a protocol violation: ipc__srv_kick */
        violations == 0 && (installed[0] != 0 || installed[1] != 0) ->
        violations++;
        if
        :: installed[0] != 0 -> drop(0)
        :: installed[1] != 0 -> drop(1)
        fi
    od
}

/* A client: connects, then hangs up (at any point, even before its hello).
 * Clients are alike, so they connect in index order (any other order is
 * the same run with the names swapped). */
byte n_connected;

proctype Client(byte c)
{
    atomic { n_connected == c -> in_backlog[c] = true; n_connected++ };
    d_step {
        hung_up[c] = true;
        if
        :: registered[c] -> event_ready[c] = true
        :: else -> skip
        fi
    }
}

/* When nothing can move: every hang-up was reclaimed. */
active proctype Quiescence()
{
    timeout ->
    d_step {
        scan = 0;
        do
        :: scan < NCONN ->
            assert(server_closed[scan]);
            scan++
        :: else -> break
        od;
        scan = 0;
        assert(!reserved[0] && !reserved[1]);
        assert(!seg_mapped[0] && !seg_mapped[1]);
        assert(installed[0] == 0 && installed[1] == 0)
    }
}

init
{
    atomic {
        holds[0] = NONE;
        holds[1] = NONE;
        holds[2] = NONE;
        run Client(0);
        run Client(1);
        run Client(2);
#if NCONN > 3
        holds[3] = NONE;
        run Client(3)
#endif
    }
}
