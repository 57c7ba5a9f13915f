// bench_table_lookup: how fast one table backend answers lookups, through
// the table plugin C ABI (core/include/postern/table.h) exactly as the
// daemon calls it, for the table benchmark (tests/bench/tables.sh, issue 13).
// Benchmark figures, not a test; not installed.
//
//   bench_table_lookup --plugin DIR/table-NAME.so --config CONFIG --keys FILE
//                      [--service alias|userinfo|none] [--lookups N]
//                      [--threads 1,2] [--missing PERCENT] [--label TEXT]
//                      [--seed S]
//
// FILE holds the table's keys, one a line (the table must have each of
// them). The program loads the plugin (dlopen, with the daemon's own checks,
// util/plugin.hpp), times open() and the first lookup apart (a proc table
// starts its program there), then for each thread count runs N lookups in
// all, split evenly over the threads, of keys drawn at random from FILE,
// with PERCENT of them (default 10) replaced by keys the table lacks (a key
// of FILE with "-missing" appended). Keys are drawn before the clock starts;
// each lookup is timed on its own (steady_clock, ~25 ns per reading).
//
// --service names the POSTERN_SERVICE_* passed to lookup_service (what
// `virtual <t>` asks is alias, `userbase <t>` userinfo); a plugin without
// lookup_service (file, db) gets the plain lookup, as the core does.
//
// Output, one pair of lines per thread count: a readable line, then
// "RESULT {json}" with label, entries, lookups, threads, open_ms, first_ms,
// lookups_per_s, p50_us, p99_us, max_us, found, missing, errors. A lookup
// whose answer is wrong (an existing key not found, a missing one found, a
// temporary failure) counts as an error; the exit status is 1 if any did.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "postern/table.h"
#include "util/plugin.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
    std::string plugin;  // DIR/table-NAME.so
    std::string config;  // what follows "NAME:" in smtpd.conf
    std::string keys;    // file of existing keys
    std::string label;
    uint32_t service = POSTERN_SERVICE_ALIAS;
    bool plain = false;  // --service none: always the plain lookup
    uint64_t lookups = 100000;
    std::vector<unsigned> threads{1, 2};
    unsigned missing_pct = 10;
    uint64_t seed = 13;
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "bench_table_lookup: %s\n"
                 "usage: bench_table_lookup --plugin DIR/table-NAME.so --config CONFIG --keys FILE\n"
                 "       [--service alias|userinfo|none] [--lookups N] [--threads 1,2] [--missing PERCENT]\n"
                 "       [--label TEXT] [--seed S]\n",
                 why);
    std::exit(2);
}

uint64_t number(std::string_view flag, const char* text) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(text, &end, 10);
    if (end == text || *end != '\0') usage((std::string(flag) + ": not a number").c_str());
    return v;
}

std::vector<unsigned> thread_list(const char* text) {
    std::vector<unsigned> out;
    std::string_view rest(text);
    while (!rest.empty()) {
        auto comma = rest.find(',');
        std::string one(rest.substr(0, comma));
        auto n = number("--threads", one.c_str());
        if (n == 0 || n > 64) usage("--threads: 1 to 64 each");
        out.push_back(static_cast<unsigned>(n));
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
    if (out.empty()) usage("--threads: empty");
    return out;
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; i += 2) {
        std::string_view flag(argv[i]);
        if (i + 1 >= argc) usage("every option takes a value");
        const char* v = argv[i + 1];
        if (flag == "--plugin") o.plugin = v;
        else if (flag == "--config") o.config = v;
        else if (flag == "--keys") o.keys = v;
        else if (flag == "--label") o.label = v;
        else if (flag == "--lookups") o.lookups = number(flag, v);
        else if (flag == "--threads") o.threads = thread_list(v);
        else if (flag == "--missing") o.missing_pct = static_cast<unsigned>(std::min<uint64_t>(100, number(flag, v)));
        else if (flag == "--seed") o.seed = number(flag, v);
        else if (flag == "--service") {
            std::string_view s(v);
            if (s == "alias") o.service = POSTERN_SERVICE_ALIAS;
            else if (s == "userinfo") o.service = POSTERN_SERVICE_USERINFO;
            else if (s == "none") o.plain = true;
            else usage("--service: alias, userinfo or none");
        } else usage(("unknown option " + std::string(flag)).c_str());
    }
    if (o.plugin.empty() || o.keys.empty()) usage("--plugin and --keys are required");
    if (o.lookups == 0) usage("--lookups: at least 1");
    return o;
}

