// plugins/relay/delivery_io.hpp — what the delivery plugins built on this
// SMTP/LMTP client (relay, lmtp) share at the ABI's edge: reading the
// spooled message into memory, and writing one recipient's Failure into its
// postern_delivery_result.
//
// Depends on: session.hpp (Failure), postern/delivery.h.
#pragma once

#include <string>
#include <string_view>

#include "session.hpp"

namespace postern::relay_plugin {

// The whole message from the agent's descriptor, at most 1 GiB (what we
// agree to hold in memory). On failure *f says why, as "TAG: ...".
bool read_message(int fd, std::string_view tag, std::string* out, Failure* f);

// One result: the text always, the typed fields only when the caller's
// struct has them (an agent built before them passes a shorter one).
void put_result(postern_delivery_result* res, const Failure& f);

}  // namespace postern::relay_plugin
