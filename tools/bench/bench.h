/*
 * ipc benchmark: round-trip latency (hot and cold), pipelined throughput,
 * CPU per message and idle CPU of our transports, against the raw limits
 * (Unix socket, spinning and futex shared memory) and peers (nng, ZeroMQ).
 * `ipc_bench --help` lists the options.
 */
#ifndef TOOLS_BENCH_BENCH_H
#define TOOLS_BENCH_BENCH_H

#ifdef __cplusplus
extern "C" {
#endif

/* Runs the benchmark with command-line arguments (argv[0] is the program
 * name). 0 on success, 1 when a measurement or an output failed, 2 for bad
 * usage. Performance is reported, never judged: missed targets still give 0. */
int ipc_bench_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif /* TOOLS_BENCH_BENCH_H */
