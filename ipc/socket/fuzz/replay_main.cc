// Runs LLVMFuzzerTestOneInput over every file in the directories (or files)
// given as arguments: the checked-in corpus and past crashes become an
// ordinary test in every build configuration, without libFuzzer.
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int RunFile(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    if (!f)
        return 0;
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    return 1;
}

int main(int argc, char **argv)
{
    int files = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "replay: %s: not found\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            files += RunFile(argv[i]);
            continue;
        }
        DIR *d = opendir(argv[i]);
        while (struct dirent *e = d ? readdir(d) : nullptr)
            if (e->d_name[0] != '.')
                files += RunFile(std::string(argv[i]) + "/" + e->d_name);
        if (d)
            closedir(d);
    }
    printf("replay: %d inputs passed\n", files);
    return files > 0 ? 0 : 1;
}
