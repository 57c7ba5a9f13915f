// The driver used when the fuzz targets are built without libFuzzer: runs
// LLVMFuzzerTestOneInput over every file of the corpus folder given as
// argv[1], so CTest replays the seeds (and any saved crash) on every build.
// A missing or empty folder is an error: a replay of nothing proves nothing.

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace fs = std::filesystem;

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s CORPUS_FOLDER\n", argv[0]);
        return 2;
    }
    std::error_code ec;
    fs::directory_iterator it(argv[1], ec);
    if (ec) {
        std::fprintf(stderr, "%s: %s\n", argv[1], ec.message().c_str());
        return 1;
    }
    std::size_t count = 0;
    for (const auto& entry : it) {
        if (!entry.is_regular_file()) continue;
        std::ifstream file(entry.path(), std::ios::binary);
        if (!file) {
            std::fprintf(stderr, "%s: cannot read\n", entry.path().c_str());
            return 1;
        }
        std::vector<uint8_t> input{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
        LLVMFuzzerTestOneInput(input.data(), input.size());
        ++count;
    }
    if (count == 0) {
        std::fprintf(stderr, "%s: no corpus files\n", argv[1]);
        return 1;
    }
    std::printf("%zu inputs replayed from %s\n", count, argv[1]);
    return 0;
}
