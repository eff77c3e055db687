/*
 * The run loop (ipc_server_run): serial or with worker threads, requests
 * answered later (ipc_response_defer, ipc_request_*), and the multiplexed
 * wire's request ids. Threads and ownership: docs/ARCHITECTURE.md.
 *
 * One thread, run()'s (the I/O thread), makes every transport call. A
 * request it takes belongs to one party at a time: the work queue, a
 * worker, the application (deferred), the done queue, and the I/O thread
 * again, which sends the reply and frees it. Serially the handler reads
 * the request in place and replies into a loan, as before workers
 * existed; a request is copied only to be handed to a worker or deferred.
 * Requests cross threads under run->mu; the I/O thread is woken for the
 * done queue by s->kicked [K] and the transport's wake().
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ipc/ipc.h"
#include "ipc/server.h"
#include "ipc/transport.h"
#include "ipc/unix/unix.h"

/* How long run() waits, once it stops, for a handler's IPC_SHUTDOWN reply
 * to drain and for requests the application deferred: a client that
 * stopped reading, or a request never answered, must not hold it. */
#define IPC_SHUTDOWN_FLUSH_NS (2ull * 1000 * 1000 * 1000)

/* Requests of one client served back to back (serially) before the run
 * loop looks at the others again: bounds what a flooding client costs the
 * rest. */
#define IPC__BATCH_MAX 32

/* The I/O thread, waiting for answers without the transport (at the
 * server's bound, or stopping), looks at the stop flag this often. */
#define IPC__RUN_SLICE_NS (50ull * 1000 * 1000)

typedef enum { IPC__ANSWER_REPLY, IPC__ANSWER_DROP } ipc__answer;

struct ipc_request {
    struct ipc__run *run;
    ipc_request *next;
    int client_id;
    uint64_t gen;     /* the connection it came on (ops->conn_gen) */
    uint64_t wire_id; /* multiplexed wire: the id its reply carries */
    uint64_t taken;   /* ipc__stamp() when the run loop took it */
    const uint8_t *data;
    size_t len;
    uint8_t *reply;   /* [id][payload] on the multiplexed wire */
    size_t reply_len; /* payload bytes */
    size_t reply_cap; /* payload bytes reply has room for */
    size_t reserved;  /* ipc_request_reserve()'s len, SIZE_MAX for none */
    ipc__answer answer;
    bool deferred;    /* the application's until it answers */
    /* the request's bytes follow */
};

/* What the run loop knows of a client id. */
typedef struct ipc__run_client {
    uint64_t gen;      /* the connection these counts are about */
    uint32_t inflight; /* its requests taken and not yet answered */
    bool held;         /* ops->hold(true): at its bound */
} ipc__run_client;

typedef struct ipc__run {
    pthread_mutex_t mu;
    pthread_cond_t work_cv;      /* a request for the workers, or quit */
    pthread_cond_t done_cv;      /* an answer for the I/O thread */
    /* Guarded by mu. */
    ipc_server *server;          /* NULL once destroyed */
    bool running;                /* inside run(): answers are taken */
    bool quit;                   /* the workers leave */
    bool shutdown;               /* a worker's handler said IPC_SHUTDOWN */
    ipc_request *work_head, *work_tail;
    ipc_request *done_head, *done_tail;
    uint64_t late;               /* answers after run() returned */
    size_t deferred;             /* requests with the application */
    atomic_uint refs;            /* the server's, and one per request */
    /* run()'s thread only. */
    ipc_handler handler;
    void *ctx;
    size_t limit;                /* payload bytes, both ways */
    size_t hdr;                  /* IPC_WIRE_ID_SIZE on the mux wire, or 0 */
    uint32_t per_client;         /* requests in work per client */
    uint32_t max_inflight;       /* requests in work per server */
    size_t inflight;             /* taken and not yet finished */
    ipc__run_client *clients;
    size_t nclients;
    pthread_t *threads;
    size_t nthreads;
} ipc__run;

/* A handler's reply. Serially: a loan from the transport (on shared
 * memory, the client's ring itself) or, failing that, own. In a worker:
 * own, which then travels with the request to the I/O thread. */
