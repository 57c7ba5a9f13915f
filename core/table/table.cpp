// Pattern matching of lookup services, and inline tables; see table.hpp.
#include "table/table.hpp"
#include "util/ascii.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <map>

namespace postern::table {

std::string lowercase(std::string_view s) { return util::lowercase(s); }

const char* service_name(Service service) {
    switch (service) {
    case Service::String: return "string";
    case Service::Domain: return "domain";
    case Service::Netaddr: return "netaddr";
    case Service::Mailaddr: return "mailaddr";
    case Service::Alias: return "alias";
    case Service::Credentials: return "credentials";
    case Service::Userinfo: return "userinfo";
    case Service::Source: return "source";
    case Service::Addrname: return "addrname";
    case Service::Mailaddrmap: return "mailaddrmap";
    case Service::Relayhost: return "relayhost";
    }
    return "?";
}

namespace {

using util::iequals;

// Glob with '*' only, case-insensitive, iterative (no recursion on hostile input).
bool glob(std::string_view p, std::string_view s) {
    size_t pi = 0, si = 0, star = std::string_view::npos, mark = 0;
    auto eq = [](char a, char b) { return util::to_lower(a) == util::to_lower(b); };
    while (si < s.size()) {
        if (pi < p.size() && p[pi] == '*') {
            star = pi++;
            mark = si;
        } else if (pi < p.size() && eq(p[pi], s[si])) {
            ++pi;
            ++si;
        } else if (star != std::string_view::npos) {
            pi = star + 1;
            si = ++mark;
        } else {
            return false;
        }
    }
    while (pi < p.size() && p[pi] == '*') ++pi;
    return pi == p.size();
}

struct Address {
    int family = 0;
    unsigned char bytes[16]{};
};

bool parse_ip(std::string_view text, Address* out) {
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
    if (text.size() > 5 && iequals(text.substr(0, 5), "ipv6:")) text.remove_prefix(5);
    std::string s(text);
    if (inet_pton(AF_INET, s.c_str(), out->bytes) == 1) {
        out->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, s.c_str(), out->bytes) == 1) {
        out->family = AF_INET6;
        return true;
    }
    return false;
}

}  // namespace

bool domain_matches(std::string_view pattern, std::string_view domain) { return glob(pattern, domain); }

bool netaddr_matches(std::string_view pattern, std::string_view address) {
    Address subject;
    if (!parse_ip(address, &subject)) return false;
    std::string_view net = pattern;
    int bits = -1;
    // The mask may follow the closing bracket ("[2001:db8::]/32") or the address.
    if (auto slash = pattern.rfind('/'); slash != std::string_view::npos) {
        net = pattern.substr(0, slash);
        std::string_view b = pattern.substr(slash + 1);
        if (b.empty() || b.size() > 3 || !std::all_of(b.begin(), b.end(), ::isdigit)) return false;
        bits = std::stoi(std::string(b));
    }
    Address entry;
    if (!parse_ip(net, &entry) || entry.family != subject.family) return false;
    int max = subject.family == AF_INET ? 32 : 128;
    if (bits < 0) bits = max;
    if (bits > max) return false;
    int full = bits / 8, rest = bits % 8;
    if (std::memcmp(entry.bytes, subject.bytes, full) != 0) return false;
    if (rest == 0) return true;
    unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
    return (entry.bytes[full] & mask) == (subject.bytes[full] & mask);
}

bool mailaddr_matches(std::string_view pattern, std::string_view address) {
    auto at = address.rfind('@');
    std::string_view user = at == std::string_view::npos ? address : address.substr(0, at);
    std::string_view domain = at == std::string_view::npos ? std::string_view{} : address.substr(at + 1);
    auto pat = pattern.rfind('@');
    if (pat == std::string_view::npos) return iequals(pattern, user);  // "user"
    std::string_view puser = pattern.substr(0, pat), pdomain = pattern.substr(pat + 1);
    if (pdomain.empty() && puser.empty()) return true;  // "@"
    if (!pdomain.empty() && !domain_matches(pdomain, domain)) return false;
    if (puser.empty()) return true;  // "@domain"
    if (iequals(puser, user)) return true;
    // "user" in the table matches "user+tag" in the address, not the other way round.
    if (puser.find('+') == std::string_view::npos) {
        auto plus = user.find('+');
        if (plus != std::string_view::npos && iequals(puser, user.substr(0, plus))) return true;
    }
    return false;
}

bool entry_matches(Service service, std::string_view entry, std::string_view subject) {
    switch (service) {
    case Service::String: return iequals(entry, subject);
    case Service::Domain: return domain_matches(entry, subject);
    case Service::Netaddr: return netaddr_matches(entry, subject);
    case Service::Mailaddr: return mailaddr_matches(entry, subject);
    default: return iequals(entry, subject);  // value services look keys up exactly
    }
}

Result Table::match(Service service, std::string_view subject, std::string* error) {
    if (!iterable()) {
        // A backend that cannot list its entries answers exact keys only
        // (one with a query per service does its own matching).
        std::string value;
        return lookup(service, lowercase(subject), &value, error);
    }
    bool found = false;
    Result r = for_each(
        [&](std::string_view key, std::string_view) {
            found = entry_matches(service, key, subject);
            return !found;  // stop at the first match
        },
        error);
    if (r == Result::TempFail) return r;
    return found ? Result::Found : Result::NotFound;
}

namespace {

class InlineTable final : public Table {
public:
    InlineTable(std::string name, std::vector<std::pair<std::string, std::string>> entries, bool is_map)
        : Table(std::move(name)) {
        for (auto& [k, v] : entries) {
            std::string key = lowercase(k);
            if (map_.emplace(key, is_map ? v : key).second) order_.push_back(key);
        }
    }
    Result lookup(Service, std::string_view key, std::string* value, std::string*) override {
        auto it = map_.find(lowercase(key));
        if (it == map_.end()) return Result::NotFound;
        *value = it->second;
        return Result::Found;
    }
    Result for_each(const std::function<bool(std::string_view, std::string_view)>& fn, std::string*) override {
        for (const auto& k : order_)  // as written: a relay's host list is tried in this order
            if (!fn(k, map_.at(k))) break;
        return Result::Found;
    }
    bool iterable() const override { return true; }
    bool reload(std::string*) override { return true; }

private:
    std::map<std::string, std::string, std::less<>> map_;
    std::vector<std::string> order_;  // keys in written order, each once
};

}  // namespace

std::unique_ptr<Table> make_inline_table(std::string name, std::vector<std::pair<std::string, std::string>> entries,
                                         bool is_map) {
    return std::make_unique<InlineTable>(std::move(name), std::move(entries), is_map);
}

}  // namespace postern::table
