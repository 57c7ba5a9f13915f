// plugins/lmtp/target.hpp — where the lmtp action delivers and how, from
// the request's path and options.
//
// request.path is the action's destination as the config wrote it:
//   /path/to/socket      a UNIX stream socket (absolute path)
//   HOST:PORT            TCP; HOST a name, a dotted IPv4 address or [IPv6]
// request.options holds space-separated words:
//   rcpt-to              RCPT TO the recipient's address after expansion
//                        (request.dest) instead of the local user name
//                        (request.user), as OpenSMTPD's `lmtp ... rcpt-to`
//   timeout=SECONDS      per connect, command and reply, 1..3600 (default
//                        120); the daemon never sets it, the tests do
// Any other word, a repeated word or a bad value is a configuration error.
//
// Depends on: postern/support/relay_url.hpp (HOST:PORT is checked as an
// lmtp:// URL, as the config parser checks it).
#pragma once

#include <string>
#include <string_view>

#include "postern/support/relay_url.hpp"

namespace postern::lmtp_plugin {

struct Target {
    bool unix_socket = false;
    std::string socket_path;  // unix_socket: the path
    relay::RelayUrl url;      // the scheme is always lmtp; host and port for TCP, host = the path for a socket
    bool rcpt_to = false;
    int timeout = 120;
};

// Fill *out; on failure *error says why ("unknown option \"x\"", the URL
// parser's text).
bool parse_target(std::string_view path, std::string_view options, Target* out, std::string* error);

}  // namespace postern::lmtp_plugin
