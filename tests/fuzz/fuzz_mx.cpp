// Fuzz target: MX ordering (plugins/relay/mx.cpp), fed with the records a DNS
// answer may hold. Input: the first line is our own name, every other line
// "PREF HOST" (PREF taken modulo 65536). Invariants: the list is never
// longer than the records, holds no empty name, no final dot and no name
// twice (without case), never our own name, and comes out in order of the
// records' best preference; a null MX gives an empty list.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "plugins/relay/mx.hpp"

using namespace postern::relay;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (!out.empty() && out.back() == '.') out.pop_back();
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    size_t nl = text.find('\n');
    std::string self(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    std::vector<MxRecord> records;
    while (!text.empty() && records.size() < 64) {
        size_t end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        size_t sp = line.find(' ');
        int pref = 0;
        for (char c : line.substr(0, sp))
            if (c >= '0' && c <= '9') pref = (pref * 10 + (c - '0')) % 65536;
        records.push_back({pref, std::string(sp == std::string_view::npos ? "" : line.substr(sp + 1))});
    }
    std::mt19937 rng(42);
    bool null_mx = false;
    auto hosts = order_mx(records, self, rng, &null_mx);
    check(hosts.size() <= records.size());
    if (null_mx) check(hosts.empty());
    // The best preference of each name, as the records give it.
    std::map<std::string, int> best;
    for (const auto& r : records) {
        std::string h = lower(r.host);
        if (!best.count(h) || r.preference < best[h]) best[h] = r.preference;
    }
    std::vector<std::string> seen;
    int last = -1;
    for (const auto& h : hosts) {
        check(!h.empty() && h.back() != '.');
        std::string l = lower(h);
        check(std::find(seen.begin(), seen.end(), l) == seen.end());
        check(self.empty() || l != lower(self));
        check(best.count(l) && best[l] >= last);
        last = best[l];
        seen.push_back(l);
    }
    return 0;
}
