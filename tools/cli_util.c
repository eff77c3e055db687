#include "tools/cli_util.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int ipc__cli_error(const ipc__cli_cmd *cmd, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ipc %s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

int ipc__cli_help(const ipc__cli_cmd *cmd)
{
    fputs(cmd->help, stdout);
    return IPC_EXIT_OK;
}

static const char *ipc__cli_opt_name(const struct option *opts, int val)
{
    for (const struct option *o = opts; o->name != NULL; o++)
        if (o->val == val)
            return o->name;
    return NULL;
}

int ipc__cli_getopt(const ipc__cli_cmd *cmd, int argc, char **argv,
                    const struct option *opts)
{
    opterr = 0; /* we name the flag ourselves */
    int opt = getopt_long(argc, argv, ":h", opts, NULL);
    if (opt == 'h') /* -h is --help */
        for (const struct option *o = opts; o->name != NULL; o++)
            if (strcmp(o->name, "help") == 0)
                return o->val;
    if (opt != '?' && opt != ':')
        return opt;
    const char *known = ipc__cli_opt_name(opts, optopt);
    const char *typed = argv[optind - 1];
    if (opt == ':')
        ipc__cli_error(cmd, IPC_EXIT_USAGE, "--%s needs a value (see ipc %s --help)",
                       known ? known : typed, cmd->name);
    else if (known != NULL && optopt != 0)
        ipc__cli_error(cmd, IPC_EXIT_USAGE, "--%s takes no value: '%s' (see ipc %s --help)",
                       known, typed, cmd->name);
    else
        ipc__cli_error(cmd, IPC_EXIT_USAGE, "unknown option '%s' (see ipc %s --help)", typed,
                       cmd->name);
    return '?';
}

/* ----------------------------------------------------------------- numbers */

/* Digits only (no sign, no space): the value and where the digits end. */
static bool ipc__cli_digits(const char *s, uint64_t *v, const char **end)
{
    if (*s < '0' || *s > '9')
        return false;
    char *e;
    errno = 0;
    unsigned long long x = strtoull(s, &e, 10);
    if (errno == ERANGE)
        x = ULLONG_MAX; /* reported as too large by the range check */
    *v = x;
    *end = e;
    return true;
}

static void ipc__cli_fmt_bytes(uint64_t v, char *buf, size_t cap)
{
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    unsigned u = 0;
    while (u < 6 && v >= 1024 && v % 1024 == 0)
        v /= 1024, u++;
    snprintf(buf, cap, "%llu %s", (unsigned long long)v, unit[u]);
}

static uint64_t ipc__cli_unit(const char *s, bool *ok)
{
    static const struct { const char *name; uint64_t mult; } units[] = {
        {"", 1},           {"B", 1},          {"K", 1ull << 10}, {"KiB", 1ull << 10},
        {"M", 1ull << 20}, {"MiB", 1ull << 20}, {"G", 1ull << 30}, {"GiB", 1ull << 30},
    };
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        const char *n = units[i].name;
        /* The letter may be lower case (64k); the rest as written. */
        if (n[0] != '\0' && (s[0] | 0x20) == (n[0] | 0x20) && strcmp(s + 1, n + 1) == 0) {
            *ok = true;
            return units[i].mult;
        }
        if (n[0] == '\0' && s[0] == '\0') {
            *ok = true;
            return 1;
        }
    }
    *ok = false;
    return 0;
}

bool ipc__cli_size(const ipc__cli_cmd *cmd, const char *flag, const char *text, uint64_t min,
                   uint64_t max, uint64_t *out)
{
    uint64_t v;
    const char *end;
    bool ok;
    char lo[32], hi[32];
    ipc__cli_fmt_bytes(min, lo, sizeof(lo));
    ipc__cli_fmt_bytes(max, hi, sizeof(hi));
    if (!ipc__cli_digits(text, &v, &end)) {
        ipc__cli_error(cmd, IPC_EXIT_USAGE,
                       "bad value for --%s: '%s' is not a size (digits, then B, K, M or G)", flag,
                       text);
        return false;
    }
    uint64_t mult = ipc__cli_unit(end, &ok);
    if (!ok) {
        ipc__cli_error(cmd, IPC_EXIT_USAGE,
                       "bad value for --%s: unknown unit '%s' in '%s' (B, K/KiB, M/MiB, G/GiB)",
                       flag, end, text);
        return false;
    }
    if (v > max / mult || v * mult > max || v * mult < min) {
        ipc__cli_error(cmd, IPC_EXIT_USAGE, "bad value for --%s: '%s' is out of range (%s to %s)",
                       flag, text, lo, hi);
        return false;
    }
    *out = v * mult;
    return true;
}

