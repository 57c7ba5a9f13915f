// filter-rspamd: a bridge from the filter protocol (postern, OpenSMTPD) to
// a running rspamd. See docs/filter-rspamd.8.
//
//   filter-rspamd [-url URL] [-socket PATH] [-timeout SECONDS]
//                 [-accept-unscanned] [-no-greylist] [-settings-id ID]
//
// Single-dash long options, as Debian's filter-rspamd takes `-url`, so that
// a config written for it works with this one.
#include <getopt.h>
#include <uv.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "filter.hpp"
#include "rspamd/scan_filter.hpp"

namespace {

using namespace postern;

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "filter-rspamd: %s\n"
                 "usage: filter-rspamd [-url URL] [-socket PATH] [-timeout SECONDS] [-accept-unscanned]\n"
                 "                     [-no-greylist] [-settings-id ID]\n",
                 why);
    std::exit(2);
}

rspamd::ScanConfig parse_args(int argc, char** argv) {
    rspamd::ScanConfig cfg;
    enum { Url = 1, Socket, Timeout, Accept, NoGreylist, Settings };
    static const option kOptions[] = {{"url", required_argument, nullptr, Url},
                                      {"socket", required_argument, nullptr, Socket},
                                      {"timeout", required_argument, nullptr, Timeout},
                                      {"accept-unscanned", no_argument, nullptr, Accept},
                                      {"no-greylist", no_argument, nullptr, NoGreylist},
                                      {"settings-id", required_argument, nullptr, Settings},
                                      {nullptr, 0, nullptr, 0}};
    int c;
    while ((c = getopt_long_only(argc, argv, "", kOptions, nullptr)) != -1) {
        switch (c) {
        case Url: cfg.client.url = optarg; break;
        case Socket: cfg.client.unix_socket = optarg; break;
        case Timeout: {
            char* end = nullptr;
            long s = std::strtol(optarg, &end, 10);
            if (*end != '\0' || s <= 0 || s > 3600) usage("-timeout: seconds, 1 to 3600");
            cfg.client.timeout = std::chrono::seconds(s);
            break;
        }
        case Accept: cfg.accept_unscanned = true; break;
        case NoGreylist: cfg.policy.greylist_tempfails = false; break;
        case Settings: cfg.settings_id = optarg; break;
        default: usage("unknown option");
        }
    }
    if (optind != argc) usage("unexpected argument");
    if (cfg.client.url.rfind("http://", 0) != 0 && cfg.client.url.rfind("https://", 0) != 0)
        usage("-url: an http:// or https:// URL");
    return cfg;
}

}  // namespace

int main(int argc, char** argv) {
    rspamd::ScanConfig cfg = parse_args(argc, argv);
    uv_loop_t* loop = uv_default_loop();
    rspamd::ScanFilter filter(loop, std::move(cfg));
    return filterlib::run(filter, loop, {"filter-rspamd", 0, 1});
}
