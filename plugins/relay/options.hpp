// plugins/relay/options.hpp — the relay plugin's settings for one delivery:
// where to go (request.path) and how (request.options).
//
// request.path is either
//   mx:DOMAIN              MX routing: the exchangers of DOMAIN, port 25
//   URL [URL ...]          smarthosts, tried in order until one takes the
//                          connection (failover); postern/support/relay_url.hpp's form;
//                          lmtp://HOST:PORT speaks LMTP (LHLO)
// request.options holds space-separated words built by the daemon:
//   helo=NAME               our EHLO name (default: this host's name)
//   tls=verify|no-verify    check the certificate of smtp+tls:// and smtps://,
//                           and of exchangers when starttls=required (default verify)
//   ca=/path/bundle.pem     CA bundle for that check (default: the system store)
//   starttls=required       MX routing: STARTTLS or no delivery (`relay tls`)
//   resolver=ADDR[:PORT],.. MX routing: these DNS servers (default: /etc/resolv.conf)
//   self=NAME               MX routing: our name among the exchangers (backup MX cut-off)
//   family=inet4|inet6      MX routing: only this address family
//   src=ADDRESS             the local address connections come from
//   ciphers=LIST            OpenSSL cipher list for TLS 1.2 (`relay ciphers`)
//   tls-versions=MIN:MAX    OpenSSL protocol version numbers (`relay protocols`)
//   timeout=SECONDS         per connect, command and reply, 1..3600 (default 300)
//   session-mail-max=N      messages one connection carries, 1..1000000
//                           (`mta limit session-mail-max`; default 1000)
//   keepalive=SECONDS       how long a connection is kept idle for the next
//                           batch, 0..300 (`mta limit session-keepalive`; default 5)
//   cert=BASE64 key=BASE64  a client certificate chain and its key, PEM in
//                           base64 (`relay pki`); private descriptor only
//   auth@LABEL=TOKEN        AUTH PLAIN token (base64 of "\0user\0password") for
//                           the smarthost URL with that label; given only on
//                           the agent's private descriptor, never in argv
// Any other word, a repeated word or a bad value is a configuration error.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "postern/support/relay_url.hpp"
#include "resolver.hpp"

namespace postern::relay_plugin {

struct Settings {
    std::vector<relay::RelayUrl> hosts;  // smarthosts in order; empty with MX routing
    std::string mx_domain;               // MX routing: the recipients' domain
    std::string helo;
    bool verify = true;
    std::string ca_file;
    bool require_tls = false;  // MX routing only
    std::string resolver;
    std::string self;
    Family family = Family::Any;
    std::string src;
    std::map<std::string, std::string> auth;  // URL label -> AUTH PLAIN token
    std::string cert_pem, key_pem;            // client certificate; "" = none
    std::string ciphers;                      // "" = OpenSSL's default
    int min_version = 0, max_version = 0;     // 0 = TLS 1.2 .. the newest
    int timeout = 300;
    int mail_max = 1000;  // scache.hpp's kMaxTransactions
    int keepalive = 5;    // scache.hpp's kIdleLimit, in seconds
    // Set by the plugin, never by an option word: the lmtp action
    // (plugins/lmtp) shares this client with other values.
    std::string tag = "relay";      // what every result text starts with: "relay: HOST [ADDRESS]: ..."
    bool opportunistic_tls = true;  // smtp:// and lmtp://: STARTTLS whenever the server offers it
};

// Fill *out from the path and the option words; on failure *error says why,
// e.g. "unknown option \"foo=1\"" or the URL parser's text.
bool parse_settings(std::string_view path, std::string_view options, Settings* out, std::string* error);

}  // namespace postern::relay_plugin
