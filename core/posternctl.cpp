// posternctl — control a running posternd, and make password hashes.
//
// posternctl [-s SOCKET | -f CONFIG] [--json] COMMAND...
// makemap ..., newaliases ... (posternctl under those names)
//
// Every command but `encrypt` is sent as one request over the daemon's control
// socket (protocol in control/protocol.hpp); the reply is printed as text, or
// as JSON with --json (control/output.hpp). The socket is, first found: -s; the `control socket`
// of the configuration given with -f; $POSTERN_CONTROL; the `control socket`
// of the installed configuration (POSTERN_DEFAULT_CONFIG), when that file
// exists; /run/postern/control.sock. The configuration is read with the
// daemon's own parser (config/), so that posternctl finds the socket wherever
// the daemon that reads the same file puts it.
//
// `encrypt` runs here, without the daemon or any configuration: it prints
// crypt(3) SHA-512 ($6$) hashes, the format OpenSMTPD's `smtpctl encrypt`
// writes on Debian, for credentials tables. `makemap` runs here too: it is
// postern-makemap(8), the same code (tables/db, library postern_makemap);
// and posternctl run under the name makemap or newaliases (a link, as
// OpenSMTPD installs smtpctl) is that program, its options and all.
// Exit status: 0 done, 1 failed (daemon down, permission, an error reply, a
// broken configuration), 2 bad usage; `table lookup` answers as grep does:
// 0 found, 1 not found, 2 anything else. See docs/posternctl.8.
#include <crypt.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "control/output.hpp"
#include "control/protocol.hpp"
#include "makemap.hpp"
#include "util/fd.hpp"

#ifndef POSTERN_DEFAULT_CONFIG
#define POSTERN_DEFAULT_CONFIG "/etc/postern/smtpd.conf"
#endif

namespace {

using postern::control::field;
using postern::control::Reply;
using postern::control::Request;
using postern::control::Shape;
using postern::control::shape_of;
using postern::control::text_value;

constexpr const char* kDefaultSocket = "/run/postern/control.sock";  // as the daemon's default
constexpr const char* kDefaultConfig = POSTERN_DEFAULT_CONFIG;       // what the installed unit runs with
constexpr int kTimeoutSeconds = 60;  // per send or receive: a wedged daemon must not hang scripts
constexpr size_t kMaxPasswordLine = 1024;

struct Options {
    std::string socket;  // -s
    std::string config;  // -f
    bool json = false;
    std::vector<std::string> words;
};

int usage(FILE* to, int status) {
    std::fprintf(to,
                 "usage: posternctl [-s SOCKET | -f CONFIG] [--json] COMMAND...\n"
                 "options:\n"
                 "  -s SOCKET   the control socket\n"
                 "  -f CONFIG   the control socket named in this configuration file\n"
                 "  --json      print the reply as JSON\n"
                 "  (neither -s nor -f: $POSTERN_CONTROL, else the control socket of\n"
                 "   %s when it exists, else %s)\n"
                 "commands:\n",
                 kDefaultConfig, kDefaultSocket);
    for (auto line : postern::control::usage_lines())
        std::fprintf(to, "  %.*s\n", static_cast<int>(line.size()), line.data());
    std::fprintf(to, "  encrypt [STRING]\n");
    std::fprintf(to, "  makemap [-U] [-d hash|btree] [-o DBFILE] [-t aliases|set] FILE\n");
    std::string services;
    for (auto s : postern::control::service_names()) services += (services.empty() ? "" : ", ") + std::string(s);
    std::fprintf(to, "(SERVICE: %s)\n", services.c_str());
    return status;
}

void fail(const std::string& text) { std::fprintf(stderr, "posternctl: %s\n", text.c_str()); }

// ---- table lookup ----

// Exit statuses of `table lookup`, as grep's: a script tests for the entry
// with `if posternctl table lookup ...`, and 1 means only "not there".
constexpr int kFound = 0, kNotFound = 1, kLookupFailed = 2;

// The one line that says what the table answered.
std::string found_line(const postern::control::Record& rec) {
    if (const auto* hidden = field(rec, "hidden"); hidden && *hidden == "yes") return "found (value hidden)";
    if (const auto* value = field(rec, "value")) return "found: " + text_value(*value);
    if (const auto* entry = field(rec, "entry")) return "found (matches " + text_value(*entry) + ")";
    return "found";
}

int print_lookup(const Options& o, const Reply& reply) {
    const std::string* result = reply.records.size() == 1 ? field(reply.records[0], "result") : nullptr;
    if (!result || (*result != "found" && *result != "not-found" && *result != "tempfail")) {
        fail("garbled reply from posternd: expected one record with a result");
        return kLookupFailed;
    }
    const auto& rec = reply.records[0];
    int status = *result == "found" ? kFound : *result == "not-found" ? kNotFound : kLookupFailed;
    if (o.json) {
        std::string out = postern::control::record_json(rec);
        std::fwrite(out.data(), 1, out.size(), stdout);
    } else if (status == kFound) {
        std::printf("%s\n", found_line(rec).c_str());
    } else if (status == kNotFound) {
        std::printf("not found\n");
    }
    if (status == kLookupFailed) {
        const auto* why = field(rec, "error");
        fail("temporary failure: " + text_value(why ? *why : "no reason given"));
    }
    return status;
}

// ---- talking to the daemon ----

bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

// Where the control socket's path came from, for the errors that name it: a
// socket read from a configuration file is one the user may never have typed.
struct Socket {
    std::string path;
    std::string origin;  // ", named in FILE" and the like; "" for -s, the environment, the default
    std::string shown() const { return path + origin; }
};

// One request, one reply. Returns an exit status: 0 with *reply filled in, or
// 1 after printing why there is no reply.
int exchange(const Socket& socket, const Request& req, Reply* reply) {
    const std::string& path = socket.path;
    sockaddr_un sun{};
    if (path.empty() || path.size() >= sizeof sun.sun_path) {
        fail("socket path too long: " + path);
        return 1;
    }
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, path.data(), path.size());
    postern::util::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) {
        fail(std::string("socket: ") + std::strerror(errno));
        return 1;
    }
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) {
        if (errno == ENOENT || errno == ECONNREFUSED || errno == ENOTDIR)
            fail("posternd does not seem to be running (no socket at " + socket.shown() + ")");
        else if (errno == EACCES || errno == EPERM) fail("permission denied on " + socket.shown() + " (run as root)");
        else fail("connect " + path + ": " + std::strerror(errno));
        return 1;
    }
    timeval tv{kTimeoutSeconds, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

    // If the daemon hung up early it may still have said why: read on.
    if (!send_all(fd.get(), postern::control::encode_request(req)) && errno != EPIPE && errno != ECONNRESET) {
        fail("sending the request to posternd: " + std::string(std::strerror(errno)));
        return 1;
    }
    std::string in;
    char buf[16384];
    for (;;) {
        ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            fail("timed out waiting for posternd");
            return 1;
        }
        // A server that refuses before reading the request closes with our
        // request unread, and Linux then reports ECONNRESET after the reply
        // bytes: that too is the end of the reply.
        if (n < 0 && errno == ECONNRESET) break;
        if (n < 0) {
            fail("reading the reply from posternd: " + std::string(std::strerror(errno)));
            return 1;
        }
        if (n == 0) break;
        in.append(buf, static_cast<size_t>(n));
        if (in.size() > postern::control::kMaxReply + 16) {
            fail("reply from posternd too large");
            return 1;
        }
    }
    if (in.empty()) {
        fail("posternd closed the connection without replying");
        return 1;
    }
    std::string err;
    if (!postern::control::decode_reply(in, reply, &err)) {
        fail("garbled reply from posternd: " + err);
        return 1;
    }
    return 0;
}

