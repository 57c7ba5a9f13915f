// plugins/relay/options.cpp — see options.hpp.
#include "options.hpp"

#include <openssl/evp.h>
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

bool base64_decode(std::string_view in, std::string* out) {
    if (in.empty() || in.size() % 4 != 0) return false;
    out->assign(in.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out->data()),
                            reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
    if (n < 0) return false;
    size_t pad = (in.back() == '=') + (in.size() > 1 && in[in.size() - 2] == '=');
    out->resize(static_cast<size_t>(n) - pad);
    return true;
}

bool set_int(std::string_view value, int lo, int hi, int* out) {
    int n = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || end != value.data() + value.size() || n < lo || n > hi) return false;
    *out = n;
    return true;
}

// A value that goes on a command line or into a lookup: printable, no spaces.
bool plain(std::string_view v) { return valid_helo(v); }

bool apply(std::string_view key, std::string_view value, Settings* s, std::string* error) {
    auto bad = [&](const std::string& why) { return *error = why, false; };
    if (key == "helo") {
        if (!valid_helo(value)) return bad("invalid helo name \"" + std::string(value) + "\"");
        s->helo = value;
    } else if (key == "tls") {
        if (value != "verify" && value != "no-verify")
            return bad("tls= must be verify or no-verify, not \"" + std::string(value) + "\"");
        s->verify = value == "verify";
    } else if (key == "ca") {
        if (value.empty()) return bad("empty ca= path");
        s->ca_file = value;
    } else if (key == "starttls") {
        if (value != "required") return bad("starttls= must be required");
        s->require_tls = true;
    } else if (key == "resolver" || key == "self" || key == "src") {
        if (!plain(value)) return bad(std::string(key) + "= needs a value without spaces");
        (key == "resolver" ? s->resolver : key == "self" ? s->self : s->src) = value;
    } else if (key == "ciphers") {
        if (!plain(value)) return bad("ciphers= needs a value without spaces");
        s->ciphers = value;
    } else if (key == "tls-versions") {
        size_t colon = value.find(':');
        if (colon == std::string_view::npos || !set_int(value.substr(0, colon), 0x0301, 0x0304, &s->min_version) ||
            !set_int(value.substr(colon + 1), 0x0301, 0x0304, &s->max_version) || s->min_version > s->max_version)
            return bad("tls-versions= must be MIN:MAX");
    } else if (key == "family") {
        if (value != "inet4" && value != "inet6") return bad("family= must be inet4 or inet6");
        s->family = value == "inet4" ? Family::Inet4 : Family::Inet6;
    } else if (key == "cert" || key == "key") {
        std::string pem;
        if (!base64_decode(value, &pem)) return bad("invalid " + std::string(key) + "=");
        (key == "cert" ? s->cert_pem : s->key_pem) = std::move(pem);
    } else if (key.substr(0, 5) == "auth@" && key.size() > 5) {
        if (!plain(value)) return bad("invalid auth token");
        s->auth[std::string(key.substr(5))] = value;
    } else if (key == "session-mail-max") {
        if (!set_int(value, 1, 1'000'000, &s->mail_max)) return bad("session-mail-max= must be 1 to 1000000");
    } else if (key == "keepalive") {
        if (!set_int(value, 0, 300, &s->keepalive)) return bad("keepalive= must be 0 to 300 seconds");
    } else if (key == "timeout") {
        if (!set_int(value, 1, kMaxTimeout, &s->timeout))
            return bad("timeout= must be 1 to " + std::to_string(kMaxTimeout) + " seconds");
    } else {
        return false;
    }
    return true;
}

// "mx:DOMAIN" or one or more relay URLs.
bool parse_path(std::string_view path, Settings* s, std::string* error) {
    if (path.substr(0, 3) == "mx:") {
        s->mx_domain = path.substr(3);
        if (!plain(s->mx_domain)) return *error = "invalid domain for MX routing", false;
        return true;
    }
    while (!path.empty()) {
        size_t sp = path.find(' ');
        std::string_view word = path.substr(0, sp);
        path = sp == std::string_view::npos ? std::string_view{} : path.substr(sp + 1);
        if (word.empty()) continue;
        auto url = relay::parse_relay_url(word, error);
        if (!url) return false;
        s->hosts.push_back(*url);
    }
    if (s->hosts.empty()) return *error = "no relay host", false;
    return true;
}

}  // namespace

bool parse_settings(std::string_view path, std::string_view options, Settings* out, std::string* error) {
    Settings s;
    error->clear();
    if (!parse_path(path, &s, error)) return false;
    std::set<std::string_view> seen;
    while (!options.empty()) {
        size_t sp = options.find(' ');
        std::string_view word = options.substr(0, sp);
        options = sp == std::string_view::npos ? std::string_view{} : options.substr(sp + 1);
        if (word.empty()) continue;
        size_t eq = word.find('=');
        std::string_view key = word.substr(0, eq);
        if (eq == std::string_view::npos || !apply(key, word.substr(eq + 1), &s, error)) {
            // Never echo an auth word: it holds a password.
            if (error->empty())
                *error = "unknown option \"" + std::string(key.substr(0, 4) == "auth" ? "auth..." : word) + "\"";
            return false;
        }
        if (!seen.insert(key).second) {
            *error = "option " + std::string(key) + "= given twice";
            return false;
        }
    }
    using Scheme = relay::RelayUrl::Scheme;
    if (s.cert_pem.empty() != s.key_pem.empty()) return *error = "cert= and key= go together", false;
    for (const auto& u : s.hosts)
        if (s.auth.count(u.label) && u.scheme != Scheme::SmtpTls && u.scheme != Scheme::Smtps)
            return *error = "auth needs smtp+tls:// or smtps:// (credentials are never sent in the clear)", false;
    if (s.helo.empty()) s.helo = local_host_name();
    *out = std::move(s);
    return true;
}

}  // namespace postern::relay_plugin
