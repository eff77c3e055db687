/* Argument parsing shared by the C helpers the Go tests drive. */
#ifndef IPC_STRESS_GO_C_ARGS_H
#define IPC_STRESS_GO_C_ARGS_H

#include <errno.h>
#include <stdlib.h>

/* A whole decimal number: 0, or -EINVAL for junk, a sign or an overflow. */
static inline int parse_number(const char *s, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
        return -EINVAL;
    *out = v;
    return 0;
}

#endif /* IPC_STRESS_GO_C_ARGS_H */
