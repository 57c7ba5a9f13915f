// plugins/relay/options.cpp — see options.hpp.
#include "options.hpp"

#include <unistd.h>

#include <charconv>
#include <set>

namespace postern::relay_plugin {

namespace {

constexpr int kMaxTimeout = 3600;

std::string local_host_name() {
    char buf[256] = "";
    if (::gethostname(buf, sizeof buf - 1) != 0 || !*buf) return "localhost";
    return buf;
}

// A name we may send after EHLO: printable, no spaces (it goes on a command line).
bool valid_helo(std::string_view name) {
    if (name.empty() || name.size() > 255) return false;
    for (char c : name)
        if (c <= ' ' || c > '~') return false;
    return true;
}

bool apply(std::string_view key, std::string_view value, Settings* s, std::string* error) {
    if (key == "helo") {
        if (!valid_helo(value)) return *error = "invalid helo name \"" + std::string(value) + "\"", false;
        s->helo = value;
    } else if (key == "tls") {
        if (value != "verify" && value != "no-verify")
            return *error = "tls= must be verify or no-verify, not \"" + std::string(value) + "\"", false;
        s->verify = value == "verify";
    } else if (key == "ca") {
        if (value.empty()) return *error = "empty ca= path", false;
        s->ca_file = value;
    } else if (key == "auth") {
        size_t colon = value.find(':');
        if (colon == std::string_view::npos || colon == 0)
            return *error = "auth= must be user:password", false;
        s->has_auth = true;
        s->auth_user = value.substr(0, colon);
        s->auth_password = value.substr(colon + 1);
    } else if (key == "timeout") {
        int n = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (ec != std::errc() || end != value.data() + value.size() || n < 1 || n > kMaxTimeout)
            return *error = "timeout= must be 1 to " + std::to_string(kMaxTimeout) + " seconds", false;
        s->timeout = n;
    } else {
        return false;
    }
    return true;
}

}  // namespace

bool parse_settings(std::string_view url, std::string_view options, Settings* out, std::string* error) {
    Settings s;
    error->clear();
    auto parsed = relay::parse_relay_url(url, error);
    if (!parsed) return false;
    if (parsed->scheme == relay::RelayUrl::Scheme::Lmtp) {
        *error = "lmtp:// is not an SMTP relay";
        return false;
    }
    s.url = *parsed;
    std::set<std::string_view> seen;
    while (!options.empty()) {
        size_t sp = options.find(' ');
        std::string_view word = options.substr(0, sp);
        options = sp == std::string_view::npos ? std::string_view{} : options.substr(sp + 1);
        if (word.empty()) continue;
        size_t eq = word.find('=');
        std::string_view key = word.substr(0, eq);
        if (eq == std::string_view::npos || !apply(key, word.substr(eq + 1), &s, error)) {
            // Never echo the auth= word: it holds a password.
            if (error->empty()) *error = "unknown option \"" + std::string(key == "auth" ? "auth=..." : word) + "\"";
            return false;
        }
        if (!seen.insert(key).second) {
            *error = "option " + std::string(key) + "= given twice";
            return false;
        }
    }
    using Scheme = relay::RelayUrl::Scheme;
    if (s.has_auth && s.url.scheme != Scheme::SmtpTls && s.url.scheme != Scheme::Smtps) {
        *error = "auth= needs smtp+tls:// or smtps:// (credentials are never sent in the clear)";
        return false;
    }
    if (s.helo.empty()) s.helo = local_host_name();
    *out = std::move(s);
    return true;
}

}  // namespace postern::relay_plugin