// DIR/table-NAME.so -> (DIR, NAME), the loader's terms.
bool split_plugin_path(const std::string& path, std::string* dir, std::string* name) {
    auto slash = path.rfind('/');
    std::string file = slash == std::string::npos ? path : path.substr(slash + 1);
    *dir = slash == std::string::npos ? "." : path.substr(0, slash);
    constexpr std::string_view prefix = "table-", suffix = ".so";
    if (file.size() <= prefix.size() + suffix.size() || file.compare(0, prefix.size(), prefix) != 0 ||
        file.compare(file.size() - suffix.size(), suffix.size(), suffix) != 0)
        return false;
    *name = file.substr(prefix.size(), file.size() - prefix.size() - suffix.size());
    return true;
}

std::vector<std::string> read_keys(const std::string& path) {
    std::ifstream in(path);
    if (!in) usage(("cannot read " + path).c_str());
    std::vector<std::string> keys;
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) keys.push_back(std::move(line));
    if (keys.empty()) usage(("no keys in " + path).c_str());
    return keys;
}

// An open table handle, closed on destruction (before the plugin unloads).
class Handle {
public:
    Handle(const postern_table_plugin& api, const std::string& config) : api_(api) {
        char err[512] = "";
        status_ = api_.open(config.c_str(), &handle_, &flags_, err, sizeof err);
        error_ = err;
    }
    ~Handle() {
        if (status_ == POSTERN_OK) api_.close(handle_);
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    bool ok() const { return status_ == POSTERN_OK; }
    const std::string& error() const { return error_; }
    void* get() const { return handle_; }

private:
    const postern_table_plugin& api_;
    void* handle_ = nullptr;
    uint32_t flags_ = 0;
    int status_ = POSTERN_TEMPFAIL;
    std::string error_;
};

// One lookup as the core makes it: the service's own entry if the plugin
// has one, else the plain lookup. Returns the POSTERN_* status.
class Looker {
public:
    Looker(const postern::util::TablePlugin& plugin, void* handle, const Options& o)
        : api_(plugin.api()), service_fn_(o.plain ? nullptr : postern::util::lookup_service_of(plugin)),
          handle_(handle), service_(o.service) {}

