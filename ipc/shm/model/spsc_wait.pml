/*
 * spsc_wait.pml: one SPSC frame ring and the adaptive futex wait, in both
 * directions (the consumer sleeps for data, the producer for space).
 *
 * Models, file by file:
 *   ipc/shm/spsc_ring.c  ipc__spsc_push (ipc__spsc_claim, ipc__spsc_writable,
 *                        ipc__room, ipc__place (early wrap included),
 *                        ipc__load_head,
 *                        ipc__spsc_publish, ipc__spsc_publish_nowake),
 *                        ipc__spsc_wait_writable, ipc__writable_ready,
 *                        ipc__spsc_pop (ipc__spsc_peek, ipc__load_tail,
 *                        ipc__spsc_release, ipc__spsc_release_nowake),
 *                        ipc__spsc_readable, ipc__spsc_wait_readable,
 *                        ipc__readable_ready
 *   ipc/shm/wait.c       ipc__wait_until, ipc__sleep, ipc__wait_notify,
 *                        ipc__wake_sleepers
 *   ipc/shm/wait.h       ipc__wait_fence (machine.pml: a full barrier)
 *
 * Abstracted away: a unit is 8 bytes (a record header, or 8 payload bytes
 * read as one word: the payload's content is a ghost tag); CAP units of
 * data (R = 8 * CAP bytes), so ipc__spsc_max_payload(R) = R/2 - 16 bytes
 * is MAXLEN units; indices are free-running but small (no u64 wrap); the
 * spin phase (ipc__wait_spin: any number of failed looks is one failed
 * look); deadlines and futex timeouts (every wait is forever, so a lost
 * wake-up is a process blocked for good); a hostile peer (both sides are
 * honest: the consumer's and producer's validation checks are assertions
 * that an honest peer never trips). Each side's cache of the other's index
 * (ring->other) is modelled as in the code.
 *
 * Properties (safety run, pan -DSAFETY):
 *   - no lost wake-up: both processes finish all NMSG messages; a sleeper
 *     left behind is an invalid end state (the only end labels are on the
 *     Memory process);
 *   - no torn or overlapping record: the consumer reads exactly the
 *     records the producer wrote, in order, with their lengths (ghost tags
 *     in every header and payload unit), and the producer never writes a
 *     unit the consumer has not finished reading (assertion at each store);
 *   - the validation in ipc__load_head, ipc__load_tail and ipc__spsc_peek
 *     never rejects an honest peer (no false -EPROTO).
 * The state graph has no cycle (check_models.sh --cycles: pan -l), so no
 * run loops without progress either: every run ends, in a valid end state.
 *
 * Bounds: CAP = 8 units, NMSG = 3 records of 1..3 units (lengths chosen
 * nondeterministically), the ring starting empty at offset 0 or 5 (init).
 *
 * Mutants (-D...; each must give a counterexample):
 *   MUTANT_NOTIFY_NO_FENCE     ipc__wait_notify without ipc__wait_fence
 *   MUTANT_WAITERS_AFTER_CHECK ipc__sleep announces (waiters += 1) only
 *                              after its first look at ready()
 *   MUTANT_SEQ_AFTER_CHECK     ipc__sleep reads seq after ready(), not before
 *   MUTANT_WAITER_PLAIN_ADD    waiters += 1 as a plain load and store and no
 *                              fence (on x86 the locked fetch_add alone is a
 *                              full barrier: removing only the fence after it
 *                              is no bug on this memory model)
 *   MUTANT_RELEASE_NOWAKE      the consumer releases with
 *                              ipc__spsc_release_nowake (no space notify)
 *   MUTANT_TAIL_BEFORE_HEADER  publish stores tail before the record header
 *   MUTANT_HEAD_BEFORE_COPY    pop releases (head store) before copying out
 *   MUTANT_NO_WRAP_MARKER      claim skips to offset 0 without the marker
 */

#define PROD 0 /* store-buffer index of the producer */
#define CONS 1
#define NPROC 2
#define BMAX 5 /* the most stores the producer issues between two fences */

#define CAP 8    /* data units (R = 64 bytes) */
#define MAXLEN 2 /* payload units: ipc__spsc_max_payload(64) = 16 bytes */
#ifndef NMSG
#define NMSG 3
#endif

/* Shared words (the control block) and the data area. */
#define TAIL 0
#define HEAD 1
#define DATA_SEQ 2     /* ipc__waitpoint data: the consumer sleeps here */
#define DATA_WAITERS 3
#define SPACE_SEQ 4    /* ipc__waitpoint space: the producer sleeps here */
#define SPACE_WAITERS 5
#define DATA 6
#define NLOC (DATA + CAP)