struct ipc_response {
    ipc_server *server;
    ipc__run *run;
    ipc_request *req; /* a worker's request; NULL serially */
    int client_id;
    uint64_t wire_id;
    const void *request; /* serially: in place, for a deferral's copy */
    size_t request_len;
    size_t limit;
    size_t hdr;
    size_t len;
    bool loaned;
    ipc_request *deferred;
    uint8_t *own; /* [hdr][payload] */
    size_t own_capacity;
};

static uint64_t ipc__get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void ipc__put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* ------------------------------------------------------------- the state */

static void ipc__run_unref(ipc__run *r)
{
    /* acq_rel: the last owner sees every write of the others before it
     * frees (the usual reference count pairing). */
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_cond_destroy(&r->done_cv);
    pthread_cond_destroy(&r->work_cv);
    pthread_mutex_destroy(&r->mu);
    free(r->clients);
    free(r->threads);
    free(r);
}

static ipc__run *ipc__run_of(ipc_server *s)
{
    if (s->run != NULL)
        return s->run;
    ipc__run *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->work_cv, NULL);
    pthread_cond_init(&r->done_cv, NULL);
    r->server = s;
    atomic_init(&r->refs, 1);
    s->run = r;
    return r;
}

void ipc__run_detach(ipc_server *s)
{
    ipc__run *r = s->run;
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->server = NULL;
    pthread_mutex_unlock(&r->mu);
    s->run = NULL;
    ipc__run_unref(r);
}

static void ipc__request_free(ipc_request *q)
{
    ipc__run *r = q->run;
    free(q->reply);
    free(q);
    ipc__run_unref(r);
}

/* A copy of a request of len payload bytes, for a worker or a deferral. */
static ipc_request *ipc__request_new(ipc__run *r, int id, uint64_t gen, uint64_t wire_id,
                                     const void *data, size_t len)
{
    ipc_request *q = malloc(sizeof(*q) + len);
    if (q == NULL)
        return NULL;
    *q = (ipc_request){.run = r, .client_id = id, .gen = gen, .wire_id = wire_id,
                       .taken = ipc__stamp(), .data = (const uint8_t *)(q + 1), .len = len,
                       .reserved = SIZE_MAX};
    if (len != 0)
        memcpy(q + 1, data, len);
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed); /* owner holds one */
    return q;
}

/* Room for a reply of len payload bytes after the id. */
static bool ipc__request_room(ipc_request *q, size_t len)
{
    size_t hdr = q->run->hdr;
    if (q->reply != NULL && len <= q->reply_cap)
        return true;
    uint8_t *p = realloc(q->reply, hdr + (len ? len : 1));
    if (p == NULL)
        return false;
    q->reply = p;
    q->reply_cap = len ? len : 1;
    return true;
}

/* ------------------------------------------------------------ answering */

/* Tells the I/O thread to look at the done queue and the shutdown flag.
 * Under mu while running: run() cannot return, nor the server go, before
 * it looked. Release [K]: pairs with the acquire in ipc__kick_seen() and
 * ipc__run_take_done(); only the first kick since the I/O thread last
 * looked pays for a wake. */
static void ipc__run_kick_locked(ipc__run *r)
{
    ipc_server *s = r->server;
    if (atomic_exchange_explicit(&s->kicked, 1, memory_order_release) == 0)
        s->ops->wake(s);
    pthread_cond_signal(&r->done_cv);
}

/* Hands an answered request to the I/O thread (any thread). -ECANCELED,
 * and q freed, once run() has returned. */
