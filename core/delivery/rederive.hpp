// delivery/rederive.hpp — what the privileged parent makes of a delivery
// request from the unprivileged process (privileged.cpp), before it starts
// an agent for it as root.
//
// The unprivileged process faces the network: the parent treats it as
// possibly taken over, and takes from it only what it cannot know itself.
// Everything the parent can derive from its own copy of the configuration
// it derives, and the request's version is dropped:
//
//   - the action must be one of the configuration's, by name;
//   - an item the action delivers itself gets the action's own path
//     (maildir folder, mbox file, mda command, lmtp destination), never the
//     request's; its options (junk, rcpt-to) and the mda wrapper are the
//     action's;
//   - an item an expansion turned into a file or a command (an alias's
//     `/file` or `|command`, a ~/.forward line: the tables that hold them
//     are read by the unprivileged process) is taken only for a local
//     action, only as mbox or mda, and never runs as uid or gid 0;
//   - a relay action's agent runs as the unprivileged user, whatever the
//     request names: its route, options and credentials then give it
//     nothing that process does not hold already;
//   - relay credentials (the secret) are passed to relay agents only.
//
// What is left to the request is documented in docs/security.md: which
// user or virtual account an item is for, the envelope's addresses, and the
// files and commands of expansions (for a non-root account).
#pragma once

#include <string>

#include "config/config.hpp"
#include "delivery/launcher.hpp"

namespace postern::delivery {

// The user relay agents run as (rules/recipient.hpp's kRelayUser).
inline constexpr const char* kRelayAgentUser = "_postern";

// Rewrites *job from `config` as above. "" when the job may go on, else why
// it is refused (every delivery of it fails for good: the request cannot be
// one the parent's configuration would make).
std::string rederive(const config::Config& config, Job* job);

}  // namespace postern::delivery
