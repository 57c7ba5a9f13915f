// posternd's life: read the config, bind, split privileges, serve, stop.
#pragma once

#include <string>

#include "config/config.hpp"

namespace postern::daemon {

struct Options {
    std::string config_file;  // "" = the embedded default configuration
    config::Macros macros;    // -D name=value
    bool check_only = false;  // -n
    bool foreground = false;  // -d or -F
    bool log_stderr = false;  // -d
    bool verbose = false;     // -v
};

// The embedded default configuration, for a working tree: listen on
// 127.0.0.1:2525, accept mail for localhost and this host's names from local
// clients, deliver to maildirs under STATE/mail, keep the queue in STATE/spool.
std::string default_config_text(const std::string& state_dir, const std::string& user);

// Returns the process exit status.
int run(const Options& options);

}  // namespace postern::daemon
