/* Operator commands of the ipc CLI. Each returns the process exit code. */
#ifndef TOOLS_IPC_ADMIN_H
#define TOOLS_IPC_ADMIN_H

int ipc_cmd_ls(int argc, char **argv);
int ipc_cmd_stat(int argc, char **argv);
int ipc_cmd_clean(int argc, char **argv);

#endif