static int ipc__run_answer(ipc_request *q)
{
    ipc__run *r = q->run;
    pthread_mutex_lock(&r->mu);
    if (!r->running) {
        r->late++;
        pthread_mutex_unlock(&r->mu);
        ipc__request_free(q);
        return -ECANCELED;
    }
    q->next = NULL;
    if (r->done_tail != NULL)
        r->done_tail->next = q;
    else
        r->done_head = q;
    r->done_tail = q;
    ipc__run_kick_locked(r);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

int ipc_request_client(const ipc_request *q)
{
    return q != NULL ? q->client_id : -EINVAL;
}

const void *ipc_request_data(const ipc_request *q, size_t *len)
{
    if (len != NULL)
        *len = q != NULL ? q->len : 0;
    return q != NULL ? q->data : NULL;
}

void *ipc_request_reserve(ipc_request *q, size_t len)
{
    if (q == NULL || len > q->run->limit || !ipc__request_room(q, len))
        return NULL;
    q->reserved = len;
    return q->reply + q->run->hdr;
}

int ipc_request_commit(ipc_request *q, size_t len)
{
    if (q == NULL || q->reserved == SIZE_MAX || len > q->reserved)
        return -EINVAL;
    q->reply_len = len;
    q->answer = IPC__ANSWER_REPLY;
    return ipc__run_answer(q);
}

int ipc_request_reply(ipc_request *q, const void *data, size_t len)
{
    if (q == NULL)
        return -EINVAL;
    if (ipc__check_buffer(data, len) < 0)
        return -EFAULT;
    if (len > q->run->limit)
        return -EMSGSIZE;
    if (!ipc__request_room(q, len))
        return -ENOMEM;
    if (len != 0)
        memmove(q->reply + q->run->hdr, data, len);
    q->reply_len = len;
    q->answer = IPC__ANSWER_REPLY;
    return ipc__run_answer(q);
}

void ipc_request_drop(ipc_request *q)
{
    if (q == NULL)
        return;
    q->answer = IPC__ANSWER_DROP;
    (void)ipc__run_answer(q);
}

static ipc__run_client *ipc__run_client_of(ipc__run *r, ipc_server *s, int id);

/* ------------------------------------------------------------ responses */

void *ipc_response_reserve(ipc_response *r, size_t len)
{
    if (r == NULL || len > r->limit || r->deferred != NULL)
        return NULL;
    void *p;
    r->loaned = r->req == NULL &&
                ipc__server_loan(r->server, r->client_id, r->hdr + len, &p) == 0;
    if (r->loaned) {
        if (r->hdr != 0)
            ipc__put_le64(p, r->wire_id);
    } else {
        size_t need = r->hdr + (len ? len : 1);
        if (need > r->own_capacity || r->own == NULL) {
            uint8_t *q = realloc(r->own, need);
            if (q == NULL)
                return NULL;
            r->own = q;
            r->own_capacity = need;
        }
        p = r->own;
    }
    r->len = len;
    return (uint8_t *)p + r->hdr;
}

int ipc_response_set(ipc_response *r, const void *data, size_t len)
{
    if (r == NULL || ipc__check_buffer(data, len) < 0)
        return r == NULL ? -EINVAL : -EFAULT;
    if (len > r->limit)
        return -EMSGSIZE;
    void *p = ipc_response_reserve(r, len);
    if (p == NULL)
        return r->deferred != NULL ? -EINVAL : -ENOMEM;
    if (len != 0)
        memmove(p, data, len); /* data may be the request, or an earlier reserve */
    return 0;
}

ipc_request *ipc_response_defer(ipc_response *r)
{
    if (r == NULL || r->deferred != NULL)
        return NULL;
    ipc_request *q = r->req;
    if (q == NULL) { /* serially: the request is in place, copy it */
        ipc_server *s = r->server;
        /* The record first: ipc__serve_one() then finds it. */
        if (ipc__run_client_of(r->run, s, r->client_id) == NULL)
            return NULL;
        q = ipc__request_new(r->run, r->client_id, s->ops->conn_gen(s, r->client_id),
                             r->wire_id, r->request, r->request_len);
        if (q == NULL)
            return NULL;
    }
    ipc__run *run = r->run;
    pthread_mutex_lock(&run->mu);
    run->deferred++;
    pthread_mutex_unlock(&run->mu);
    q->deferred = true;
    r->deferred = q;
    r->len = 0;
    r->loaned = false; /* an uncommitted loan publishes nothing */
    return q;
}

/* ------------------------------------------------------- client records */

static uint32_t ipc__run_bound(const ipc__run *r)
{
    return r->hdr != 0 ? r->per_client : 1; /* legacy: in order */
}

/* The record of the connection holding id now; NULL when out of memory. */
static ipc__run_client *ipc__run_client_of(ipc__run *r, ipc_server *s, int id)
{
    if ((size_t)id >= r->nclients) {
        size_t n = r->nclients ? r->nclients : 16;
        while (n <= (size_t)id)
            n *= 2;
        ipc__run_client *t = realloc(r->clients, n * sizeof(*t));
        if (t == NULL)
            return NULL;
        memset(t + r->nclients, 0, (n - r->nclients) * sizeof(*t));
        r->clients = t;
        r->nclients = n;
    }
    ipc__run_client *c = &r->clients[id];
    uint64_t gen = s->ops->conn_gen(s, id);
    if (c->gen != gen) /* a new connection: its predecessor's counts go */
        *c = (ipc__run_client){.gen = gen};
    return c;
}

/* A request of c's was taken: hold the client at its bound. */
static void ipc__run_taken(ipc__run *r, ipc_server *s, int id, ipc__run_client *c)
{
    c->inflight++;
    r->inflight++;
    if (c->inflight >= ipc__run_bound(r) && !c->held) {
        s->ops->hold(s, id, true);
        c->held = true;
    }
}

/* A request of connection gen on id was finished. */
static void ipc__run_settled(ipc__run *r, ipc_server *s, int id, uint64_t gen)
{
    r->inflight--;
    if ((size_t)id >= r->nclients || r->clients[id].gen != gen)
        return;
    ipc__run_client *c = &r->clients[id];
    c->inflight--;
    if (c->held && c->inflight < ipc__run_bound(r)) {
        s->ops->hold(s, id, false);
        c->held = false;
    }
}

/* A request that will get no reply: the transport owes it nothing, and on
 * the legacy wire the client, whose replies would now pair wrongly, goes. */
static void ipc__run_unanswered(ipc__run *r, ipc_server *s, int id)
{
    if (s->ops->forget != NULL)
        s->ops->forget(s, id);
    if (r->hdr == 0)
        s->ops->disconnect(s, id);
}

/* ------------------------------------------------------------ I/O thread */

/* Sends (or discards) an answered request and frees it. */
static void ipc__run_finish(ipc__run *r, ipc_server *s, ipc_request *q)
{
    int id = q->client_id;
    if (s->ops->conn_gen(s, id) != q->gen) {
        /* Its client left: the reply can reach no one, and never a later
         * connection given the same id (the generation differs). */
        ipc__stat_add(s->stats.block, IPC__STAT_ORPHANS, 1);
        if (s->ops->forget != NULL)
            s->ops->forget(s, id); /* the socket's zombie owes it */
    } else if (q->answer == IPC__ANSWER_DROP) {
        ipc__run_unanswered(r, s, id);
    } else {
        uint8_t idonly[IPC_WIRE_ID_SIZE];
        uint8_t *p = q->reply != NULL ? q->reply : idonly;
        if (r->hdr != 0)
            ipc__put_le64(p, q->wire_id);
        int rc = ipc__server_send(s, id, p, r->hdr + q->reply_len);
        if (rc == 0)
            ipc__stat_latency(s->stats.block, ipc__stamp_ns(ipc__stamp() - q->taken));
        else if (ipc__peer_gone(rc, false) == -ECONNRESET)
            /* The connection was still there but its client had left (a
             * socket half-closed by the client's exit): the same orphan. */
            ipc__stat_add(s->stats.block, IPC__STAT_ORPHANS, 1);
    }
    if (q->deferred) {
        pthread_mutex_lock(&r->mu);
        r->deferred--;
        pthread_mutex_unlock(&r->mu);
    }
    ipc__run_settled(r, s, id, q->gen);
    ipc__request_free(q);
}

/* Takes every answered request and finishes it; true when a worker's
 * handler asked for a shutdown. Cheap when nothing was answered. */
static bool ipc__run_take_done(ipc__run *r, ipc_server *s)
{
    /* Relaxed first look: the hot path pays no locked instruction. Every
     * answer (and a shutdown) sets kicked under mu after it is queued, so
     * nothing is missed: one queued after this look sets it again. The
     * exchange's acquire [K] pairs with ipc__run_answer(); the list itself
     * is taken under mu. */
    if (atomic_load_explicit(&s->kicked, memory_order_relaxed) == 0)
        return false;
    (void)atomic_exchange_explicit(&s->kicked, 0, memory_order_acquire);
    pthread_mutex_lock(&r->mu);
    ipc_request *q = r->done_head;
    r->done_head = r->done_tail = NULL;
    bool shutdown = r->shutdown;
    pthread_mutex_unlock(&r->mu);
    while (q != NULL) {
        ipc_request *next = q->next;
        ipc__run_finish(r, s, q);
        q = next;
    }
    return shutdown;
}

/* Waits up to IPC__RUN_SLICE_NS for an answer, without the transport. */
static void ipc__run_wait_done(ipc__run *r)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + IPC__RUN_SLICE_NS;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_mutex_lock(&r->mu);
    if (r->done_head == NULL)
        (void)pthread_cond_timedwait(&r->done_cv, &r->mu, &ts);
    pthread_mutex_unlock(&r->mu);
}

