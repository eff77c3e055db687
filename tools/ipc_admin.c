/*
 * Operator commands: ls, stat, clean. Live servers are found through the
 * abstract "ipc-stats/..." names in /proc/net/unix (they vanish with their
 * process); stale leftovers are socket files nobody serves.
 *
 * What a server publishes is read by the library (ipc_stats_fetch/list),
 * which validates the page; the printers below only format a checked copy.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "tools/ipc_cmds.h"

enum { OPT_SOCKET = 256, OPT_SHM, OPT_WATCH, OPT_INTERVAL, OPT_COUNT, OPT_JSON, OPT_HELP };

/* Parses options that are only --json and --help: true with *first the
 * first operand's index, or false with *code the exit code (help printed,
 * or bad usage). */
static bool simple_options(const ipc__cli_cmd *cmd, int argc, char **argv, bool *json,
                           int *first, int *code)
{
    static const struct option with_json[] = {{"json", no_argument, NULL, OPT_JSON},
                                              {"help", no_argument, NULL, OPT_HELP},
                                              {NULL, 0, NULL, 0}};
    const struct option *opts = json != NULL ? with_json : with_json + 1;
    optind = 0;
    for (int opt; (opt = ipc__cli_getopt(cmd, argc, argv, opts)) != -1;) {
        if (opt != OPT_JSON) {
            *code = opt == OPT_HELP ? ipc__cli_help(cmd) : IPC_EXIT_USAGE;
            return false;
        }
        *json = true;
    }
    *first = optind;
    return true;
}

/* ------------------------------------------------------------ leftovers */

typedef void (*leftover_fn)(void *ctx, const char *path, uid_t uid);

/* Socket files of ours under dir (and one level of subdirectories) that
 * nobody serves: fn for each. */
static void find_leftovers(const char *dir, int depth, leftover_fn fn, void *ctx)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
            continue;
        struct stat st;
        if (lstat(path, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth > 0)
            find_leftovers(path, depth - 1, fn, ctx);
        else if (S_ISSOCK(st.st_mode) && st.st_uid == getuid() &&
                 ipc_socket_path_state(path) == IPC_PATH_STALE)
            fn(ctx, path, st.st_uid);
    }
    closedir(d);
}

/* A directory operand of ls or clean, resolved; IPC_EXIT_OK or the code
 * after the message. */
static int resolve_dir(const ipc__cli_cmd *cmd, const char *typed, char out[PATH_MAX])
{
    int rc = ipc__cli_resolve(typed, out, PATH_MAX);
    struct stat st;
    if (rc == 0 && stat(out, &st) < 0)
        rc = -errno;
    if (rc == 0 && !S_ISDIR(st.st_mode))
        rc = -ENOTDIR;
    if (rc < 0)
        return ipc__cli_error(cmd, rc == -EINVAL ? IPC_EXIT_USAGE : IPC_EXIT_FAIL, "%s: %s",
                              typed, rc == -EINVAL ? "empty path" : strerror(-rc));
    return IPC_EXIT_OK;
}

/* ---------------------------------------------------------------------- ls */

typedef struct ls_out {
    bool json;
    int rows;
} ls_out;

static void ls_row_start(ls_out *o)
{
    printf("%s\n    ", o->rows++ ? "," : "");
}

static void ls_live(void *arg, int err, const ipc_server_info *info, const ipc_stats *s)
{
    ls_out *o = arg;
    char owner[64];
    if (!o->json && err < 0) {
        printf("%-9s %-7s %-10s %8s %10s  (%s)\n", "?", "?", "?", "?", "?", ipc_strerror(err));
    } else if (!o->json) {
        printf("%-9s %-7d %-10s %8" PRIu64 " %10" PRIu64 "  ", info->transport, info->pid,
               ipc__cli_owner(info->uid, owner, sizeof(owner)), s->clients, s->messages_in);
        ipc__cli_text_str(stdout, info->name);
        putchar('\n');
    } else if (err < 0) {
        ls_row_start(o);
        printf("{\"state\": \"unreadable\", \"error\": ");
        ipc__cli_json_str(stdout, ipc_strerror(err));
        printf(", \"errno\": %d}", -err);
    } else {
        ls_row_start(o);
        printf("{\"state\": \"live\", \"transport\": \"%s\", \"name\": ", info->transport);
        ipc__cli_json_str(stdout, info->name);
        printf(", \"pid\": %d, \"uid\": %u, \"owner\": ", info->pid, info->uid);
        ipc__cli_json_str(stdout, ipc__cli_owner(info->uid, owner, sizeof(owner)));
        printf(", \"started_ns\": %" PRIu64 ", \"clients\": %" PRIu64 ", \"messages_in\": %" PRIu64
               ", \"messages_out\": %" PRIu64 "}",
               info->started_ns, s->clients, s->messages_in, s->messages_out);
    }
}

