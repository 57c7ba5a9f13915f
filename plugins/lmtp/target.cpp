// plugins/lmtp/target.cpp — see target.hpp.
#include "target.hpp"

#include <charconv>
#include <set>

namespace postern::lmtp_plugin {

namespace {

constexpr int kMaxTimeout = 3600;

bool parse_timeout(std::string_view value, int* out) {
    int n = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || end != value.data() + value.size() || n < 1 || n > kMaxTimeout) return false;
    *out = n;
    return true;
}

bool parse_destination(std::string_view path, Target* t, std::string* error) {
    t->url.scheme = relay::RelayUrl::Scheme::Lmtp;
    if (!path.empty() && path.front() == '/') {
        t->unix_socket = true;
        t->socket_path = path;
        t->url.host = path;
        t->url.port = 0;
        return true;
    }
    // The config parser has already refused anything else; a destination
    // that is no HOST:PORT is one written by another version of the daemon.
    if (path.find("://") != std::string_view::npos) return *error = "not a socket path or HOST:PORT", false;
    auto url = relay::parse_relay_url("lmtp://" + std::string(path), error);
    if (!url) return false;
    t->url = *url;
    return true;
}

}  // namespace

bool parse_target(std::string_view path, std::string_view options, Target* out, std::string* error) {
    Target t;
    error->clear();
    if (path.empty()) return *error = "no LMTP server", false;
    if (!parse_destination(path, &t, error)) {
        *error = "\"" + std::string(path) + "\": " + *error;
        return false;
    }
    std::set<std::string_view> seen;
    while (!options.empty()) {
        size_t sp = options.find(' ');
        std::string_view word = options.substr(0, sp);
        options = sp == std::string_view::npos ? std::string_view{} : options.substr(sp + 1);
        if (word.empty()) continue;
        std::string_view key = word.substr(0, word.find('='));
        if (!seen.insert(key).second) return *error = "option " + std::string(key) + " given twice", false;
        if (word == "rcpt-to") {
            t.rcpt_to = true;
        } else if (key == "timeout" && key.size() < word.size()) {
            if (!parse_timeout(word.substr(key.size() + 1), &t.timeout))
                return *error = "timeout= must be 1 to " + std::to_string(kMaxTimeout) + " seconds", false;
        } else {
            return *error = "unknown option \"" + std::string(word) + "\"", false;
        }
    }
    *out = std::move(t);
    return true;
}

}  // namespace postern::lmtp_plugin
