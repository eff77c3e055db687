/* ipc_version(): the version the library was built as. */
#include "ipc/ipc.h"

const char *ipc_version(void)
{
    return IPC_VERSION_STRING;
}