static void ls_stale(void *arg, const char *path, uid_t uid)
{
    ls_out *o = arg;
    char owner[64];
    ipc__cli_owner(uid, owner, sizeof(owner));
    if (!o->json) {
        printf("%-9s %-7s %-10s %8s %10s  ", "socket", "-", owner, "-", "-");
        ipc__cli_text_str(stdout, path);
        puts(" (stale)");
        return;
    }
    ls_row_start(o);
    printf("{\"state\": \"stale\", \"transport\": \"socket\", \"name\": ");
    ipc__cli_json_str(stdout, path);
    printf(", \"uid\": %u, \"owner\": ", (unsigned)uid);
    ipc__cli_json_str(stdout, owner);
    printf("}");
}

static int ls_main(const ipc__cli_cmd *cmd, int argc, char **argv)
{
    ls_out o = {0};
    int first, code;
    if (!simple_options(cmd, argc, argv, &o.json, &first, &code))
        return code;
    int rc = IPC_EXIT_OK;
    char (*dirs)[PATH_MAX] = calloc(argc > first ? (size_t)(argc - first) : 1, PATH_MAX);
    if (dirs == NULL)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL, "out of memory");
    int n = 0;
    for (int i = first; i < argc; i++) /* every operand checked before output */
        if (resolve_dir(cmd, argv[i], dirs[n]) == IPC_EXIT_OK)
            n++;
        else
            rc = IPC_EXIT_FAIL;
    if (first == argc)
        snprintf(dirs[n++], PATH_MAX, "/tmp");
    if (o.json)
        printf("{\"servers\": [");
    else
        printf("%-9s %-7s %-10s %8s %10s  %s\n", "TRANSPORT", "PID", "OWNER", "CLIENTS",
               "MESSAGES", "NAME");
    int err = ipc_stats_list(ls_live, &o);
    for (int i = 0; i < n; i++)
        find_leftovers(dirs[i], 1, ls_stale, &o);
    if (o.json)
        printf("%s]}\n", o.rows ? "\n" : "");
    free(dirs);
    if (err < 0)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL, "listing live servers (/proc/net/unix): %s",
                              ipc_strerror(err));
    return rc;
}

const ipc__cli_cmd ipc__cmd_ls = {
    .name = "ls",
    .summary = "live servers, and stale socket files under DIR (default /tmp)",
    .help = "usage: ipc ls [--json] [DIR...]\n"
            "\n"
            "Lists every live server on this machine (transport, pid, owner, clients,\n"
            "messages received, name), then the socket files of yours under each DIR\n"
            "(default /tmp; one level of subdirectories) whose server is dead, marked\n"
            "(stale). Servers of other users show as unreadable.\n"
            "\n"
            "  --json   one JSON object {\"servers\": [...]} (docs/OPERATIONS.md)\n"
            "  --help   this text\n"
            "\n"
            "Exit: 0 listed, 1 a DIR is missing or /proc/net/unix unreadable (the rest\n"
            "is still listed), 2 bad usage.\n"
            "\n"
            "example:\n"
            "  ipc ls --json /run/myapp\n",
    .run = ls_main,
};

/* ------------------------------------------------------------------- clean */

static void clean_one(void *arg, const char *path, uid_t uid)
{
    (void)uid;
    int *failed = arg;
    int rc = ipc_socket_path_clean(path);
    if (rc == 0) {
        printf("removed %s\n", path);
    } else {
        (*failed)++;
        fprintf(stderr, "ipc clean: %s: %s\n", path,
                rc == -EADDRINUSE ? "a live server is there; left alone" : ipc_strerror(rc));
    }
}

static int clean_main(const ipc__cli_cmd *cmd, int argc, char **argv)
{
    int first, code;
    if (!simple_options(cmd, argc, argv, NULL, &first, &code))
        return code;
    if (first == argc)
        return ipc__cli_error(cmd, IPC_EXIT_USAGE, "give a PATH or a DIR (see ipc clean --help)");
    int failed = 0;
    for (int i = first; i < argc; i++) {
        char path[PATH_MAX];
        struct stat st;
        int rc = ipc__cli_resolve(argv[i], path, sizeof(path));
        if (rc < 0) {
            failed++;
            fprintf(stderr, "ipc clean: %s: %s\n", argv[i], strerror(-rc));
        } else if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            find_leftovers(path, 1, clean_one, &failed);
        } else {
            clean_one(&failed, path, 0);
        }
    }
    return failed ? IPC_EXIT_FAIL : IPC_EXIT_OK;
}

