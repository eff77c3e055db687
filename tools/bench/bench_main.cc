#include "tools/bench/bench.h"

int main(int argc, char **argv)
{
    return ipc_bench_main(argc, argv);
}
