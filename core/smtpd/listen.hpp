// Opening the listening sockets of the `listen on` lines.
//
// Done before privileges are dropped (ports below 1024 need root), with plain
// sockets: the event loop that serves them is created only afterwards.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"
#include "smtpd/server.hpp"

namespace postern::smtpd {

// The addresses a `listen on` target stands for: an IP literal, "localhost",
// an interface name ("lo", "eth0"), an interface group ("egress", "all":
// interfaces.hpp) or a host name; with none, `error` says why.
std::vector<std::string> resolve_listen_target(const config::Listener& l, std::string* error);

// Bind and listen on every address of every network listener; on failure
// close what was opened and return false with one message per problem.
// `listen on socket` is not among them: see open_local_socket. An address
// in use is tried again for up to kBindRetryMs (a daemon killed a moment ago
// may not have been torn down yet) before it counts as a problem.
inline constexpr int kBindRetryMs = 5000;
bool open_listeners(const config::Config& config, std::vector<ListenSocket>* out, std::vector<std::string>* errors);

// The local enqueue socket of the `listen on socket` line (there always is
// one: the parser implies it), a UNIX stream socket at `path`
// (local_socket.hpp) with mode 0666: every user of this host may submit, as
// with OpenSMTPD's smtpd.sock; the session learns who from the socket's peer
// credentials and the rules decide what they may do. A stale socket file
// left by a daemon that died is replaced; a live one is an error. Its folder
// must let everyone through (search permission for others): one that does
// not is given it, the only bit changed.
bool open_local_socket(const config::Config& config, const std::string& path, std::vector<ListenSocket>* out,
                       std::string* error);

// Bind and listen on one TCP address (an IP literal) and port; the
// descriptor in `fd`, or false with the reason in `error` (and its errno in
// `error_number`, when given).
bool bind_tcp(const std::string& ip, int port, int* fd, std::string* error, int* error_number = nullptr);

void close_listeners(std::vector<ListenSocket>& sockets);

// Every address of this host, as text ("127.0.0.1", "::1", ...).
std::vector<std::string> local_addresses();

}  // namespace postern::smtpd