/* Checks a request's framing: 0, or the error it breaks the rules with
 * (the client is then dropped, and owed nothing). */
static int ipc__run_check(const ipc__run *r, size_t n)
{
    if (n < r->hdr)
        return -EPROTO; /* too short for its id */
    return n - r->hdr > r->limit ? -EMSGSIZE : 0;
}

static void ipc__run_reject(ipc_server *s, int id, int err)
{
    ipc__stat_error(s->stats.block, err);
    (void)ipc__server_release(s, id);
    if (s->ops->forget != NULL)
        s->ops->forget(s, id);
    s->ops->disconnect(s, id);
}

/* Workers: copies the next request of client id to the work queue. */
static void ipc__run_take(ipc__run *r, ipc_server *s, int id)
{
    const void *msg;
    ssize_t n = ipc__server_peek(s, id, &msg);
    if (n < 0)
        return;
    int err = ipc__run_check(r, (size_t)n);
    if (err < 0) {
        ipc__run_reject(s, id, err);
        return;
    }
    ipc__run_client *c = ipc__run_client_of(r, s, id);
    const uint8_t *m = msg;
    ipc_request *q = c == NULL ? NULL
                               : ipc__request_new(r, id, c->gen, r->hdr ? ipc__get_le64(m) : 0,
                                                  m + r->hdr, (size_t)n - r->hdr);
    if (q == NULL) { /* out of memory: the client learns by a reset */
        ipc__run_reject(s, id, -ENOMEM);
        return;
    }
    (void)ipc__server_release(s, id);
    ipc__run_taken(r, s, id, c);
    pthread_mutex_lock(&r->mu);
    if (r->work_tail != NULL)
        r->work_tail->next = q;
    else
        r->work_head = q;
    r->work_tail = q;
    pthread_cond_signal(&r->work_cv);
    pthread_mutex_unlock(&r->mu);
}