const ipc__cli_cmd ipc__cmd_clean = {
    .name = "clean",
    .summary = "remove socket files whose server is dead (live ones: left alone)",
    .help = "usage: ipc clean [--] PATH|DIR...\n"
            "\n"
            "Removes each socket file PATH, or the stale socket files of yours under\n"
            "DIR (one level deep), only when its server is provably dead: it holds the\n"
            "lock every server of this library holds for its life, then checks that\n"
            "nothing accepts there. A live server, or anything not a socket, is left\n"
            "alone. Shared-memory servers leave nothing to clean.\n"
            "\n"
            "  --help   this text\n"
            "  --       the operands that follow are paths, even if they start with -\n"
            "\n"
            "Exit: 0 removed, 1 something was live, missing or not a socket (left\n"
            "alone), 2 bad usage.\n"
            "\n"
            "example:\n"
            "  ipc clean /tmp/echo.sock\n",
    .run = clean_main,
};

/* -------------------------------------------------------------------- stat */

typedef struct stat_plan {
    ipc__cli_endpoint ep;
    bool watch, json;
    uint64_t interval_ms, count; /* count 0: until stopped */
    bool interval_given, count_given;
} stat_plan;

static uint64_t errors_of(const ipc_stats *s)
{
    return s->timeouts + s->oversize + s->resets + s->other_errors;
}

static double percentile_ns(const ipc_stats *s, double q)
{
    return (double)ipc_stats_percentile(s, q);
}

static double uptime_s(const ipc_server_info *info)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return ((double)now.tv_sec * 1e9 + (double)now.tv_nsec - (double)info->started_ns) / 1e9;
}

static void print_once(const ipc_stats *s, const ipc_server_info *info)
{
    char owner[64];
    printf("server    %s ", info->transport);
    ipc__cli_text_str(stdout, info->name);
    printf("  pid %d  owner %s  up %.1f s\n", info->pid,
           ipc__cli_owner(info->uid, owner, sizeof(owner)), uptime_s(info));
    printf("clients   %" PRIu64 " now, %" PRIu64 " accepted, %" PRIu64 " reclaimed, %" PRIu64
           " dropped\n",
           s->clients, s->connects, s->reclaims, s->drops);
    printf("messages  %" PRIu64 " in, %" PRIu64 " out; bytes %" PRIu64 " in, %" PRIu64 " out\n",
           s->messages_in, s->messages_out, s->bytes_in, s->bytes_out);
    printf("errors    %" PRIu64 " timeouts, %" PRIu64 " oversize, %" PRIu64 " resets, %" PRIu64
           " other, %" PRIu64 " orphaned replies\n",
           s->timeouts, s->oversize, s->resets, s->other_errors, s->orphans);
    printf("service   p50 %.2f us, p99 %.2f us, p99.9 %.2f us (%" PRIu64 " samples)\n",
           percentile_ns(s, 0.5) / 1e3, percentile_ns(s, 0.99) / 1e3,
           percentile_ns(s, 0.999) / 1e3, ipc_stats_samples(s));
}

static void print_once_json(const ipc_stats *s, const ipc_server_info *info)
{
    char owner[64];
    printf("{\"transport\": \"%s\", \"name\": ", info->transport);
    ipc__cli_json_str(stdout, info->name);
    printf(", \"pid\": %d, \"uid\": %u, \"owner\": ", info->pid, info->uid);
    ipc__cli_json_str(stdout, ipc__cli_owner(info->uid, owner, sizeof(owner)));
    printf(", \"started_ns\": %" PRIu64 ", \"uptime_s\": %.3f", info->started_ns, uptime_s(info));
    const struct { const char *name; uint64_t v; } f[] = {
        {"clients", s->clients},       {"connects", s->connects},
        {"reclaims", s->reclaims},     {"drops", s->drops},
        {"messages_in", s->messages_in}, {"messages_out", s->messages_out},
        {"bytes_in", s->bytes_in},     {"bytes_out", s->bytes_out},
        {"timeouts", s->timeouts},     {"oversize", s->oversize},
        {"resets", s->resets},         {"other_errors", s->other_errors},
        {"orphans", s->orphans},
        {"samples", ipc_stats_samples(s)},
    };
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        printf(", \"%s\": %" PRIu64, f[i].name, f[i].v);
    printf(", \"p50_ns\": %.0f, \"p99_ns\": %.0f, \"p999_ns\": %.0f}\n", percentile_ns(s, 0.5),
           percentile_ns(s, 0.99), percentile_ns(s, 0.999));
}

