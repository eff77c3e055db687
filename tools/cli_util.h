/*
 * What every command of the ipc CLI shares: exit codes, option parsing that
 * names the bad flag, numbers with units checked for overflow, the one way a
 * path typed by the user is resolved, shared-memory name rules, and JSON
 * output. Messages go to stderr, prefixed "ipc <command>: ".
 */
#ifndef TOOLS_CLI_UTIL_H
#define TOOLS_CLI_UTIL_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes of every command. IPC_EXIT_NO_THREAD: a thread (or process)
 * the command needs could not start (the library's -EUSERS: the user's
 * process/thread limit, ulimit -u, or memory for a thread stack). */
enum { IPC_EXIT_OK = 0, IPC_EXIT_FAIL = 1, IPC_EXIT_USAGE = 2, IPC_EXIT_NO_THREAD = 3 };

/* Longest socket path: sizeof(sockaddr_un.sun_path) - 1. */
#define IPC__CLI_PATH_MAX 107
/* The library's rules for a shared-memory name and server capacity
 * (ipc/shm/shm_transport.h); cli_test checks both edges against it. */
#define IPC__CLI_SHM_NAME_MAX 64
#define IPC__CLI_SHM_MAX_CLIENTS 4096

/* One subcommand: its name, a one-line summary and its --help text. */
typedef struct ipc__cli_cmd {
    const char *name;
    const char *summary;
    const char *help; /* synopsis, options, an example */
    int (*run)(const struct ipc__cli_cmd *cmd, int argc, char **argv);
} ipc__cli_cmd;

/* Prints "ipc <cmd>: <message>\n" to stderr; returns code. */
int ipc__cli_error(const ipc__cli_cmd *cmd, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prints the command's help to stdout; returns IPC_EXIT_OK. */
int ipc__cli_help(const ipc__cli_cmd *cmd);

/* getopt_long over argv[1..] (argv[0] is the command's name; -h is --help)
 * that reports an unknown option, a missing value or a stray value itself,
 * naming the flag: returns the option, -1 at the end, or '?' after printing
 * the message. */
int ipc__cli_getopt(const ipc__cli_cmd *cmd, int argc, char **argv,
                    const struct option *opts);

/* Numbers. Each prints "bad value for --flag: ..." and returns false when
 * the text is not a number in [min, max]. */
/* Bytes: digits with an optional unit B, K/KiB, M/MiB, G/GiB (powers of 1024). */
bool ipc__cli_size(const ipc__cli_cmd *cmd, const char *flag, const char *text, uint64_t min,
                   uint64_t max, uint64_t *out);
/* A plain decimal count, no unit. */
bool ipc__cli_count(const ipc__cli_cmd *cmd, const char *flag, const char *text, uint64_t min,
                    uint64_t max, uint64_t *out);

/* The one resolution of a path the user typed, for every command: relative
 * to the directory the user was in (BUILD_WORKING_DIRECTORY under `bazel
 * run`, else the current one), with the directory part canonical (".",
 * "..", "//" and symlinked directories resolved; the last component is kept
 * as typed). 0; -ENOENT / -ENOTDIR when the directory is not there;
 * -ENAMETOOLONG when the result does not fit in cap. */
int ipc__cli_resolve(const char *typed, char *out, size_t cap);

/* A socket path for --socket or a bare PATH: resolved, and at most
 * IPC__CLI_PATH_MAX bytes. Prints the cause and returns IPC_EXIT_USAGE
 * (too long) or IPC_EXIT_FAIL (no such directory); IPC_EXIT_OK on success. */
int ipc__cli_socket_path(const ipc__cli_cmd *cmd, const char *typed,
                         char out[IPC__CLI_PATH_MAX + 1]);

/* true for a valid shared-memory name, else prints which characters and how
 * many a name may have. */
bool ipc__cli_shm_name(const ipc__cli_cmd *cmd, const char *flag, const char *name);

/* Where a command talks to: a resolved socket path or a shared-memory name. */
typedef struct ipc__cli_endpoint {
    bool set;
    bool shm;
    char name[IPC__CLI_PATH_MAX + 1];
} ipc__cli_endpoint;

/* Takes --socket PATH (shm false) or --shm NAME: checked and resolved.
 * IPC_EXIT_OK, or the exit code after the message (both given, too long,
 * bad characters, no such directory). */
int ipc__cli_endpoint_set(const ipc__cli_cmd *cmd, ipc__cli_endpoint *ep, bool shm,
                          const char *value);

/* What the user typed for a message: TEXT, text:TEXT, hex:HEX or @FILE.
 * *buf is malloc'ed (free it). IPC_EXIT_OK or the exit code after the message. */
int ipc__cli_data(const ipc__cli_cmd *cmd, const char *flag, const char *text, uint8_t **buf,
                  size_t *len);

/* JSON: a string with quotes and escapes (bytes >= 0x80 are passed through;
 * names the library accepts are ASCII or the user's own path bytes). */
void ipc__cli_json_str(FILE *f, const char *s);

/* Writes s for a terminal: printable ASCII as is, a backslash as \\, every
 * other byte as \xHH, so a name from another process's stats page (or a
 * file name) can neither start a new row nor send escape sequences. */
void ipc__cli_text_str(FILE *f, const char *s);

/* The user's name for a uid, or the number. */
const char *ipc__cli_owner(uint32_t uid, char *buf, size_t cap);

/* CLOCK_MONOTONIC in ns. */
uint64_t ipc__cli_now_ns(void);

#endif /* TOOLS_CLI_UTIL_H */
