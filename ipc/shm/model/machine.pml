/*
 * machine.pml: x86-TSO memory and the futex, for the models that rely on a
 * fence (included by spsc_wait.pml and bell.pml, which define NPROC, NLOC
 * and BMAX first).
 *
 * Each process p has a FIFO store buffer sb[p]. A store goes to the buffer
 * (it waits while the buffer is full, as the CPU stalls); a load returns
 * the newest buffered store to that location, else memory; the Memory
 * process moves the oldest entry of any buffer to memory at any time; a
 * fence, a locked read-modify-write (lock xadd: the C11 seq_cst fetch_add)
 * and a system call (the kernel takes a spinlock: a locked instruction)
 * empty the caller's buffer first. Loads are never reordered with loads,
 * nor stores with stores: exactly x86-TSO, so the store-buffering race of
 * every Dekker pair (W1/fence/W2 against P1/fence/P2) is in the model.
 * Release/acquire orders cost nothing on x86 and are not marked.
 */

typedef StoreBuffer {
    byte loc[BMAX];
    byte val[BMAX];
    byte n
};

byte mem[NLOC];
StoreBuffer sb[NPROC];
byte tso_i; /* scratch of the indivisible steps below, always 0 between them */

inline tso_store(p, l, v)
{
    atomic {
        sb[p].n < BMAX ->
        sb[p].loc[sb[p].n] = l;
        sb[p].val[sb[p].n] = v;
        sb[p].n++
    }
}

/* The newest buffered store to l, else memory. */
inline tso_load(p, l, dst)
{
    d_step {
        dst = mem[l];
        tso_i = sb[p].n;
        do
        :: tso_i > 0 && sb[p].loc[tso_i - 1] == l -> dst = sb[p].val[tso_i - 1]; break
        :: tso_i > 0 && sb[p].loc[tso_i - 1] != l -> tso_i--
        :: tso_i == 0 -> break
        od;
        tso_i = 0
    }
}

/* Body only: callers wrap it in their own d_step. */
inline tso_flush_body(p)
{
    tso_i = 0;
    do
    :: tso_i < sb[p].n ->
        mem[sb[p].loc[tso_i]] = sb[p].val[tso_i];
        sb[p].loc[tso_i] = 0;
        sb[p].val[tso_i] = 0;
        tso_i++
    :: else -> break
    od;
    sb[p].n = 0;
    tso_i = 0
}

/* ipc__wait_fence(): lock or $0 to the stack, a full barrier. */
inline tso_fence(p)
{
    d_step { tso_flush_body(p) }
}

/* atomic_fetch_add (lock xadd): drains the buffer, then acts on memory. */
inline tso_fetch_add(p, l, d)
{
    d_step { tso_flush_body(p); mem[l] = mem[l] + d }
}

/* The oldest entry of sb[p] reaches memory. */
inline tso_drain_one(p)
{
    mem[sb[p].loc[0]] = sb[p].val[0];
    tso_i = 1;
    do
    :: tso_i < sb[p].n ->
        sb[p].loc[tso_i - 1] = sb[p].loc[tso_i];
        sb[p].val[tso_i - 1] = sb[p].val[tso_i];
        tso_i++
    :: else -> break
    od;
    sb[p].n--;
    sb[p].loc[sb[p].n] = 0;
    sb[p].val[sb[p].n] = 0;
    tso_i = 0
}

/* The memory system: drains any non-empty buffer, one entry at a time. */
active proctype Memory()
{
end:
    do
    :: d_step { sb[0].n > 0 -> tso_drain_one(0) }
    :: d_step { sb[1].n > 0 -> tso_drain_one(1) }
#if NPROC > 2
    :: d_step { sb[2].n > 0 -> tso_drain_one(2) }
#endif
#if NPROC > 3
    :: d_step { sb[3].n > 0 -> tso_drain_one(3) }
#endif
    od
}

/*
 * The futex, as the kernel does it: FUTEX_WAIT compares the word with the
 * expected value and queues the caller in one step (under the hash-bucket
 * lock), and sleeps only if they were equal; FUTEX_WAKE dequeues every
 * sleeper of the word. Timeouts, EINTR and spurious wakes are left out:
 * a sleeper wakes only by a FUTEX_WAKE, so a lost wake-up shows as a
 * process blocked forever (an invalid end state).
 */
byte futex_on[NPROC]; /* 1 + the word p sleeps on; 0: not asleep */

inline futex_wait(p, l, expected)
{
    d_step {
        tso_flush_body(p);
        if
        :: mem[l] == expected -> futex_on[p] = l + 1
        :: else -> skip /* EAGAIN */
        fi
    };
    futex_on[p] == 0
}

inline futex_wake(p, l)
{
    d_step {
        tso_flush_body(p);
        tso_i = 0;
        do
        :: tso_i < NPROC ->
            if
            :: futex_on[tso_i] == l + 1 -> futex_on[tso_i] = 0
            :: else -> skip
            fi;
            tso_i++
        :: else -> break
        od;
        tso_i = 0
    }
}
