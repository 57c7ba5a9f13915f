// posternd — the postern mail transfer agent daemon.
//
//   posternd [-dFnv] [-D name=value] [-f file] [-P conf|yaml]
//
// Reads an OpenSMTPD-style smtpd.conf (postern.conf(5)), its YAML form
// when the file ends in .yaml or .yml (postern.yaml(5)), or with no -f the
// embedded default configuration, and serves SMTP. See posternd(8).
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "config/printer.hpp"
#include "daemon/configuration.hpp"
#include "daemon/daemon.hpp"

namespace {

void usage() {
    std::fprintf(stderr, "usage: posternd [-dFhnv] [-D name=value] [-f file] [-P conf|yaml]\n"
                         "  -d          stay in the foreground, log to stderr\n"
                         "  -F          stay in the foreground, log to syslog\n"
                         "  -f file     read this configuration (default: the embedded one;\n"
                         "              the YAML form when it ends in .yaml or .yml)\n"
                         "  -n          check the configuration and exit\n"
                         "  -P form     with -n: print the effective configuration as conf or yaml\n"
                         "  -v          verbose logging\n"
                         "  -D n=v      define macro n, overriding the file\n");
}

// -n -P FORM: the configuration as read (macros expanded, includes and the
// pre-6.4 grammar folded in, defaults filled in), in either form. The files
// it names are not opened: -n alone checks those.
int print_config(const postern::daemon::Options& o, const std::string& form) {
    namespace config = postern::config;
    const config::ParseResult r = postern::daemon::load_config(o);
    for (const auto& w : r.warnings) std::cerr << config::format({w.where, "warning: " + w.message}) << "\n";
    for (const auto& e : r.errors) std::cerr << config::format(e) << "\n";
    if (!r.config) return 1;
    std::cout << (form == "yaml" ? config::print_yaml(*r.config) : config::print_conf(*r.config));
    return std::cout.flush() ? 0 : 1;
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
    std::string print_form;  // -P
    int ch;
    while ((ch = getopt(argc, argv, "dFnvf:D:P:h")) != -1) {
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
        case 'P':
            print_form = optarg;
            if (print_form != "conf" && print_form != "yaml") {
                std::fprintf(stderr, "posternd: -P needs conf or yaml, got '%s'\n", optarg);
                return 1;
            }
            break;
        case 'h': usage(); return 0;
        default: usage(); return 1;
        }
    }
    if (optind != argc) {
        usage();
        return 1;
    }
    if (!print_form.empty()) {
        if (!o.check_only) {
            std::fprintf(stderr, "posternd: -P prints the configuration and needs -n\n");
            return 1;
        }
        return print_config(o, print_form);
    }
    return postern::daemon::run(o);
}
