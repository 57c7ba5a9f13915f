// How the spool keeps messages at rest, from the configuration: `queue
// compression`, and `queue encryption`'s key, written in the configuration
// or read from the key file.
//
// The key file, for `queue encryption` without a key: queue.key in
// $CREDENTIALS_DIRECTORY when systemd passes credentials
// (LoadCredential=queue.key:...), else queue.key beside the configuration
// file (/etc/postern/queue.key). It must be a regular file that no other
// user can read or change, holding the 32-character key (a final newline
// allowed). Read by the root parent before privileges are dropped; the
// serving process inherits the key in memory, and it never appears on a
// command line.
#pragma once

#include <string>

#include "config/config.hpp"
#include "queue/message_codec.hpp"

namespace postern::daemon {

// "" when `out` is set; else why not, as "FILE:LINE:COL: ..." at the
// `queue encryption` line. `config_file`: the -f file ("" = embedded). The
// key must open the queue's key-check file if there is one (Store::check_key).
// Without `queue encryption` but with a key-check in the spool (mail written
// encrypted may still be queued), the key file's key is set to read it only
// (AtRest::key_reads_only), and its absence is an error: the queue could
// not be read.
std::string load_at_rest(const config::Config& cfg, const std::string& config_file, const std::string& spool,
                         queue::AtRest* out);

// Where the key file is looked for (the first that applies).
std::string key_file_path(const std::string& config_file);

}  // namespace postern::daemon