#include "machine.pml"

/* A header unit: len (payload units) or WRAP (IPC__SPSC_WRAP), plus the
 * ghost number of the message it belongs to, plus one; a payload unit of
 * message k holds k + 1 (0: never written). */
#define WRAP 3
#define HDR(len, k) ((len) + 4 * ((k) + 1))
#define HDR_LEN(h) ((h) % 4)
#define HDR_MSG(h) ((h) / 4 - 1)

byte lens[NMSG];    /* ghost: payload units of message k, as produced */
byte cons_done;     /* ghost: the consumer is done with every unit below */

/* Private state of each side (ipc__spsc_ring), global so that ready()
 * can be one inline for both waits. */
byte ptail, pother, pskip, prec, pneed; /* producer: tail, cached head */
byte chead, cother;                     /* consumer: head, cached tail */

/* ipc__spsc_writable -> ipc__need, ipc__room: the cached head first, the
 * shared one only when the cache says "full". */
inline writable(v)
{
    /* ipc__place: a record that fits before the end may still wrap early
     * (marker mid-ring, record at offset 0) when the skip and the record
     * fit now; the C does so only past its warm window with the consumer
     * close behind, the model at any offset it may: a superset. */
    if
    :: prec <= CAP - ptail % CAP -> pskip = 0
    :: ptail % CAP != 0 && prec <= CAP - ptail % CAP &&
       CAP - (ptail - pother) >= CAP - ptail % CAP + prec -> pskip = CAP - ptail % CAP
    :: else -> pskip = CAP - ptail % CAP
    fi;
    pneed = pskip + prec;
    if
    :: CAP - (ptail - pother) >= pneed -> v = true
    :: else ->
        tso_load(PROD, HEAD, v); /* v: scratch for the loaded head */
        /* ipc__load_head: tail - capacity <= head <= tail */
        d_step {
            assert(v <= ptail && ptail - v <= CAP);
            pother = v;
            v = CAP - (ptail - pother) >= pneed
        }
    fi
}

/* ipc__spsc_readable: the cached tail first. */
inline readable(v)
{
    if
    :: chead != cother -> v = true
    :: else ->
        tso_load(CONS, TAIL, v);
        /* ipc__load_tail: head <= tail <= head + capacity */
        d_step {
            assert(v >= chead && v - chead <= CAP);
            cother = v;
            v = chead != cother
        }
    fi
}

inline ready(p, v)
{
    if
    :: p == PROD -> writable(v)
    :: else -> readable(v)
    fi
}

/* ipc__wait_until(w, ready, FOREVER) -> ipc__sleep: W1 waiters += 1;
 * fence; loop { W2 seen = seq; ready()? break; W3 futex_wait(seq, seen) };
 * waiters -= 1. */
inline wait_until(p, SEQ, WAITERS, v, seen)
{
    ready(p, v);
    if
    :: v -> skip
    :: else ->
#if defined(MUTANT_WAITERS_AFTER_CHECK)
        tso_load(p, SEQ, seen);
        ready(p, v);
        if
        :: v -> goto done_waiting
        :: else -> skip
        fi;
        tso_fetch_add(p, WAITERS, 1);
        futex_wait(p, SEQ, seen);
#elif defined(MUTANT_WAITER_PLAIN_ADD)
        tso_load(p, WAITERS, seen);
        tso_store(p, WAITERS, seen + 1);
#else
        tso_fetch_add(p, WAITERS, 1); /* W1 */
        tso_fence(p);
#endif
        do
        ::
#if defined(MUTANT_SEQ_AFTER_CHECK)
            ready(p, v);
            tso_load(p, SEQ, seen);
#else
            tso_load(p, SEQ, seen); /* W2 */
            ready(p, v);
#endif
            if
            :: v -> break
            :: else -> futex_wait(p, SEQ, seen) /* W3 */
            fi
        od;
done_waiting:
        tso_fetch_add(p, WAITERS, -1);
        seen = 0
    fi;
    v = false
}

/* ipc__wait_notify: P1 (the caller's store) ; fence ; P2 waiters != 0 ?
 * P3 seq += 1, futex_wake. */
inline wait_notify(p, SEQ, WAITERS, v)
{
#if !defined(MUTANT_NOTIFY_NO_FENCE)
    tso_fence(p);
#endif
    tso_load(p, WAITERS, v); /* P2 */
    if
    :: v != 0 ->
        tso_fetch_add(p, SEQ, 1); /* P3 */
        futex_wake(p, SEQ)
    :: else -> skip
    fi;
    v = 0
}

/* A producer store into the data area at free-running index at: never a
 * unit the consumer still reads. */
