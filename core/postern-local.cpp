// postern-local — the local delivery agent.
//
//   postern-local [--plugin-dir DIR] --method NAME --sender S --rcpt R
//                 --dest D --user U --home H [--path P] [--options O]
//                 [--msgid M]  < message
//
// The daemon starts one agent per local delivery, already running as the
// recipient's uid/gid (this program does no privilege handling at all), with
// the spooled message on stdin. The agent loads delivery-NAME.so and calls its
// `deliver` once, so a plugin that crashes or leaks costs one delivery attempt,
// never the daemon.
//
// Exit status (read by core/delivery/launcher): 0 delivered, 75 (EX_TEMPFAIL)
// temporary failure, 1 permanent failure or bad usage. A plugin that cannot be
// loaded is a site configuration error: 75, so the mail waits in the queue
// instead of bouncing. On failure one line on stderr gives the reason.
//
// Depends on: util/plugin (the loader), the delivery ABI in postern/delivery.h.
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "postern/delivery.h"
#include "util/plugin.hpp"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitPermFail = 1;
constexpr int kExitTempFail = 75;

constexpr const char* kUsage =
    "usage: postern-local [--plugin-dir DIR] --method NAME --sender S --rcpt R --dest D\n"
    "                     --user U --home H [--path P] [--options O] [--msgid M] < message\n";

struct Args {
    std::map<std::string, std::string, std::less<>> values;
    std::string get(std::string_view key) const {
        auto it = values.find(key);
        return it == values.end() ? std::string() : it->second;
    }
};

constexpr std::string_view kRequired[] = {"method", "sender", "rcpt", "dest", "user", "home"};
constexpr std::string_view kOptional[] = {"plugin-dir", "path", "options", "msgid"};

bool known(std::string_view key) {
    for (auto k : kRequired)
        if (k == key) return true;
    for (auto k : kOptional)
        if (k == key) return true;
    return false;
}

// Strict: only "--name value" pairs, each known option at most once, every
// required one present. Values may be empty (the null sender is "").
std::optional<Args> parse(int argc, char** argv, std::string* error) {
    Args args;
    for (int i = 1; i < argc; i += 2) {
        std::string_view opt = argv[i];
        if (!opt.starts_with("--") || !known(opt.substr(2))) {
            *error = "unknown argument \"" + std::string(opt) + "\"";
            return std::nullopt;
        }
        if (i + 1 >= argc) {
            *error = "option " + std::string(opt) + " needs a value";
            return std::nullopt;
        }
        if (!args.values.emplace(std::string(opt.substr(2)), argv[i + 1]).second) {
            *error = "option " + std::string(opt) + " given twice";
            return std::nullopt;
        }
    }
    for (auto k : kRequired) {
        if (!args.values.contains(k)) {
            *error = "missing option --" + std::string(k);
            return std::nullopt;
        }
    }
    return args;
}

int fail(int code, std::string_view reason) {
    std::fprintf(stderr, "postern-local: %.*s\n", static_cast<int>(reason.size()), reason.data());
    return code;
}

}  // namespace

int main(int argc, char** argv) {
    // A plugin writing to a socket whose peer went away (lmtp) must see EPIPE,
    // not die of SIGPIPE: that would turn a clear error into a bare signal.
    ::signal(SIGPIPE, SIG_IGN);

    std::string error;
    auto args = parse(argc, argv, &error);
    if (!args) {
        std::fprintf(stderr, "postern-local: %s\n%s", error.c_str(), kUsage);
        return kExitPermFail;
    }
    struct stat st {};
    if (::fstat(0, &st) != 0) return fail(kExitTempFail, "no message on stdin");

    std::string dir = postern::util::plugin_dir(args->get("plugin-dir"));
    auto plugin = postern::util::load_delivery_plugin(dir, args->get("method"), &error);
    if (!plugin) return fail(kExitTempFail, error);

    std::string sender = args->get("sender"), rcpt = args->get("rcpt"), dest = args->get("dest");
    std::string user = args->get("user"), home = args->get("home"), path = args->get("path");
    std::string options = args->get("options"), msgid = args->get("msgid");
    postern_delivery_request req{};
    req.struct_size = sizeof req;
    req.message_fd = 0;
    req.sender = sender.c_str();
    req.rcpt = rcpt.c_str();
    req.dest = dest.c_str();
    req.user = user.c_str();
    req.home = home.c_str();
    req.path = path.c_str();
    req.options = options.c_str();
    req.msgid = msgid.c_str();

    char err[1024] = "";
    int status = (*plugin)->deliver(&req, err, sizeof err);
    std::string_view reason = *err ? std::string_view(err) : "delivery failed (no reason given)";
    switch (status) {
    case POSTERN_OK:
        return kExitOk;
    case POSTERN_PERMFAIL:
        return fail(kExitPermFail, reason);
    case POSTERN_TEMPFAIL:
        return fail(kExitTempFail, reason);
    default:
        return fail(kExitTempFail, plugin->path() + ": deliver returned unknown status " +
                                       std::to_string(status));
    }
}
