/* Deadlines and the pending-output limit shared by the transports. */
#include "ipc/transport.h"

#include <limits.h>

uint64_t ipc__deadline(uint64_t timeout_ns)
{
    if (timeout_ns == 0)
        return IPC_FOREVER;
    uint64_t now = ipc__now_ns();
    return timeout_ns >= IPC_FOREVER - now ? IPC_FOREVER - 1 : now + timeout_ns;
}

int ipc__poll_ms(uint64_t deadline)
{
    if (deadline == IPC_FOREVER)
        return -1;
    uint64_t now = ipc__now_ns();
    if (now >= deadline)
        return 0;
    uint64_t ms = (deadline - now + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

size_t ipc__pending_limit(const ipc_server *s)
{
    const ipc_server_options *o = &s->options;
    if (o->max_pending_output != 0)
        return o->max_pending_output;
    return 2 * s->max_message + (64u << 10);
}
