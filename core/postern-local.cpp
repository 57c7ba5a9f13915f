// postern-local — the local delivery agent.
//
//   postern-local [--plugin-dir DIR] --method NAME --user U --home H [--options O]
//                 [--secret-fd FD] --delivery FD SENDER RCPT DEST PATH MSGID [--dsn MAIL RCPT]
//                 [--delivery ...]
//
// The daemon starts one agent per batch of local deliveries that share an
// action and an account, already running as that account (this program does
// no privilege handling at all). Each --delivery names an inherited file
// descriptor holding one spooled message and that message's envelope. The
// agent loads delivery-NAME.so once and calls its `deliver` for each, so a
// busy queue pays for one process start per batch, not per message, and a
// plugin that crashes costs the batch's attempts, never the daemon.
// --secret-fd names a pipe holding more option words (relay credentials),
// which must not appear in argv where any user can read them.
//
// Output: one line per delivery on stdout, in order, `INDEX STATUS TEXT`,
// STATUS being ok, temp or perm; TEXT has no line breaks. Exit status 0 when
// every delivery was tried; 75 (EX_TEMPFAIL) with one line on stderr when
// none could be (the plugin cannot be loaded: a site configuration error, so
// the mail waits in the queue); 1 with the usage on stderr for bad arguments.
// A delivery without its line (the agent died) counts as a temporary failure.
//
// Depends on: util/plugin (the loader), the delivery ABI in postern/delivery.h.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "postern/delivery.h"
#include "util/plugin.hpp"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitUsage = 1;
constexpr int kExitTempFail = 75;

constexpr const char* kUsage =
    "usage: postern-local [--plugin-dir DIR] --method NAME --user U --home H [--options O] [--secret-fd FD]\n"
    "                     --delivery FD SENDER RCPT DEST PATH MSGID [--dsn MAIL RCPT] [--delivery ...]\n";

struct Delivery {
    int fd = -1;
    std::string sender, rcpt, dest, path, msgid;
    std::string mail_params, rcpt_params;  // --dsn, for a relay
};

struct Args {
    std::string plugin_dir, method, user, home, options;
    int secret_fd = -1;  // more option words, kept out of argv
    bool has_method = false, has_user = false, has_home = false;
    std::vector<Delivery> deliveries;
};

bool parse_fd(std::string_view text, int* fd) {
    if (text.empty() || text.size() > 6 || text.find_first_not_of("0123456789") != std::string_view::npos) return false;
    *fd = std::atoi(std::string(text).c_str());
    return *fd >= 3;  // 0-2 are the agent's own stdio
}

// Strict: every option known, given once (--delivery repeats), with its values.
std::optional<Args> parse(int argc, char** argv, std::string* error) {
    Args a;
    auto single = [&](std::string_view name, std::string* out, bool* seen, int& i) {
        if (seen && *seen) {
            *error = "option --" + std::string(name) + " given twice";
            return false;
        }
        if (i + 1 >= argc) {
            *error = "option --" + std::string(name) + " needs a value";
            return false;
        }
        *out = argv[++i];
        if (seen) *seen = true;
        return true;
    };
    bool has_dir = false, has_options = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view opt = argv[i];
        bool ok;
        if (opt == "--plugin-dir") ok = single("plugin-dir", &a.plugin_dir, &has_dir, i);
        else if (opt == "--method") ok = single("method", &a.method, &a.has_method, i);
        else if (opt == "--user") ok = single("user", &a.user, &a.has_user, i);
        else if (opt == "--home") ok = single("home", &a.home, &a.has_home, i);
        else if (opt == "--options") ok = single("options", &a.options, &has_options, i);
        else if (opt == "--secret-fd") {
            std::string text;
            ok = single("secret-fd", &text, nullptr, i) && parse_fd(text, &a.secret_fd);
            if (!ok && error->empty()) *error = "bad file descriptor \"" + text + "\" for --secret-fd";
        } else if (opt == "--dsn") {
            if (a.deliveries.empty() || i + 2 >= argc) {
                *error = "option --dsn needs MAILPARAMS RCPTPARAMS after a --delivery";
                return std::nullopt;
            }
            a.deliveries.back().mail_params = argv[i + 1];
            a.deliveries.back().rcpt_params = argv[i + 2];
            i += 2;
            ok = true;
        } else if (opt == "--delivery") {
            if (i + 6 >= argc) {
                *error = "option --delivery needs FD SENDER RCPT DEST PATH MSGID";
                return std::nullopt;
            }
            Delivery d;
            if (!parse_fd(argv[i + 1], &d.fd)) {
                *error = "bad file descriptor \"" + std::string(argv[i + 1]) + "\" for --delivery";
                return std::nullopt;
            }
            d.sender = argv[i + 2];
            d.rcpt = argv[i + 3];
            d.dest = argv[i + 4];
            d.path = argv[i + 5];
            d.msgid = argv[i + 6];
            a.deliveries.push_back(std::move(d));
            i += 6;
            ok = true;
        } else {
            *error = "unknown argument \"" + std::string(opt) + "\"";
            return std::nullopt;
        }
        if (!ok) return std::nullopt;
    }
    const char* missing = !a.has_method ? "--method" : !a.has_user ? "--user" : !a.has_home ? "--home" : nullptr;
    if (missing) {
        *error = std::string("missing option ") + missing;
        return std::nullopt;
    }
    if (a.deliveries.empty()) {
        *error = "no --delivery given";
        return std::nullopt;
    }
    return a;
}

