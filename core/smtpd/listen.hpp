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
// an interface name ("lo", "eth0") or a host name.
std::vector<std::string> resolve_listen_target(const config::Listener& l, std::string* error);

// Bind and listen on every address of every listener; on failure close what
// was opened and return false with one message per problem.
bool open_listeners(const config::Config& config, std::vector<ListenSocket>* out, std::vector<std::string>* errors);

void close_listeners(std::vector<ListenSocket>& sockets);

// Every address of this host, as text ("127.0.0.1", "::1", ...).
std::vector<std::string> local_addresses();

}  // namespace postern::smtpd