inline data_store(at, val)
{
    assert((at) < cons_done + CAP);
    tso_store(PROD, DATA + (at) % CAP, val)
}

proctype Producer()
{
    byte k, n, i, off, v, seen;
    for (k : 0 .. NMSG - 1) {
        if
        :: n = 0
        :: n = 1
        :: n = MAXLEN
        fi;
        lens[k] = n;
        prec = 1 + n; /* ipc__record(n), in units */
        /* ipc__spsc_push returns 0 when full: ipc__spsc_wait_writable,
         * then claim again. */
        do
        :: writable(v);
            if
            :: v -> v = false; break
            :: else -> wait_until(PROD, SPACE_SEQ, SPACE_WAITERS, v, seen)
            fi
        od;
        /* ipc__spsc_claim: the wrap marker, then the record at offset 0 */
        off = ptail % CAP;
        if
        :: pskip != 0 ->
#if !defined(MUTANT_NO_WRAP_MARKER)
            data_store(ptail, HDR(WRAP, k));
#endif
            off = 0
        :: else -> skip
        fi;
        /* the copy */
        for (i : 1 .. n) {
            data_store(ptail + pskip + i, k + 1)
        };
        i = 0;
        /* ipc__spsc_publish_nowake: header, then [T] tail (release) */
#if defined(MUTANT_TAIL_BEFORE_HEADER)
        tso_store(PROD, TAIL, ptail + pskip + prec);
        data_store(ptail + pskip, HDR(n, k));
#else
        data_store(ptail + pskip, HDR(n, k));
        tso_store(PROD, TAIL, ptail + pskip + prec);
#endif
        d_step { ptail = ptail + pskip + prec; pskip = 0; off = 0 };
        /* ipc__spsc_publish: and wake the consumer */
        wait_notify(PROD, DATA_SEQ, DATA_WAITERS, v)
    }
}

proctype Consumer()
{
    byte k, n, i, off, gap, h, v, seen;
    for (k : 0 .. NMSG - 1) {
        /* ipc__spsc_pop returns -EAGAIN when empty: wait, pop again */
        do
        :: readable(v);
            if
            :: v -> v = false; break
            :: else -> wait_until(CONS, DATA_SEQ, DATA_WAITERS, v, seen)
            fi
        od;
        /* ipc__spsc_peek: the oldest record, validated */
        off = chead % CAP;
        gap = 0;
        tso_load(CONS, DATA + off, h);
        if
        :: HDR_LEN(h) == WRAP ->
            gap = CAP - off;
            assert(off != 0 && gap < cother - chead); /* a legal marker */
            assert(HDR_MSG(h) == k);
            off = 0;
            tso_load(CONS, DATA, h)
        :: else -> skip
        fi;
        n = HDR_LEN(h);
        assert(n <= MAXLEN);        /* length check */
        assert(HDR_MSG(h) == k);    /* this record, not a stale one */
        assert(n == lens[k]);       /* with the length it was written with */
        assert(1 + n <= cother - chead - gap && 1 + n <= CAP - off);
        h = 0;
#if defined(MUTANT_HEAD_BEFORE_COPY)
        d_step { chead = chead + gap + 1 + n; cons_done = chead };
        tso_store(CONS, HEAD, chead);
#endif
        /* the copy out */
        for (i : 1 .. n) {
            tso_load(CONS, DATA + off + i, v);
            assert(v == k + 1)
        };
        i = 0;
        v = 0;
#if !defined(MUTANT_HEAD_BEFORE_COPY)
        /* ipc__spsc_release_nowake: [H] head (release), reads done */
        d_step { chead = chead + gap + 1 + n; cons_done = chead };
        tso_store(CONS, HEAD, chead);
#endif
        off = 0;
        gap = 0;
        n = 0;
#if !defined(MUTANT_RELEASE_NOWAKE)
        /* ipc__spsc_release: and wake the producer */
        wait_notify(CONS, SPACE_SEQ, SPACE_WAITERS, v)
#endif
    }
}

/* The ring starts empty at offset 0 (freshly formatted) or 5: indices are
 * free-running, so every offset is a reachable "empty" state, and these
 * two give every case with three records of 1..3 units in 8: a wrap
 * skipping 1 unit and 2, a ring full with and without a wrap pending, and
 * a record reusing units that the previous lap's record still holds. */
init
{
    byte start;
    if
    :: start = 0
    :: start = 5
    fi;
    atomic {
        mem[TAIL] = start;
        mem[HEAD] = start;
        ptail = start;
        pother = start;
        chead = start;
        cother = start;
        cons_done = start;
        start = 0;
        run Producer();
        run Consumer()
    }
}