/* One line of --watch: what changed since the previous snapshot. */
static void print_delta(const ipc_stats *now, const ipc_stats *before, double secs,
                        double elapsed, bool json)
{
    static ipc_stats d;
    d = *now;
    for (unsigned i = 0; i < IPC_HISTOGRAM_BUCKETS; i++)
        d.latency[i] -= before->latency[i];
    double in = (double)(now->messages_in - before->messages_in) / secs;
    double out = (double)(now->messages_out - before->messages_out) / secs;
    double bytes =
        (double)(now->bytes_in + now->bytes_out - before->bytes_in - before->bytes_out) / secs;
    uint64_t errs = errors_of(now) - errors_of(before), drops = now->drops - before->drops;
    if (json)
        printf("{\"elapsed_s\": %.3f, \"interval_s\": %.3f, \"clients\": %" PRIu64
               ", \"in_per_s\": %.1f, \"out_per_s\": %.1f, \"bytes_per_s\": %.1f, \"errors\": %" PRIu64
               ", \"drops\": %" PRIu64 ", \"samples\": %" PRIu64
               ", \"p50_ns\": %.0f, \"p99_ns\": %.0f}\n",
               elapsed, secs, now->clients, in, out, bytes, errs, drops, ipc_stats_samples(&d),
               percentile_ns(&d, 0.5), percentile_ns(&d, 0.99));
    else
        printf("%8" PRIu64 " %10.0f %10.0f %12.0f %8" PRIu64 " %10.2f %10.2f\n", now->clients, in,
               out, bytes, errs, percentile_ns(&d, 0.5) / 1e3, percentile_ns(&d, 0.99) / 1e3);
    fflush(stdout);
}

static int stat_fetch_error(const ipc__cli_cmd *cmd, const stat_plan *p, int rc, bool again)
{
    const char *t = p->ep.shm ? "shm" : "socket";
    if (rc == -ENOENT)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL, "%s %s: %s", t, p->ep.name,
                              again ? "the server is gone"
                                    : "no live server (`ipc ls` lists the live ones)");
    if (rc == -EACCES)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL,
                              "%s %s: the server belongs to another user (run as that user or "
                              "root)",
                              t, p->ep.name);
    return ipc__cli_error(cmd, IPC_EXIT_FAIL, "%s %s: %s", t, p->ep.name, ipc_strerror(rc));
}

static int stat_watch(const ipc__cli_cmd *cmd, const stat_plan *p, ipc_stats *s)
{
    static ipc_stats prev;
    ipc_server_info info;
    if (!p->json)
        printf("%8s %10s %10s %12s %8s %10s %10s\n", "clients", "in/s", "out/s", "bytes/s",
               "errors", "p50 us", "p99 us");
    struct timespec ts = {.tv_sec = (time_t)(p->interval_ms / 1000),
                          .tv_nsec = (long)(p->interval_ms % 1000) * 1000000};
    uint64_t start = ipc__cli_now_ns(), last = start;
    for (uint64_t n = 0; p->count == 0 || n < p->count; n++) {
        prev = *s;
        nanosleep(&ts, NULL);
        int rc = ipc_stats_fetch(p->ep.shm ? "shm" : "socket", p->ep.name, s, &info);
        if (rc < 0)
            return stat_fetch_error(cmd, p, rc, true);
        uint64_t now = ipc__cli_now_ns();
        print_delta(s, &prev, (double)(now - last) / 1e9, (double)(now - start) / 1e9, p->json);
        last = now;
    }
    return IPC_EXIT_OK;
}

/* A bare operand: a socket path when it has a slash or names a socket
 * file (resolved like every path), else a shared-memory name. */
static int stat_operand(const ipc__cli_cmd *cmd, stat_plan *p, const char *typed)
{
    char path[PATH_MAX];
    struct stat st;
    bool sock = strchr(typed, '/') != NULL ||
                (ipc__cli_resolve(typed, path, sizeof(path)) == 0 && lstat(path, &st) == 0 &&
                 S_ISSOCK(st.st_mode));
    return ipc__cli_endpoint_set(cmd, &p->ep, !sock, typed);
}

