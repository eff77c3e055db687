/*
 * Operator commands: ls, stat, clean. Live servers are found through the
 * abstract "ipc-stats/..." names in /proc/net/unix (they vanish with their
 * process); stale leftovers are socket files nobody serves.
 */
#include "tools/ipc_admin.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc.h"

#define EXIT_USAGE 2

static const char *owner_name(uint32_t uid, char *buf, size_t cap)
{
    struct passwd *pw = getpwuid(uid);
    if (pw != NULL)
        snprintf(buf, cap, "%s", pw->pw_name);
    else
        snprintf(buf, cap, "%u", uid);
    return buf;
}

/* ---------------------------------------------------------------------- ls */

static void ls_print_live(void *arg, int err, const ipc_server_info *info,
                          const ipc_stats *s)
{
    (void)arg;
    char owner[64];
    if (err < 0) {
        printf("%-9s %-7s %-10s %8s %10s  (%s)\n", "?", "?", "?", "?", "?", ipc_strerror(err));
        return;
    }
    printf("%-9s %-7d %-10s %8" PRIu64 " %10" PRIu64 "  %s\n", info->transport, info->pid,
           owner_name(info->uid, owner, sizeof(owner)), s->clients, s->messages_in, info->name);
}

/* Socket files under dir (one level of subdirectories) that nobody serves. */
static int ls_leftovers(const char *dir, int depth, bool remove)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth > 0) {
            n += ls_leftovers(path, depth - 1, remove);
            continue;
        }
        if (!S_ISSOCK(st.st_mode) || st.st_uid != getuid() ||
            ipc_socket_path_state(path) != IPC_PATH_STALE)
            continue;
        char owner[64];
        if (remove) {
            int rc = ipc_socket_path_clean(path);
            printf("%s %s%s%s\n", rc == 0 ? "removed" : "kept", path, rc == 0 ? "" : ": ",
                   rc == 0 ? "" : ipc_strerror(rc));
        } else {
            printf("%-9s %-7s %-10s %8s %10s  %s (stale)\n", "socket", "-",
                   owner_name(st.st_uid, owner, sizeof(owner)), "-", "-", path);
        }
        n++;
    }
    closedir(d);
    return n;
}

static const char *default_dirs[] = {"/tmp", NULL};

int ipc_cmd_ls(int argc, char **argv)
{
    printf("%-9s %-7s %-10s %8s %10s  %s\n", "TRANSPORT", "PID", "OWNER", "CLIENTS",
           "MESSAGES", "NAME");
    int rc = ipc_stats_list(ls_print_live, NULL);
    if (rc < 0) {
        fprintf(stderr, "ipc: listing servers: %s\n", ipc_strerror(rc));
        return EXIT_FAILURE;
    }
    if (argc > 2) {
        for (int i = 2; i < argc; i++)
            ls_leftovers(argv[i], 1, false);
    } else {
        for (const char **d = default_dirs; *d != NULL; d++)
            ls_leftovers(*d, 1, false);
    }
    return EXIT_SUCCESS;
}

/* ------------------------------------------------------------------- clean */

int ipc_cmd_clean(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: ipc clean PATH|DIR...\n");
        return EXIT_USAGE;
    }
    int failed = 0;
    for (int i = 2; i < argc; i++) {
        struct stat st;
        if (lstat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            ls_leftovers(argv[i], 1, true);
            continue;
        }
        int rc = ipc_socket_path_clean(argv[i]);
        if (rc == 0) {
            printf("removed %s\n", argv[i]);
            continue;
        }
        failed++;
        if (rc == -EADDRINUSE)
            fprintf(stderr, "ipc: %s: a live server is there; left alone\n", argv[i]);
        else
            fprintf(stderr, "ipc: %s: %s\n", argv[i], ipc_strerror(rc));
    }
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* -------------------------------------------------------------------- stat */

