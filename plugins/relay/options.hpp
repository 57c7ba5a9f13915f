// plugins/relay/options.hpp — the relay plugin's settings for one delivery:
// the relay URL (request.path) and the option words the daemon builds
// (request.options, space separated):
//   helo=NAME               our EHLO name (default: this host's name)
//   tls=verify|no-verify    check the certificate of smtp+tls:// and smtps:// (default verify)
//   ca=/path/bundle.pem     CA bundle for that check (default: the system store)
//   auth=user:password      AUTH PLAIN; only with smtp+tls:// or smtps://
//   timeout=SECONDS         per connect, command and reply, 1..3600 (default 300)
// Any other word, a repeated word or a bad value is a configuration error.
#pragma once

#include <string>
#include <string_view>

#include "relay/url.hpp"

namespace postern::relay_plugin {

struct Settings {
    relay::RelayUrl url;
    std::string helo;
    bool verify = true;
    std::string ca_file;
    bool has_auth = false;
    std::string auth_user, auth_password;
    int timeout = 300;
};

// Fill *out from the URL and the option words; on failure *error says why,
// e.g. "unknown option \"foo=1\"" or the URL parser's text.
bool parse_settings(std::string_view url, std::string_view options, Settings* out, std::string* error);

}  // namespace postern::relay_plugin
