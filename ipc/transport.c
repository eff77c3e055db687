/* The pending-output limit shared by the transports. */
#include "ipc/transport.h"

size_t ipc__pending_limit(const ipc_server *s)
{
    const ipc_server_options *o = &s->options;
    if (o->max_pending_output != 0)
        return o->max_pending_output;
    return 2 * s->max_message + (64u << 10);
}