    // *why gets the reason of the first temporary failure it sees.
    int operator()(const std::string& key, std::string* why) const {
        char err[256] = "";
        size_t got = 0;  // value bytes, so the callback's work is not optimised away
        auto cb = [](void* ctx, const char* v) { *static_cast<size_t*>(ctx) += std::string_view(v).size() + 1; };
        int rc = service_fn_ ? service_fn_(handle_, service_, key.c_str(), cb, &got, err, sizeof err)
                             : api_.lookup(handle_, key.c_str(), cb, &got, err, sizeof err);
        if (rc == POSTERN_OK && got == 0) {  // found without a value: wrong
            if (why->empty()) *why = "found with an empty value";
            return POSTERN_TEMPFAIL;
        }
        if (rc == POSTERN_TEMPFAIL && why->empty()) *why = err;
        return rc;
    }

private:
    const postern_table_plugin& api_;
    decltype(postern_table_plugin::lookup_service) service_fn_;
    void* handle_;
    uint32_t service_;
};

struct Probe {
    std::string key;
    bool exists;
};

struct ThreadResult {
    std::vector<uint32_t> ns;  // one latency per lookup
    uint64_t found = 0, missing = 0, errors = 0;
    std::string first_error;
};

std::vector<Probe> draw(const std::vector<std::string>& keys, uint64_t n, unsigned missing_pct, std::mt19937_64& rng) {
    std::uniform_int_distribution<size_t> pick(0, keys.size() - 1);
    std::uniform_int_distribution<unsigned> pct(0, 99);
    std::vector<Probe> out;
    out.reserve(n);
    for (uint64_t i = 0; i < n; ++i) {
        const std::string& k = keys[pick(rng)];
        bool miss = pct(rng) < missing_pct;
        out.push_back({miss ? k + "-missing" : k, !miss});
    }
    return out;
}

void run_thread(const Looker& look, const std::vector<Probe>& probes, ThreadResult* r) {
    r->ns.reserve(probes.size());
    for (const auto& p : probes) {
        auto t0 = Clock::now();
        int rc = look(p.key, &r->first_error);
        auto t1 = Clock::now();
        r->ns.push_back(static_cast<uint32_t>(
            std::min<int64_t>(UINT32_MAX, std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count())));
        if (rc == POSTERN_OK && p.exists) ++r->found;
        else if (rc == POSTERN_NOTFOUND && !p.exists) ++r->missing;
        else ++r->errors;
    }
}

double percentile_us(std::vector<uint32_t>& ns, double q) {
    size_t i = std::min(ns.size() - 1, static_cast<size_t>(q * static_cast<double>(ns.size())));
    std::nth_element(ns.begin(), ns.begin() + static_cast<std::ptrdiff_t>(i), ns.end());
    return ns[i] / 1000.0;
}

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// JSON string content: the label and error texts are ours or a plugin's
// message; escape what JSON requires.
std::string json_text(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\', out += c;
        else if (static_cast<unsigned char>(c) < 0x20) out += ' ';
        else out += c;
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse(argc, argv);
    std::string dir, name, error;
    if (!split_plugin_path(o.plugin, &dir, &name)) usage("--plugin: must name DIR/table-NAME.so");
    if (o.label.empty()) o.label = name;
    auto plugin = postern::util::load_table_plugin(dir, name, &error);
    if (!plugin) {
        std::fprintf(stderr, "bench_table_lookup: %s\n", error.c_str());
        return 1;
    }
    auto keys = read_keys(o.keys);
    std::mt19937_64 rng(o.seed);

    auto t_open = Clock::now();
    Handle handle(plugin->api(), o.config);
    double open_ms = ms_since(t_open);
    if (!handle.ok()) {
        std::fprintf(stderr, "bench_table_lookup: %s: open %s: %s\n", o.label.c_str(), o.config.c_str(),
                     handle.error().c_str());
        return 1;
    }
    Looker look(*plugin, handle.get(), o);
    auto t_first = Clock::now();
    std::string why;
    int first_rc = look(keys.front(), &why);  // a proc table starts its program here
    double first_ms = ms_since(t_first);
    if (first_rc != POSTERN_OK) {
        std::fprintf(stderr, "bench_table_lookup: %s: first lookup of %s: %s\n", o.label.c_str(), keys.front().c_str(),
                     first_rc == POSTERN_NOTFOUND ? "not found" : why.c_str());
        return 1;
    }

    bool any_error = false;
    for (unsigned nthreads : o.threads) {
        std::vector<std::vector<Probe>> probes;
        for (unsigned t = 0; t < nthreads; ++t)
            probes.push_back(draw(keys, o.lookups / nthreads + (t < o.lookups % nthreads), o.missing_pct, rng));
        std::vector<ThreadResult> results(nthreads);
        std::vector<std::thread> workers;
        auto t0 = Clock::now();
        for (unsigned t = 0; t < nthreads; ++t)
            workers.emplace_back(run_thread, std::cref(look), std::cref(probes[t]), &results[t]);
        for (auto& w : workers) w.join();
        double wall_s = std::chrono::duration<double>(Clock::now() - t0).count();

        ThreadResult all;
        for (auto& r : results) {
            all.ns.insert(all.ns.end(), r.ns.begin(), r.ns.end());
            all.found += r.found, all.missing += r.missing, all.errors += r.errors;
            if (all.first_error.empty()) all.first_error = r.first_error;
        }
        double rate = static_cast<double>(all.ns.size()) / wall_s;
        double p50 = percentile_us(all.ns, 0.50), p99 = percentile_us(all.ns, 0.99);
        double max_us = *std::max_element(all.ns.begin(), all.ns.end()) / 1000.0;
        any_error = any_error || all.errors > 0;

        std::printf("%-14s entries %zu  lookups %zu  threads %u  open %.1f ms  first %.1f ms  %.0f lookups/s  "
                    "p50 %.2f us  p99 %.2f us  max %.0f us  found %" PRIu64 " missing %" PRIu64 " errors %" PRIu64
                    "%s%s\n",
                    o.label.c_str(), keys.size(), all.ns.size(), nthreads, open_ms, first_ms, rate, p50, p99, max_us,
                    all.found, all.missing, all.errors, all.errors ? ": " : "", all.first_error.c_str());
        std::printf("RESULT {\"label\": \"%s\", \"plugin\": \"%s\", \"entries\": %zu, \"lookups\": %zu, "
                    "\"threads\": %u, \"open_ms\": %.2f, \"first_ms\": %.2f, \"lookups_per_s\": %.0f, "
                    "\"p50_us\": %.2f, \"p99_us\": %.2f, \"max_us\": %.1f, \"found\": %" PRIu64
                    ", \"missing\": %" PRIu64 ", \"errors\": %" PRIu64 ", \"first_error\": \"%s\"}\n",
                    json_text(o.label).c_str(), name.c_str(), keys.size(), all.ns.size(), nthreads, open_ms, first_ms,
                    rate, p50, p99, max_us, all.found, all.missing, all.errors, json_text(all.first_error).c_str());
        std::fflush(stdout);
    }
    return any_error ? 1 : 0;
}
