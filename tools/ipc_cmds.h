/* The subcommands of the ipc CLI (each run() returns the exit code). */
#ifndef TOOLS_IPC_CMDS_H
#define TOOLS_IPC_CMDS_H

#include "tools/cli_util.h"

/* ipc_probe.c: an echo server, a latency probe, the demo. */
extern const ipc__cli_cmd ipc__cmd_serve;
extern const ipc__cli_cmd ipc__cmd_ping;
extern const ipc__cli_cmd ipc__cmd_demo;

/* ipc_admin.c: live servers and their leftovers. */
extern const ipc__cli_cmd ipc__cmd_ls;
extern const ipc__cli_cmd ipc__cmd_stat;
extern const ipc__cli_cmd ipc__cmd_clean;

#endif /* TOOLS_IPC_CMDS_H */
