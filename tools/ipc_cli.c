/*
 * ipc — the operator's command line: an echo server, a probe for any
 * server, the live servers on this machine and their counters, cleanup of
 * what dead servers left, and the benchmark (a binary of its own).
 *
 * Exit codes of every command: 0 success, 1 failure at run time, 2 bad usage,
 * 3 a thread or process could not start (the user's limit, ulimit -u).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "tools/ipc_cmds.h"

static int bench_main(const ipc__cli_cmd *cmd, int argc, char **argv);

static const ipc__cli_cmd ipc__cmd_bench = {
    .name = "bench",
    .summary = "the benchmark: runs ipc_bench installed beside this binary",
    .help = "usage: ipc bench [ipc_bench options]\n"
            "\n"
            "The benchmark is a binary of its own, ipc_bench (it links nng and ZeroMQ;\n"
            "this one links only libc). `ipc bench ARGS` runs DIR/ipc_bench ARGS or\n"
            "DIR/bench/ipc_bench ARGS, DIR being where this binary is; without it:\n"
            "  bazel run -c opt //tools:ipc_bench -- ARGS\n"
            "Its options (`ipc_bench --help`): --quick, --json FILE, --plot FILE.png|.svg,\n"
            "--only ID,... (docs/BENCHMARKS.md).\n"
            "\n"
            "  --help   this text\n"
            "\n"
            "Exit: 0 done, 1 a case or an output failed (or ipc_bench is not installed\n"
            "beside), 2 bad usage: ipc_bench's own.\n"
            "\n"
            "example:\n"
            "  ipc bench --quick --plot /tmp/bench.png\n",
    .run = bench_main,
};

static const ipc__cli_cmd *const commands[] = {
    &ipc__cmd_serve, &ipc__cmd_ping,  &ipc__cmd_ls,    &ipc__cmd_stat,
    &ipc__cmd_clean, &ipc__cmd_demo,  &ipc__cmd_bench,
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static int usage(FILE *out, int code)
{
    fprintf(out, "usage: ipc <command> [options]\n"
                 "       ipc <command> --help     a command's options and an example\n"
                 "       ipc --version\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-7s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(out, "  %-7s %s\n", "help", "this text, or `ipc help COMMAND`");
    fprintf(out, "\nexit codes: 0 success, 1 failure at run time, 2 bad usage, 3 cannot start a\n"
                 "thread or process (the user's process/thread limit, ulimit -u)\n"
                 "paths: relative to the directory you typed the command in (also under\n"
                 "`bazel run`); ./, // and symlinked directories all name the same server\n");
    return code;
}

static const ipc__cli_cmd *find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return NULL;
}

static int version(void)
{
    /* The library linked in, which is what an operator runs against. */
    return printf("ipc %s\n", ipc_version()) < 0 ? IPC_EXIT_FAIL : IPC_EXIT_OK;
}

/* ------------------------------------------------------------------- bench */

/* The directory of this executable, or false. */
static bool self_dir(char *out, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n <= 0)
        return false;
    out[n] = '\0';
    char *slash = strrchr(out, '/');
    if (slash == NULL)
        return false;
    *slash = '\0';
    return true;
}

static int bench_main(const ipc__cli_cmd *cmd, int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
        return ipc__cli_help(cmd);
    char dir[PATH_MAX], path[PATH_MAX + 16];
    static const char *const where[] = {"%s/ipc_bench", "%s/bench/ipc_bench"};
    if (self_dir(dir, sizeof(dir))) {
        for (size_t i = 0; i < 2; i++) {
            snprintf(path, sizeof(path), where[i], dir);
            if (access(path, X_OK) != 0)
                continue;
            argv[0] = path;
            execv(path, argv);
            return ipc__cli_error(cmd, IPC_EXIT_FAIL, "cannot run %s: %s", path,
                                  strerror(errno));
        }
    }
    return ipc__cli_error(cmd, IPC_EXIT_FAIL,
                          "ipc_bench is not installed beside this binary (looked for "
                          "%s/ipc_bench and %s/bench/ipc_bench); run it with: bazel run -c opt "
                          "//tools:ipc_bench -- ARGS",
                          dir, dir);
}

/* -------------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr, IPC_EXIT_USAGE);
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h"))
        return usage(stdout, IPC_EXIT_OK);
    if (!strcmp(name, "--version") || !strcmp(name, "version"))
        return argc == 2 ? version() : usage(stderr, IPC_EXIT_USAGE);
    if (!strcmp(name, "help")) {
        if (argc == 2)
            return usage(stdout, IPC_EXIT_OK);
        const ipc__cli_cmd *c = argc == 3 ? find(argv[2]) : NULL;
        if (c != NULL)
            return ipc__cli_help(c);
        fprintf(stderr, "ipc help: no command '%s'\n", argv[2]);
        return usage(stderr, IPC_EXIT_USAGE);
    }
    const ipc__cli_cmd *c = find(name);
    if (c == NULL) {
        fprintf(stderr, "ipc: unknown command '%s'\n", name);
        return usage(stderr, IPC_EXIT_USAGE);
    }
    return c->run(c, argc - 1, argv + 1);
}