/* ---------------------------------------------------------------- workers */

static void *ipc__run_worker(void *arg)
{
    ipc__run *r = arg;
    ipc_response resp = {.run = r, .limit = r->limit, .hdr = r->hdr};
    for (;;) {
        pthread_mutex_lock(&r->mu);
        while (r->work_head == NULL && !r->quit)
            pthread_cond_wait(&r->work_cv, &r->mu);
        ipc_request *q = r->work_head;
        if (q == NULL) {
            pthread_mutex_unlock(&r->mu);
            break;
        }
        r->work_head = q->next;
        if (r->work_head == NULL)
            r->work_tail = NULL;
        pthread_mutex_unlock(&r->mu);

        resp.req = q;
        resp.client_id = q->client_id;
        resp.wire_id = q->wire_id;
        resp.len = 0;
        resp.deferred = NULL;
        ipc_action action = r->handler(r->ctx, q->client_id, q->data, q->len, &resp);
        if (action == IPC_SHUTDOWN) {
            pthread_mutex_lock(&r->mu);
            r->shutdown = true;
            ipc__run_kick_locked(r);
            pthread_mutex_unlock(&r->mu);
        }
        if (resp.deferred != NULL)
            continue; /* the application's now */
        /* The reply travels with the request: own goes to q. */
        free(q->reply);
        q->reply = resp.own;
        q->reply_cap = resp.own_capacity > r->hdr ? resp.own_capacity - r->hdr : 0;
        q->reply_len = resp.len;
        q->answer = IPC__ANSWER_REPLY;
        resp.own = NULL;
        resp.own_capacity = 0;
        (void)ipc__run_answer(q);
    }
    free(resp.own);
    return NULL;
}

static int ipc__run_start_workers(ipc__run *r, size_t n)
{
    r->threads = calloc(n, sizeof(*r->threads));
    if (r->threads == NULL)
        return -ENOMEM;
    r->quit = false;
    for (r->nthreads = 0; r->nthreads < n; r->nthreads++) {
        int rc = ipc__thread_start_nosig(&r->threads[r->nthreads], ipc__run_worker, r);
        if (rc < 0)
            return rc; /* the caller stops those started */
    }
    return 0;
}