bool ipc__cli_count(const ipc__cli_cmd *cmd, const char *flag, const char *text, uint64_t min,
                    uint64_t max, uint64_t *out)
{
    uint64_t v;
    const char *end;
    if (!ipc__cli_digits(text, &v, &end) || *end != '\0') {
        ipc__cli_error(cmd, IPC_EXIT_USAGE, "bad value for --%s: '%s' is not a whole number",
                       flag, text);
        return false;
    }
    if (v < min || v > max) {
        ipc__cli_error(cmd, IPC_EXIT_USAGE,
                       "bad value for --%s: %s is out of range (%llu to %llu)", flag, text,
                       (unsigned long long)min, (unsigned long long)max);
        return false;
    }
    *out = v;
    return true;
}

/* ------------------------------------------------------------------- paths */

static int ipc__cli_join(char *out, size_t cap, const char *a, const char *b)
{
    bool slash = a[0] != '\0' && a[strlen(a) - 1] == '/';
    int n = snprintf(out, cap, "%s%s%s", a, slash ? "" : "/", b);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int ipc__cli_resolve(const char *typed, char *out, size_t cap)
{
    char full[PATH_MAX], base[PATH_MAX], dir[PATH_MAX];
    if (typed[0] == '\0')
        return -EINVAL;
    if (typed[0] == '/') {
        if (snprintf(full, sizeof(full), "%s", typed) >= (int)sizeof(full))
            return -ENAMETOOLONG;
    } else {
        /* `bazel run` starts us in the runfiles tree; the user meant the
         * directory the command was typed in. */
        const char *cwd = getenv("BUILD_WORKING_DIRECTORY");
        if (cwd == NULL || cwd[0] == '\0') {
            if (getcwd(base, sizeof(base)) == NULL)
                return -errno;
            cwd = base;
        }
        int rc = ipc__cli_join(full, sizeof(full), cwd, typed);
        if (rc < 0)
            return rc;
    }
    size_t n = strlen(full);
    while (n > 1 && full[n - 1] == '/') /* "dir/" names the directory */
        full[--n] = '\0';
    char *last = strrchr(full, '/');
    const char *name = last + 1;
    if (!strcmp(name, ".") || !strcmp(name, "..")) {
        if (realpath(full, dir) == NULL)
            return -errno;
        return snprintf(out, cap, "%s", dir) >= (int)cap ? -ENAMETOOLONG : 0;
    }
    *last = '\0';
    if (realpath(full[0] ? full : "/", dir) == NULL)
        return -errno;
    return ipc__cli_join(out, cap, dir, name);
}

int ipc__cli_socket_path(const ipc__cli_cmd *cmd, const char *typed,
                         char out[IPC__CLI_PATH_MAX + 1])
{
    char path[PATH_MAX];
    int rc = ipc__cli_resolve(typed, path, sizeof(path));
    if (rc == -ENOENT || rc == -ENOTDIR || rc == -EACCES)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL, "%s: its directory is not there (%s)", typed,
                              strerror(-rc));
    if (rc == -EINVAL)
        return ipc__cli_error(cmd, IPC_EXIT_USAGE, "the socket path is empty");
    if (rc < 0 || strlen(path) > IPC__CLI_PATH_MAX) {
        size_t len = rc < 0 ? strlen(typed) : strlen(path);
        return ipc__cli_error(cmd, IPC_EXIT_USAGE,
                              "socket path %s is %zu bytes%s, the limit is %d (the size of "
                              "sockaddr_un.sun_path); choose a shorter directory, e.g. /tmp",
                              rc < 0 ? typed : path, len,
                              rc < 0 || strcmp(path, typed) == 0 ? "" : " once resolved",
                              IPC__CLI_PATH_MAX);
    }
    memcpy(out, path, strlen(path) + 1);
    return IPC_EXIT_OK;
}

bool ipc__cli_shm_name(const ipc__cli_cmd *cmd, const char *flag, const char *name)
{
    static const char rule[] = "a shared-memory name is 1 to 64 characters from A-Z a-z 0-9 "
                               "and . _ - (no '/', no space)";
    size_t n = strlen(name);
    if (n == 0 || n > IPC__CLI_SHM_NAME_MAX) {
        ipc__cli_error(cmd, IPC_EXIT_USAGE, "--%s '%s' is %zu characters: %s", flag, name, n,
                       rule);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok) {
            ipc__cli_error(cmd, IPC_EXIT_USAGE, "--%s '%s': character %zu ('%c') is not allowed: %s",
                           flag, name, i + 1, ch, rule);
            return false;
        }
    }
    return true;
}