// ---- encrypt ----

bool hash_password(const std::string& password, std::string* hash) {
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!crypt_gensalt_rn("$6$", 0, nullptr, 0, salt, sizeof salt)) return false;
    auto data = std::make_unique<crypt_data>();
    const char* h = crypt_rn(password.c_str(), salt, data.get(), sizeof *data);
    if (!h || h[0] == '*') return false;
    *hash = h;
    return true;
}

int encrypt_one(const std::string& password) {
    if (password.find('\0') != std::string::npos) {
        fail("a password cannot contain a NUL byte");
        return 1;
    }
    std::string hash;
    if (!hash_password(password, &hash)) {
        fail(std::string("crypt: ") + std::strerror(errno));
        return 1;
    }
    std::printf("%s\n", hash.c_str());
    return 0;
}

// Each line of standard input (without its '\n') is one password.
int encrypt_stdin() {
    std::string line;
    for (size_t n = 1; std::getline(std::cin, line); ++n) {
        if (line.size() > kMaxPasswordLine) {
            fail("line " + std::to_string(n) + " is too long (max " + std::to_string(kMaxPasswordLine) + " bytes)");
            return 1;
        }
        if (int rc = encrypt_one(line); rc != 0) return rc;
    }
    return 0;
}

// ---- command line ----

// Fills `o`; returns -1 to go on, or an exit status.
int parse_args(int argc, char** argv, Options* o) {
    int i = 1;
    for (; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--") {
            ++i;
            break;
        }
        if (a.empty() || a[0] != '-') break;
        if (a == "-h" || a == "--help") return usage(stdout, 0);
        if (a == "--json") {
            o->json = true;
        } else if (a == "-s" || a == "-f") {
            if (i + 1 >= argc || !*argv[i + 1]) {
                fail("option " + std::string(a) + " needs a value");
                return usage(stderr, 2);
            }
            (a == "-s" ? o->socket : o->config) = argv[++i];
        } else {
            fail("unknown option '" + postern::control::printable(a) + "'");
            return usage(stderr, 2);
        }
    }
    // Two answers to one question: refuse rather than pick one silently.
    if (!o->socket.empty() && !o->config.empty()) {
        fail("give -s or -f, not both");
        return usage(stderr, 2);
    }
    for (; i < argc; ++i) o->words.emplace_back(argv[i]);
    return -1;
}

