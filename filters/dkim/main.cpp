// filter-dkim: DKIM signing, or verifying, for postern and OpenSMTPD
// (filter protocol on stdin/stdout). See docs/filter-dkim.8.
//
//   filter-dkim [-c CANON] [-h HEADERS] [-x SECONDS] -t KEYTABLE
//   filter-dkim [-c CANON] [-h HEADERS] [-x SECONDS] -d DOMAIN -s SELECTOR -k KEYFILE [-d ... -s ... -k ...]
//   filter-dkim -V [-a AUTHSERV-ID] [-r IP[:PORT]]
//
// Signing: every key is loaded before the filter registers: a key that
// cannot be used stops it at start-up with the file and the reason, exit
// status 1. Verifying (-V) needs no key: each message gets an
// Authentication-Results field, the keys looked up in the DNS (the system's
// resolvers, or the one -r names).
#include <unistd.h>

#include <uv.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dkim/dns.hpp"
#include "dkim/sign_filter.hpp"
#include "dkim/verify_filter.hpp"
#include "filter.hpp"

namespace {

using namespace postern;

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "filter-dkim: %s\n"
                 "usage: filter-dkim [-c header/body] [-h field:field...] [-x seconds] -t keytable\n"
                 "       filter-dkim [-c header/body] [-h field:field...] [-x seconds] "
                 "-d domain -s selector -k keyfile [-d ... -s ... -k ...]\n"
                 "       filter-dkim -V [-a authserv-id] [-r ip[:port]]\n",
                 why);
    std::exit(2);
}

std::vector<std::string> split(std::string_view s, char sep) {
    std::vector<std::string> out;
    for (std::size_t pos = 0; pos <= s.size();) {
        std::size_t end = s.find(sep, pos);
        if (end == std::string_view::npos) end = s.size();
        if (end > pos) out.emplace_back(s.substr(pos, end - pos));
        pos = end + 1;
    }
    return out;
}

struct Args {
    std::string table;    // -t
    std::string triples;  // -d/-s/-k as key table lines
    std::string canon = "relaxed/relaxed";
    std::string headers;
    std::string expire;
    bool signing = false;  // any signing option given
    // Verifying.
    bool verify = false;  // -V
    std::string authserv_id;
    std::string resolver;
};

Args parse_args(int argc, char** argv) {
    Args a;
    std::string domain, selector;
    int c;
    while ((c = getopt(argc, argv, "a:c:d:h:k:r:s:t:Vx:")) != -1) {
        a.signing = a.signing || std::string_view("cdhkstx").find(static_cast<char>(c)) != std::string_view::npos;
        switch (c) {
        case 'c': a.canon = optarg; break;
        case 'd': domain = optarg; break;
        case 's': selector = optarg; break;
        case 'k':
            if (domain.empty() || selector.empty()) usage("-k needs a -d domain and a -s selector before it");
            a.triples += domain + " " + selector + " " + optarg + "\n";
            break;
        case 'h': a.headers = optarg; break;
        case 't': a.table = optarg; break;
        case 'x': a.expire = optarg; break;
        case 'V': a.verify = true; break;
        case 'a': a.authserv_id = optarg; break;
        case 'r': a.resolver = optarg; break;
        default: usage("unknown option");
        }
    }
    if (optind != argc) usage("unexpected argument");
    if (a.verify) {
        if (a.signing) usage("-V verifies: the signing options -c -d -h -k -s -t -x do not go with it");
        if (!a.authserv_id.empty() && !dkim::is_authserv_id(a.authserv_id))
            usage("-a: a host name (no spaces, quotes or ;()<>@,:/[]?=)");
        return a;
    }
    if (!a.authserv_id.empty() || !a.resolver.empty()) usage("-a and -r go with -V");
    if (a.table.empty() == a.triples.empty()) usage("give either -t keytable or -d/-s/-k");
    return a;
}

dkim::SignConfig config_of(const Args& a) {
    dkim::SignConfig cfg;
    auto canons = split(a.canon, '/');
    auto header = canons.empty() ? std::nullopt : dkim::canon_from_name(canons[0]);
    auto body = canons.size() == 2 ? dkim::canon_from_name(canons[1]) : header;
    if (!header || !body || canons.size() > 2) usage("-c: simple or relaxed, or header/body");
    cfg.options.header_canon = *header;
    cfg.body_canon = *body;
    if (!a.headers.empty()) cfg.options.headers = split(a.headers, ':');
    if (!a.expire.empty()) {
        char* end = nullptr;
        unsigned long long s = std::strtoull(a.expire.c_str(), &end, 10);
        if (*end != '\0' || s == 0) usage("-x: a number of seconds");
        cfg.options.expire_after = s;
    }
    auto table = a.table.empty() ? dkim::KeyTable::parse(a.triples, "command line", ".")
                                 : dkim::KeyTable::load(a.table);
    if (!table) {
        std::fprintf(stderr, "filter-dkim: %s\n", table.error().text.c_str());
        std::exit(1);
    }
    cfg.keys = std::move(table).value();
    return cfg;
}

int verify(const Args& a) {
    uv_loop_t* loop = uv_default_loop();
    dkim::TxtResolver::Options o;
    o.servers = a.resolver;
    auto resolver = dkim::TxtResolver::create(loop, o);
    if (!resolver) {
        std::fprintf(stderr, "filter-dkim: %s\n", resolver.error().text.c_str());
        return 1;
    }
    int status = 0;
    {
        dkim::VerifyFilter filter(std::move(resolver).value(), {a.authserv_id, {}});
        status = filterlib::run(filter, loop, {"filter-dkim", 0, 1});
    }
    uv_run(loop, UV_RUN_NOWAIT);  // let the resolver's closed handles go
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    Args args = parse_args(argc, argv);
    if (args.verify) return verify(args);
    dkim::SignFilter filter(config_of(args));
    return filterlib::run(filter, nullptr, {"filter-dkim", 0, 1});
}