static int stat_option(const ipc__cli_cmd *cmd, int opt, stat_plan *p)
{
    switch (opt) {
    case OPT_SOCKET:
    case OPT_SHM: return ipc__cli_endpoint_set(cmd, &p->ep, opt == OPT_SHM, optarg);
    case OPT_WATCH: p->watch = true; return IPC_EXIT_OK;
    case OPT_JSON: p->json = true; return IPC_EXIT_OK;
    case OPT_INTERVAL:
        p->interval_given = true;
        return ipc__cli_count(cmd, "interval-ms", optarg, 1, 86400000, &p->interval_ms)
                   ? IPC_EXIT_OK
                   : IPC_EXIT_USAGE;
    case OPT_COUNT:
        p->count_given = true;
        return ipc__cli_count(cmd, "count", optarg, 1, UINT32_MAX, &p->count) ? IPC_EXIT_OK
                                                                               : IPC_EXIT_USAGE;
    default: return IPC_EXIT_USAGE;
    }
}

static int stat_main(const ipc__cli_cmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, OPT_SOCKET},
        {"shm", required_argument, NULL, OPT_SHM},
        {"watch", no_argument, NULL, OPT_WATCH},
        {"interval-ms", required_argument, NULL, OPT_INTERVAL},
        {"count", required_argument, NULL, OPT_COUNT},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    stat_plan p = {.interval_ms = 1000};
    optind = 0;
    for (int opt; (opt = ipc__cli_getopt(cmd, argc, argv, opts)) != -1;) {
        if (opt == OPT_HELP)
            return ipc__cli_help(cmd);
        int rc = opt == '?' ? IPC_EXIT_USAGE : stat_option(cmd, opt, &p);
        if (rc != IPC_EXIT_OK)
            return rc;
    }
    if (optind < argc) {
        int rc = p.ep.set ? ipc__cli_error(cmd, IPC_EXIT_USAGE, "unexpected argument '%s'",
                                           argv[optind])
                          : stat_operand(cmd, &p, argv[optind++]);
        if (rc != IPC_EXIT_OK)
            return rc;
    }
    if (optind != argc)
        return ipc__cli_error(cmd, IPC_EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
    if (!p.ep.set)
        return ipc__cli_error(cmd, IPC_EXIT_USAGE, "give --socket PATH, --shm NAME or NAME");
    if (!p.watch && (p.interval_given || p.count_given))
        return ipc__cli_error(cmd, IPC_EXIT_USAGE, "--%s is for --watch",
                              p.interval_given ? "interval-ms" : "count");
    static ipc_stats s;
    ipc_server_info info;
    int rc = ipc_stats_fetch(p.ep.shm ? "shm" : "socket", p.ep.name, &s, &info);
    if (rc < 0)
        return stat_fetch_error(cmd, &p, rc, false);
    if (p.watch)
        return stat_watch(cmd, &p, &s);
    if (p.json)
        print_once_json(&s, &info);
    else
        print_once(&s, &info);
    return IPC_EXIT_OK;
}

const ipc__cli_cmd ipc__cmd_stat = {
    .name = "stat",
    .summary = "a live server's counters and latency, once or every interval",
    .help =
        "usage: ipc stat (--socket PATH | --shm NAME | NAME) [--json]\n"
        "       ipc stat (--socket PATH | --shm NAME | NAME) --watch [--interval-ms MS]\n"
        "                [--count N] [--json]\n"
        "\n"
        "Reads the counters a live server publishes, without stopping or slowing it.\n"
        "A bare NAME is a socket path when it has a '/' or names a socket file, else\n"
        "a shared-memory name. Paths resolve like everywhere: ./x.sock, a//x.sock\n"
        "and a symlinked directory name the same server.\n"
        "\n"
        "  --socket PATH     a Unix socket server\n"
        "  --shm NAME        a shared-memory server\n"
        "  --watch           a line per interval: clients, rates, errors, and that\n"
        "                    interval's p50/p99 service time\n"
        "  --interval-ms MS  1-86400000 (default 1000)\n"
        "  --count N         stop after N lines (default: until interrupted)\n"
        "  --json            one JSON object; with --watch one JSON object per line\n"
        "                    (docs/OPERATIONS.md)\n"
        "  --help            this text\n"
        "\n"
        "Exit: 0 printed, 1 no live server there (or it went away), 2 bad usage.\n"
        "\n"
        "example:\n"
        "  ipc stat /tmp/echo.sock --watch --interval-ms 500 --count 10 --json\n",
    .run = stat_main,
};