// ---- finding the control socket ----

// The `control socket` of the configuration at `path` (the daemon's default
// when it names none), or an empty path after printing its errors as
// file:line:col.
Socket socket_from_config(const std::string& path) {
    auto parsed = postern::config::parse_file(path);
    if (!parsed.config) {
        // The parser's warnings (old grammar, ...) are the daemon's to give,
        // not noise to repeat on every `show queue`: only errors are printed.
        for (const auto& e : parsed.errors) std::fprintf(stderr, "%s\n", postern::config::format(e).c_str());
        fail("cannot read the control socket from " + path + "; fix it, or give -s SOCKET");
        return {};
    }
    const std::string& named = parsed.config->control_socket;
    if (named.empty()) return {kDefaultSocket, ", the default: " + path + " names no control socket"};
    return {named, ", named in " + path};
}

bool exists(const char* path) {
    struct stat st {};
    return ::stat(path, &st) == 0;
}

// The socket to talk to, in the order of the file comment; an empty path
// after an error. The installed configuration is read only when nothing more
// explicit was given, so that a bare `posternctl show queue` works on an
// installed system whose configuration moves the socket, as a bare `smtpctl
// show queue` does (OpenSMTPD's socket cannot be moved). A broken installed
// file is an error, not a silent fall-back to the default socket, which
// would send the request to the wrong place or nowhere.
Socket control_socket(const Options& o) {
    if (!o.socket.empty()) return {o.socket, ""};
    if (!o.config.empty()) return socket_from_config(o.config);
    if (const char* env = std::getenv("POSTERN_CONTROL"); env && *env) return {env, ""};
    if (exists(kDefaultConfig)) return socket_from_config(kDefaultConfig);
    return {kDefaultSocket, ""};
}

int flush_stdout() {
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
        fail(std::string("writing the output: ") + std::strerror(errno));
        return 1;
    }
    return 0;
}

// `posternctl makemap ARGS...` is `postern-makemap ARGS...`, its messages
// headed "posternctl makemap:". posternctl's options say where the daemon
// is, which makemap never asks: given with it, they are a mistake to point
// out (a `-f` meant for newaliases, say), not to ignore.
int run_makemap(const Options& o) {
    if (!o.socket.empty() || !o.config.empty() || o.json) {
        fail("makemap takes none of posternctl's options (-s, -f, --json); give its own after the word makemap");
        return usage(stderr, 2);
    }
    std::vector<std::string> args = o.words;
    args[0] = "posternctl makemap";
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    return postern::makemap::main(static_cast<int>(args.size()), argv.data());
}

int run(const Options& o) {
    if (o.words.empty()) return usage(stderr, 2);
    if (o.words[0] == "encrypt") {
        if (o.words.size() > 2) return usage(stderr, 2);
        return o.words.size() == 2 ? encrypt_one(o.words[1]) : encrypt_stdin();
    }
    if (o.words[0] == "makemap") return run_makemap(o);
    const bool lookup = shape_of(o.words) == Shape::Lookup;
    Request req{o.words};
    if (auto why = postern::control::validate_request(req); !why.empty()) {
        fail(why);
        return usage(stderr, 2);
    }
    Socket socket = control_socket(o);
    if (socket.path.empty()) return lookup ? kLookupFailed : 1;
    Reply reply;
    if (int rc = exchange(socket, req, &reply); rc != 0) return lookup ? kLookupFailed : rc;
    if (!reply.ok) {
        fail(text_value(reply.error));
        // `reload` lists every problem of the configuration it refused.
        for (const auto& rec : reply.records)
            for (const auto& [key, value] : rec)
                if (key == "error") fail(text_value(value));
        return lookup ? kLookupFailed : 1;
    }
    if (lookup) return print_lookup(o, reply);
    std::string out = o.json ? postern::control::render_json(o.words, reply)
                             : postern::control::render_text(o.words, reply);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

}  // namespace

// The name posternctl was run under, as OpenSMTPD's smtpctl is makemap and
// newaliases by its name: those command lines are makemap's alone, so they
// go to it before posternctl's own options could take -t, -o or -f.
bool runs_as_makemap(int argc, char** argv) {
    if (argc < 1 || !argv[0]) return false;
    std::string_view name = argv[0];
    if (size_t slash = name.rfind('/'); slash != std::string_view::npos) name.remove_prefix(slash + 1);
    return name == "makemap" || name == "newaliases";
}

int main(int argc, char** argv) {
    if (runs_as_makemap(argc, argv)) return postern::makemap::main(argc, argv);
    Options o;
    if (int rc = parse_args(argc, argv, &o); rc >= 0) return rc;
    int rc = run(o);
    if (int out = flush_stdout(); rc == 0) rc = out;
    return rc;
}
