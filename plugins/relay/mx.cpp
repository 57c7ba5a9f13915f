// MX ordering (see mx.hpp for the rules and why each one exists).

#include "mx.hpp"
#include "postern/support/ascii.hpp"

#include <algorithm>
#include <optional>

namespace postern::relay {
namespace {

std::string_view without_root(std::string_view host) {
    if (!host.empty() && host.back() == '.') host.remove_suffix(1);
    return host;
}

// DNS names compare without case (RFC 4343) and without the root dot.
bool same_host(std::string_view a, std::string_view b) { return util::iequals(without_root(a), without_root(b)); }

bool is_root(std::string_view host) { return without_root(host).empty(); }

// A name no exchanger can have: empty labels ("..", a leading dot) after the
// root dot is dropped. Only a broken zone serves one; it is skipped.
bool malformed(std::string_view host) {
    std::string_view name = without_root(host);
    return !name.empty() && (name.front() == '.' || name.back() == '.' || name.find("..") != std::string_view::npos);
}

// The best preference at which `self` is listed, if it is.
std::optional<int> own_preference(const std::vector<MxRecord>& records, std::string_view self) {
    std::optional<int> best;
    if (is_root(self)) return best;
    for (const auto& r : records)
        if (same_host(r.host, self) && (!best || r.preference < *best)) best = r.preference;
    return best;
}

// Shuffles each run of equal preference in a list sorted by preference.
void shuffle_equals(std::vector<MxRecord>& records, std::mt19937& rng) {
    auto begin = records.begin();
    while (begin != records.end()) {
        int pref = begin->preference;
        auto end = std::find_if(begin, records.end(), [pref](const MxRecord& r) { return r.preference != pref; });
        std::shuffle(begin, end, rng);
        begin = end;
    }
}

}  // namespace

std::vector<std::string> order_mx(std::vector<MxRecord> records, std::string_view self_name, std::mt19937& rng,
                                  bool* null_mx) {
    bool is_null = records.size() == 1 && records.front().preference == 0 && is_root(records.front().host);
    if (null_mx) *null_mx = is_null;
    if (is_null) return {};

    std::erase_if(records, [](const MxRecord& r) { return is_root(r.host) || malformed(r.host); });
    if (auto own = own_preference(records, self_name))
        std::erase_if(records, [&](const MxRecord& r) { return r.preference >= *own; });

    // Stable, so that a duplicate's first (best-preference) entry is the one kept.
    std::stable_sort(records.begin(), records.end(),
                     [](const MxRecord& a, const MxRecord& b) { return a.preference < b.preference; });
    std::vector<MxRecord> unique;
    for (auto& r : records) {
        bool seen = std::any_of(unique.begin(), unique.end(),
                                [&](const MxRecord& u) { return same_host(u.host, r.host); });
        if (!seen) unique.push_back({r.preference, std::string(without_root(r.host))});
    }
    shuffle_equals(unique, rng);

    std::vector<std::string> out;
    out.reserve(unique.size());
    for (auto& r : unique) out.push_back(std::move(r.host));
    return out;
}

}  // namespace postern::relay