// The secret option words: read whole, then the descriptor is closed so
// that nothing the plugin starts inherits it.
bool read_secret(int fd, std::string* out) {
    constexpr size_t kMax = 16384;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 || out->size() + static_cast<size_t>(n) > kMax) break;
        if (n == 0) {
            ::close(fd);
            return true;
        }
        out->append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return false;
}

std::string one_line(std::string_view text) {
    std::string out(text);
    for (char& c : out)
        if (c == '\n' || c == '\r') c = ' ';
    return out;
}

const char* status_word(int status) {
    switch (status) {
    case POSTERN_OK: return "ok";
    case POSTERN_PERMFAIL: return "perm";
    default: return "temp";
    }
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
        return kExitUsage;
    }
    if (args->secret_fd >= 0) {
        std::string secret;
        if (!read_secret(args->secret_fd, &secret)) {
            std::fprintf(stderr, "postern-local: cannot read the secret options\n");
            return kExitTempFail;
        }
        if (!secret.empty()) args->options += (args->options.empty() ? "" : " ") + secret;
    }
    std::string dir = postern::util::plugin_dir(args->plugin_dir);
    auto plugin = postern::util::load_delivery_plugin(dir, args->method, &error);
    if (!plugin) {
        std::fprintf(stderr, "postern-local: %s\n", error.c_str());
        return kExitTempFail;
    }

    for (size_t i = 0; i < args->deliveries.size(); ++i) {
        const Delivery& d = args->deliveries[i];
        std::string text;
        int status;
        struct stat st {};
        if (::fstat(d.fd, &st) != 0) {
            status = POSTERN_TEMPFAIL;
            text = "no message on descriptor " + std::to_string(d.fd);
        } else {
            postern_delivery_request req{};
            req.struct_size = sizeof req;
            req.message_fd = d.fd;
            req.sender = d.sender.c_str();
            req.rcpt = d.rcpt.c_str();
            req.dest = d.dest.c_str();
            req.user = args->user.c_str();
            req.home = args->home.c_str();
            req.path = d.path.c_str();
            req.options = args->options.c_str();
            req.msgid = d.msgid.c_str();
            req.mail_params = d.mail_params.c_str();
            req.rcpt_params = d.rcpt_params.c_str();
            char err[1024] = "";
            status = (*plugin)->deliver(&req, err, sizeof err);
            if (status != POSTERN_OK && status != POSTERN_TEMPFAIL && status != POSTERN_PERMFAIL) {
                text = plugin->path() + ": deliver returned unknown status " + std::to_string(status);
                status = POSTERN_TEMPFAIL;
            } else if (status == POSTERN_OK) {
                text = *err ? err : "Delivered";  // a plugin may say where it delivered
            } else {
                text = *err ? err : "delivery failed (no reason given)";
            }
        }
        std::printf("%zu %s %s\n", i, status_word(status), one_line(text).c_str());
        std::fflush(stdout);  // each result as soon as it is known: a crash later loses none
    }
    return kExitOk;
}
