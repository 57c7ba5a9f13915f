// bench_compress: zstd beside zlib on mail, for `queue compression` (issue 16).
//
//   bench_compress [FILE...]
//
// For each sample (the files given, else generated ones: a 1 KiB and a
// 30 KiB text message, and a 1 MiB message with a base64 attachment of
// random bytes), each compressor at the levels a queue would use: the
// compressed size as a share of the original, and CPU microseconds per
// message to compress and to decompress (the best of 5 rounds of enough
// repetitions to take 0.2 s), from clock_gettime(CLOCK_PROCESS_CPUTIME_ID).
#include <zlib.h>
#include <zstd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

double cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// CPU µs per call of `f`, the best of 5 rounds.
double micros(const std::function<void()>& f) {
    double best = 1e18;
    for (int round = 0; round < 5; ++round) {
        int n = 0;
        double start = cpu_seconds(), now = start;
        while (now - start < 0.04) {
            f();
            ++n;
            now = cpu_seconds();
        }
        best = std::min(best, (now - start) * 1e6 / n);
    }
    return best;
}

std::string text_message(std::size_t size, unsigned seed) {
    static const char* words[] = {"the",      "queue",   "message", "delivery", "server",
                                  "mail",     "report",  "please",  "attached", "meeting",
                                  "tomorrow", "regards", "thanks",  "project",  "update"};
    std::mt19937 rng(seed);
    std::string m = "Received: from client.example.org (client.example.org [192.0.2.10])\n"
                    "\tby mx.example.net (postern) with ESMTPS id 5d1060c1\n"
                    "From: Alice <alice@example.org>\nTo: Bob <bob@example.net>\nSubject: project update\n"
                    "Date: Mon, 7 Dec 2026 22:00:00 +0000\nMessage-ID: <a1b2c3@example.org>\n\n";
    while (m.size() < size) {
        for (int i = 0; i < 12; ++i) m += std::string(words[rng() % 15]) + " ";
        m += "\n";
    }
    m.resize(size);
    return m;
}

std::string with_attachment(std::size_t size) {
    std::string m = text_message(2048, 7) + "\n--b\nContent-Transfer-Encoding: base64\n\n";
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::mt19937 rng(9);
    while (m.size() < size) {
        for (int i = 0; i < 76; ++i) m += b64[rng() % 64];
        m += "\n";
    }
    m.resize(size);
    return m;
}

void row(const char* name, const std::string& in, const std::function<std::string(const std::string&)>& pack,
         const std::function<std::string(const std::string&, std::size_t)>& unpack) {
    std::string packed = pack(in);
    if (unpack(packed, in.size()) != in) std::printf("  %-14s ROUND TRIP FAILED\n", name);
    double c = micros([&] { pack(in); });
    double d = micros([&] { unpack(packed, in.size()); });
    std::printf("  %-14s %6.1f%%   compress %9.1f us (%7.1f MB/s)   decompress %8.1f us\n", name,
                100.0 * static_cast<double>(packed.size()) / static_cast<double>(in.size()), c,
                static_cast<double>(in.size()) / c, d);
}

std::string zstd_pack(const std::string& in, int level) {
    std::string out(ZSTD_compressBound(in.size()), '\0');
    out.resize(ZSTD_compress(out.data(), out.size(), in.data(), in.size(), level));
    return out;
}

std::string zstd_unpack(const std::string& in, std::size_t size) {
    std::string out(size, '\0');
    out.resize(ZSTD_decompress(out.data(), out.size(), in.data(), in.size()));
    return out;
}

std::string zlib_pack(const std::string& in, int level) {
    uLongf n = compressBound(in.size());
    std::string out(n, '\0');
    compress2(reinterpret_cast<Bytef*>(out.data()), &n, reinterpret_cast<const Bytef*>(in.data()), in.size(), level);
    out.resize(n);
    return out;
}

std::string zlib_unpack(const std::string& in, std::size_t size) {
    uLongf n = size;
    std::string out(size, '\0');
    uncompress(reinterpret_cast<Bytef*>(out.data()), &n, reinterpret_cast<const Bytef*>(in.data()), in.size());
    out.resize(n);
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::pair<std::string, std::string>> samples;
    for (int i = 1; i < argc; ++i) {
        std::ifstream f(argv[i], std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        samples.emplace_back(argv[i], ss.str());
    }
    if (samples.empty())
        samples = {{"text 1 KiB", text_message(1024, 1)},
                   {"text 30 KiB", text_message(30 * 1024, 2)},
                   {"base64 attachment 1 MiB", with_attachment(1 << 20)}};
    for (const auto& [name, in] : samples) {
        std::printf("%s (%zu bytes): size after, CPU per message\n", name.c_str(), in.size());
        for (int level : {1, 3})
            row(("zstd -" + std::to_string(level)).c_str(), in,
                [=](const std::string& s) { return zstd_pack(s, level); }, zstd_unpack);
        for (int level : {1, 6})
            row(("zlib -" + std::to_string(level)).c_str(), in,
                [=](const std::string& s) { return zlib_pack(s, level); }, zlib_unpack);
    }
}