static void ipc__run_stop_workers(ipc__run *r)
{
    pthread_mutex_lock(&r->mu);
    r->quit = true;
    pthread_cond_broadcast(&r->work_cv);
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < r->nthreads; i++)
        pthread_join(r->threads[i], NULL);
    free(r->threads);
    r->threads = NULL;
    r->nthreads = 0;
}

/* ------------------------------------------------------------ serially */

/* One request, read in place: handle, reply, release. false when there was
 * none to read (no more ready, or the client is gone: the transport dealt
 * with it); *replied tells whether a reply went out. */
static bool ipc__serve_one(ipc__run *r, ipc_server *s, int id, ipc_response *resp,
                           ipc_action *action, bool *replied)
{
    const void *request;
    ssize_t n = ipc__server_peek(s, id, &request);
    *replied = false;
    if (n < 0)
        return false;
    int err = ipc__run_check(r, (size_t)n);
    if (err < 0) {
        ipc__run_reject(s, id, err);
        return false;
    }
    const uint8_t *m = request;
    resp->client_id = id;
    resp->wire_id = r->hdr ? ipc__get_le64(m) : 0;
    resp->request = m + r->hdr;
    resp->request_len = (size_t)n - r->hdr;
    resp->len = 0;
    resp->loaned = false;
    resp->deferred = NULL;
    *action = r->handler(r->ctx, id, resp->request, resp->request_len, resp);
    if (resp->deferred != NULL) { /* copied: the application answers later */
        (void)ipc__server_release(s, id);
        /* The record exists: ipc_response_defer() made it. */
        ipc__run_taken(r, s, id, ipc__run_client_of(r, s, id));
        return true;
    }
    /* Reply first, release after: the client waits for the one, not the
     * other. A client that left meanwhile is no error of the server's. */
    int rc;
    if (resp->loaned) {
        rc = ipc__server_commit(s, id, r->hdr + resp->len);
    } else {
        if (r->hdr != 0 && ipc_response_reserve(resp, resp->len) == NULL)
            rc = -ENOMEM; /* no room even for the id */
        else if (resp->loaned)
            rc = ipc__server_commit(s, id, r->hdr); /* the id alone, in place */
        else {
            if (r->hdr != 0)
                ipc__put_le64(resp->own, resp->wire_id);
            rc = ipc__server_send(s, id, resp->own, r->hdr + resp->len);
        }
    }
    (void)ipc__server_release(s, id);
    *replied = rc == 0;
    return true;
}

/* Every ready request of client id, up to IPC__BATCH_MAX: handled, replied
 * and released one by one, the client woken once at the end (ops->
 * end_batch). One stamp per request: the end of one is the start of the
 * next, so each reply's sample is its own time, from the run loop taking
 * its request to the reply sent. */
static ipc_action ipc__serve_batch(ipc__run *r, ipc_server *s, int id, ipc_response *resp)
{
    uint64_t taken = ipc__stamp();
    ipc_action action = IPC_CONTINUE;
    bool replied;
    s->batch_client = id;
    for (int k = 0; k < IPC__BATCH_MAX; k++) {
        if (!ipc__serve_one(r, s, id, resp, &action, &replied))
            break;
        uint64_t done = ipc__stamp();
        if (replied)
            ipc__stat_latency(s->stats.block, ipc__stamp_ns(done - taken));
        taken = done;
        if (action != IPC_CONTINUE || s->ops->has_next == NULL || !s->ops->has_next(s, id))
            break;
    }
    s->batch_client = -1;
    if (s->ops->end_batch != NULL)
        s->ops->end_batch(s, id);
    return action;
}

/* --------------------------------------------------------------- the loop */

/* Serves until a stop (0), a handler's shutdown (1) or an error. */
static int ipc__run_loop(ipc__run *r, ipc_server *s, ipc_response *resp)
{
    for (;;) {
        if (ipc__run_take_done(r, s))
            return 1;
        if (ipc__stop_seen(s))
            return 0;
        if (r->inflight >= r->max_inflight) { /* at the server's bound */
            ipc__run_wait_done(r);
            continue;
        }
        int id = s->ops->wait_for_data(s, IPC_FOREVER);
        if (id == -EINTR)
            continue; /* answers to send */
        if (id == -ECANCELED)
            return 0;
        if (id < 0)
            return id;
        if (r->nthreads != 0)
            ipc__run_take(r, s, id);
        else if (ipc__serve_batch(r, s, id, resp) == IPC_SHUTDOWN)
            return 1;
    }
}