int ipc__cli_endpoint_set(const ipc__cli_cmd *cmd, ipc__cli_endpoint *ep, bool shm,
                          const char *value)
{
    if (ep->set)
        return ipc__cli_error(cmd, IPC_EXIT_USAGE, "give one server: --socket PATH or --shm NAME");
    if (shm) {
        if (!ipc__cli_shm_name(cmd, "shm", value))
            return IPC_EXIT_USAGE;
        snprintf(ep->name, sizeof(ep->name), "%s", value);
    } else {
        int rc = ipc__cli_socket_path(cmd, value, ep->name);
        if (rc != IPC_EXIT_OK)
            return rc;
    }
    ep->set = true;
    ep->shm = shm;
    return IPC_EXIT_OK;
}

/* ------------------------------------------------------------------- data */

/* Largest --payload/--expect file read: far above any message a default
 * server takes (1 MiB), well below the frame limit. */
#define IPC__CLI_DATA_MAX ((size_t)1 << 30)

static int ipc__cli_hex(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

static int ipc__cli_unhex(const ipc__cli_cmd *cmd, const char *flag, const char *hex,
                          uint8_t *out, size_t *len)
{
    size_t n = strlen(hex);
    if (n % 2 != 0)
        return ipc__cli_error(cmd, IPC_EXIT_USAGE,
                              "bad value for --%s: hex:%s has an odd number of digits", flag, hex);
    for (size_t i = 0; i < n; i += 2) {
        int hi = ipc__cli_hex(hex[i]), lo = ipc__cli_hex(hex[i + 1]);
        if (hi < 0 || lo < 0)
            return ipc__cli_error(cmd, IPC_EXIT_USAGE,
                                  "bad value for --%s: '%c' at position %zu of hex:%s is not a "
                                  "hex digit (0-9, a-f)",
                                  flag, hi < 0 ? hex[i] : hex[i + 1], hi < 0 ? i + 1 : i + 2, hex);
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    *len = n / 2;
    return IPC_EXIT_OK;
}

static int ipc__cli_slurp(const ipc__cli_cmd *cmd, const char *flag, const char *typed,
                          uint8_t **buf, size_t *len)
{
    char path[PATH_MAX];
    int rc = ipc__cli_resolve(typed, path, sizeof(path));
    FILE *f = rc == 0 ? fopen(path, "rb") : NULL;
    if (f == NULL)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL, "--%s @%s: %s", flag, typed,
                              strerror(rc < 0 ? -rc : errno));
    size_t cap = 4096, n = 0;
    uint8_t *b = malloc(cap);
    while (b != NULL) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap || cap >= IPC__CLI_DATA_MAX)
            break;
        uint8_t *bigger = realloc(b, cap * 2);
        if (bigger == NULL)
            free(b);
        b = bigger;
        cap *= 2;
    }
    bool bad = ferror(f) != 0, big = b != NULL && n == cap && fgetc(f) != EOF;
    fclose(f);
    if (b == NULL || bad || big) {
        free(b);
        if (big)
            return ipc__cli_error(cmd, IPC_EXIT_USAGE, "--%s @%s: the file is over 1 GiB", flag,
                                  typed);
        return ipc__cli_error(cmd, IPC_EXIT_FAIL, "--%s @%s: %s", flag, typed,
                              bad ? "read error" : "out of memory");
    }
    *buf = b;
    *len = n;
    return IPC_EXIT_OK;
}

int ipc__cli_data(const ipc__cli_cmd *cmd, const char *flag, const char *text, uint8_t **buf,
                  size_t *len)
{
    if (text[0] == '@')
        return ipc__cli_slurp(cmd, flag, text + 1, buf, len);
    bool hex = strncmp(text, "hex:", 4) == 0;
    if (hex || strncmp(text, "text:", 5) == 0)
        text += hex ? 4 : 5;
    size_t n = strlen(text);
    uint8_t *b = malloc(n + 1);
    if (b == NULL)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL, "out of memory");
    int rc = IPC_EXIT_OK;
    if (hex)
        rc = ipc__cli_unhex(cmd, flag, text, b, len);
    else
        memcpy(b, text, n), *len = n;
    if (rc != IPC_EXIT_OK) {
        free(b);
        return rc;
    }
    *buf = b;
    return IPC_EXIT_OK;
}

/* -------------------------------------------------------------------- misc */

void ipc__cli_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

void ipc__cli_text_str(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\\')
            fputs("\\\\", f);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
}

const char *ipc__cli_owner(uint32_t uid, char *buf, size_t cap)
{
    struct passwd *pw = getpwuid(uid);
    if (pw != NULL)
        snprintf(buf, cap, "%s", pw->pw_name);
    else
        snprintf(buf, cap, "%u", uid);
    return buf;
}

uint64_t ipc__cli_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
