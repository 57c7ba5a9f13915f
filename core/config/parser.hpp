// The smtpd.conf grammar's word list: OpenSMTPD's reserved words.
//
// Every directive and option of OpenSMTPD 7.x is read (docs/compatibility.md
// says what each does in postern; those that cannot act here are read with a
// warning that says why). The pre-6.4 grammar is translated by legacy.cpp.
#pragma once

#include <algorithm>
#include <iterator>
#include <string_view>

namespace postern::config::grammar {

// OpenSMTPD's reserved words: none may name a macro, and a value spelled like
// one must be quoted.
inline constexpr std::string_view kKeywords[] = {
    "action",
    "admd",
    "alias",
    "any",
    "auth",
    "auth-optional",
    "backup",
    "bounce",
    "bypass",
    "ca",
    "cert",
    "chain",
    "chroot",
    "ciphers",
    "commit",
    "compression",
    "connect",
    "data",
    "data-line",
    "dhe",
    "disconnect",
    "domain",
    "ehlo",
    "encryption",
    "expand-only",
    "fcrdns",
    "filter",
    "for",
    "forward-only",
    "from",
    "group",
    "helo",
    "helo-src",
    "host",
    "hostname",
    "hostnames",
    "include",
    "inet4",
    "inet6",
    "junk",
    "key",
    "limit",
    "listen",
    "lmtp",
    "local",
    "mail-from",
    "maildir",
    "mask-src",
    "masquerade",
    "match",
    "max-deferred",
    "max-message-size",
    "mbox",
    "mda",
    "mta",
    "mx",
    "no-dsn",
    "no-verify",
    "noop",
    "on",
    "phase",
    "pki",
    "port",
    "proc",
    "proc-exec",
    "protocols",
    "proxy-v2",
    "queue",
    "quit",
    "rcpt-to",
    "rdns",
    "received-auth",
    "recipient",
    "regex",
    "reject",
    "relay",
    "report",
    "rewrite",
    "rset",
    "scheduler",
    "senders",
    "smtp",
    "smtp-in",
    "smtp-out",
    "smtps",
    "socket",
    "src",
    "srs",
    "sub-addr-delim",
    "table",
    "tag",
    "tagged",
    "tls",
    "tls-require",
    "ttl",
    "user",
    "userbase",
    "verify",
    "virtual",
    "warn-interval",
    "wrapper",
};

template <std::size_t N>
bool listed(const std::string_view (&list)[N], std::string_view word) {
    return std::find(std::begin(list), std::end(list), word) != std::end(list);
}

inline bool is_keyword(std::string_view word) { return listed(kKeywords, word); }

}  // namespace postern::config::grammar