static void print_once(const ipc_stats *s, const ipc_server_info *info)
{
    char owner[64];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double up = ((double)now.tv_sec * 1e9 + (double)now.tv_nsec - (double)info->started_ns) / 1e9;
    printf("server    %s %s  pid %d  owner %s  up %.1f s\n", info->transport, info->name,
           info->pid, owner_name(info->uid, owner, sizeof(owner)), up);
    printf("clients   %" PRIu64 " now, %" PRIu64 " accepted, %" PRIu64 " reclaimed, %" PRIu64
           " dropped\n",
           s->clients, s->connects, s->reclaims, s->drops);
    printf("messages  %" PRIu64 " in, %" PRIu64 " out; bytes %" PRIu64 " in, %" PRIu64 " out\n",
           s->messages_in, s->messages_out, s->bytes_in, s->bytes_out);
    printf("errors    %" PRIu64 " timeouts, %" PRIu64 " oversize, %" PRIu64 " resets, %" PRIu64
           " other\n",
           s->timeouts, s->oversize, s->resets, s->other_errors);
    printf("service   p50 %.2f us, p99 %.2f us, p99.9 %.2f us (%" PRIu64 " samples)\n",
           (double)ipc_stats_percentile(s, 0.5) / 1e3, (double)ipc_stats_percentile(s, 0.99) / 1e3,
           (double)ipc_stats_percentile(s, 0.999) / 1e3, ipc_stats_samples(s));
}

/* One line of --watch: what changed since the previous snapshot. */
static void print_delta(const ipc_stats *now, const ipc_stats *before, double secs)
{
    static ipc_stats d;
    d = *now;
    for (unsigned i = 0; i < IPC_HISTOGRAM_BUCKETS; i++)
        d.latency[i] -= before->latency[i];
    uint64_t errs = now->timeouts + now->oversize + now->resets + now->other_errors -
                    (before->timeouts + before->oversize + before->resets + before->other_errors);
    printf("%8" PRIu64 " %10.0f %10.0f %12.0f %8" PRIu64 " %10.2f %10.2f\n", now->clients,
           (double)(now->messages_in - before->messages_in) / secs,
           (double)(now->messages_out - before->messages_out) / secs,
           (double)(now->bytes_in + now->bytes_out - before->bytes_in - before->bytes_out) / secs,
           errs, (double)ipc_stats_percentile(&d, 0.5) / 1e3,
           (double)ipc_stats_percentile(&d, 0.99) / 1e3);
    fflush(stdout);
}

int ipc_cmd_stat(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'}, {"shm", required_argument, NULL, 'm'},
        {"watch", no_argument, NULL, 'w'},        {"interval-ms", required_argument, NULL, 'i'},
        {"count", required_argument, NULL, 'c'},  {NULL, 0, NULL, 0},
    };
    const char *transport = NULL, *name = NULL;
    bool watch = false;
    long interval_ms = 1000, count = -1;
    int opt;
    optind = 2;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 's': transport = "socket", name = optarg; break;
        case 'm': transport = "shm", name = optarg; break;
        case 'w': watch = true; break;
        case 'i': interval_ms = strtol(optarg, NULL, 10); break;
        case 'c': count = strtol(optarg, NULL, 10); break;
        default: return EXIT_USAGE;
        }
    }
    if (optind == argc - 1 && name == NULL) {
        /* A bare NAME: a path if it has a slash or names a socket file. */
        name = argv[optind++];
        struct stat st;
        transport = strchr(name, '/') || (lstat(name, &st) == 0 && S_ISSOCK(st.st_mode))
                        ? "socket"
                        : "shm";
    }
    if (name == NULL || optind != argc || interval_ms <= 0) {
        fprintf(stderr, "usage: ipc stat (--socket PATH | --shm NAME | NAME) [--watch] "
                        "[--interval-ms MS] [--count N]\n");
        return EXIT_USAGE;
    }
    static ipc_stats s, prev;
    ipc_server_info info;
    int rc = ipc_stats_fetch(transport, name, &s, &info);
    if (rc < 0) {
        fprintf(stderr, "ipc: %s %s: %s\n", transport, name,
                rc == -ENOENT ? "no live server" : ipc_strerror(rc));
        return EXIT_FAILURE;
    }
    if (!watch) {
        print_once(&s, &info);
        return EXIT_SUCCESS;
    }
    printf("%8s %10s %10s %12s %8s %10s %10s\n", "clients", "in/s", "out/s", "bytes/s",
           "errors", "p50 us", "p99 us");
    struct timespec ts = {.tv_sec = interval_ms / 1000, .tv_nsec = (interval_ms % 1000) * 1000000};
    for (long n = 0; count < 0 || n < count; n++) {
        prev = s;
        nanosleep(&ts, NULL);
        rc = ipc_stats_fetch(transport, name, &s, &info);
        if (rc < 0) {
            fprintf(stderr, "ipc: %s %s: %s\n", transport, name,
                    rc == -ENOENT ? "server gone" : ipc_strerror(rc));
            return EXIT_FAILURE;
        }
        print_delta(&s, &prev, (double)interval_ms / 1000.0);
    }
    return EXIT_SUCCESS;
}
