/* The abstract names of stats pages: "ipc-stats/<transport>/<id>". */
#include "ipc/stats.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ipc/unix/unix.h"

int ipc__stats_addr(const char *transport, const char *name, char *out, size_t cap)
{
    char id[17];
    if (strcmp(transport, "socket") == 0) {
        int rc = ipc__path_id(name, id, NULL, 0);
        if (rc < 0)
            return rc;
        name = id;
    } else if (strcmp(transport, "shm") != 0) {
        return -EINVAL;
    }
    int n = snprintf(out, cap, "ipc-stats/%s/%s", transport, name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : n;
}
