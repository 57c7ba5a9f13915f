// posternd — the postern mail transfer agent daemon.
//
//   posternd [-dFnv] [-D name=value] [-f file]
//
// Reads an OpenSMTPD-style smtpd.conf (postern.conf(5)), or with no -f the
// embedded default configuration, and serves SMTP. See posternd(8).
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "daemon/daemon.hpp"

namespace {

void usage() {
    std::fprintf(stderr, "usage: posternd [-dFhnv] [-D name=value] [-f file]\n"
                         "  -d          stay in the foreground, log to stderr\n"
                         "  -F          stay in the foreground, log to syslog\n"
                         "  -f file     read this configuration (default: the embedded one)\n"
                         "  -n          check the configuration and exit\n"
                         "  -v          verbose logging\n"
                         "  -D n=v      define macro n, overriding the file\n");
}

}  // namespace

int main(int argc, char** argv) {
    // libuv's worker pool runs table lookups, rule evaluation and DNS; its
    // default of 4 threads lets one slow resolver stall everything else.
    setenv("UV_THREADPOOL_SIZE", "16", 0);
    // A client that hangs up while we write to it must cost a failed write
    // (EPIPE, handled per session), not the whole daemon.
    signal(SIGPIPE, SIG_IGN);
    postern::daemon::Options o;
    int ch;
    while ((ch = getopt(argc, argv, "dFnvf:D:h")) != -1) {
        switch (ch) {
        case 'd': o.foreground = o.log_stderr = true; break;
        case 'F': o.foreground = true; break;
        case 'n': o.check_only = true; break;
        case 'v': o.verbose = true; break;
        case 'f': o.config_file = optarg; break;
        case 'D': {
            const char* eq = std::strchr(optarg, '=');
            if (!eq || eq == optarg) {
                std::fprintf(stderr, "posternd: -D needs name=value, got '%s'\n", optarg);
                return 1;
            }
            o.macros[std::string(optarg, static_cast<size_t>(eq - optarg))] = eq + 1;
            break;
        }
        case 'h': usage(); return 0;
        default: usage(); return 1;
        }
    }
    if (optind != argc) {
        usage();
        return 1;
    }
    return postern::daemon::run(o);
}