/* Stopping: lets the workers' requests finish and sends their replies;
 * waits for deferred ones until IPC_SHUTDOWN_FLUSH_NS after the start. */
static void ipc__run_drain(ipc__run *r, ipc_server *s)
{
    uint64_t deadline = ipc__now_ns() + IPC_SHUTDOWN_FLUSH_NS;
    for (;;) {
        (void)ipc__run_take_done(r, s);
        pthread_mutex_lock(&r->mu);
        size_t deferred = r->deferred;
        pthread_mutex_unlock(&r->mu);
        if (r->inflight == deferred && (deferred == 0 || ipc__now_ns() >= deadline))
            return;
        ipc__run_wait_done(r);
    }
}

/* run() returns: answers from now on are discarded; requests still
 * deferred are owed nothing (their legacy clients go: see
 * ipc__run_unanswered), and every client the loop held is let go. */
static void ipc__run_end(ipc__run *r, ipc_server *s)
{
    pthread_mutex_lock(&r->mu);
    r->running = false;
    r->shutdown = false;
    r->deferred = 0;
    pthread_mutex_unlock(&r->mu);
    (void)ipc__run_take_done(r, s); /* answered before running went false */
    for (size_t id = 0; id < r->nclients; id++) {
        ipc__run_client *c = &r->clients[id];
        if (c->gen != 0 && c->gen == s->ops->conn_gen(s, (int)id)) {
            for (uint32_t k = 0; k < c->inflight; k++)
                ipc__run_unanswered(r, s, (int)id);
            if (c->held)
                s->ops->hold(s, (int)id, false);
        }
        *c = (ipc__run_client){0};
    }
    r->inflight = 0;
    /* Relaxed: nobody sets it once running is false (set under mu). */
    atomic_store_explicit(&s->kicked, 0, memory_order_relaxed);
}

static int ipc__run_begin(ipc__run *r, ipc_server *s)
{
    pthread_mutex_lock(&r->mu);
    r->running = true;
    uint64_t late = r->late;
    r->late = 0;
    pthread_mutex_unlock(&r->mu);
    ipc__stat_add(s->stats.block, IPC__STAT_ORPHANS, late);
    if (s->options.workers == 0)
        return 0;
    int rc = ipc__run_start_workers(r, s->options.workers);
    if (rc < 0) {
        ipc__run_stop_workers(r);
        ipc__run_end(r, s);
    }
    return rc;
}

int ipc_server_run(ipc_server *s, ipc_handler handler, void *ctx, size_t max_message_size)
{
    if (s == NULL || handler == NULL || max_message_size > ipc__wire_max(&s->options))
        return -EINVAL;
    size_t max = max_message_size ? max_message_size : s->options.max_message_size;
    size_t frame = max + ipc__wire_hdr(&s->options);
    if (frame != s->max_message) {
        s->max_message = frame;
        if (s->ops->set_limit != NULL)
            s->ops->set_limit(s);
    }
    if (!s->listening) {
        int rc = ipc_server_listen(s);
        if (rc < 0)
            return rc;
    }
    ipc__run *r = ipc__run_of(s);
    if (r == NULL)
        return -ENOMEM;
    r->handler = handler;
    r->ctx = ctx;
    r->limit = max;
    r->hdr = ipc__wire_hdr(&s->options);
    r->per_client = s->options.max_inflight_per_client;
    r->max_inflight = s->options.max_inflight;
    int rc = ipc__run_begin(r, s);
    if (rc < 0)
        return rc;
    ipc_response resp = {.server = s, .run = r, .limit = max, .hdr = r->hdr};
    rc = ipc__run_loop(r, s, &resp);
    ipc__run_drain(r, s);
    if (r->nthreads != 0)
        ipc__run_stop_workers(r);
    ipc__run_end(r, s);
    if (rc == 1) { /* a shutdown's replies go out first, within a bound */
        (void)s->ops->flush(s, ipc__now_ns() + IPC_SHUTDOWN_FLUSH_NS);
        rc = 0;
    }
    /* Relaxed: consumes the stop [S] that ended this run (the acquire in
     * ipc__stop_seen() already saw it); it publishes nothing. */
    atomic_store_explicit(&s->stop_requested, 0, memory_order_relaxed);
    free(resp.own);
    return rc;
}
