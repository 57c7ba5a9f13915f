// dkim/dns.hpp — filter-dkim's DNS: TXT lookups (the DKIM keys at
// SELECTOR._domainkey.DOMAIN) through c-ares on the filter's libuv loop.
//
// Why asynchronous: one filter process serves every session, and a key
// lookup can take seconds (a slow or dead name server); a blocking lookup
// would hold up every other message. c-ares says which sockets to watch
// (its socket state callback: a uv_poll_t each) and when it must be woken
// for retransmissions and timeouts (one uv_timer_t, set from ares_timeout
// after each step); both feed ares_process_fd.
//
// Each lookup ends in exactly one call of its `done`, from the loop, never
// from within lookup_txt: the records found, NotFound (the name does not
// exist, or has no TXT record: RFC 6376 6.1.2's "no key" permanent
// failure), or TempFail (no usable answer now: timeout, SERVFAIL, refused).
// A lookup still running when the resolver is destroyed gets no call.
// `done` may start lookups; it must not destroy the resolver. The
// resolver's libuv handles are closed by its destructor and freed by their
// close callbacks: run the loop once more afterwards.
//
// The answers are parsed by c-ares (bounded, fuzzed upstream). Lookups never
// use search domains (key names are absolute). An answer too large for UDP
// is asked again over TCP by c-ares.
//
// Depends on: c-ares, libuv, dkim/result.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "dkim/result.hpp"

namespace postern::dkim {

// Each TXT record of the name, its character-strings joined (a key longer
// than 255 bytes is published as several strings: RFC 6376 3.6.2.2).
struct TxtFound {
    std::vector<std::string> records;
};
struct TxtNotFound {};
struct TxtTempFail {
    std::string text;  // c-ares' words, for the log
};
using TxtResult = std::variant<TxtFound, TxtNotFound, TxtTempFail>;

// The records of a TXT answer c-ares accepted (what a lookup reports for
// it): parsed by c-ares, each record's strings joined. Public for
// tests/fuzz/fuzz_dns.cpp, which feeds it any bytes as an answer.
TxtResult txt_answer_records(const unsigned char* abuf, int alen);

struct ResolverError {
    std::string text;
};

class TxtResolver {
public:
    struct Options {
        // "" for the system's resolvers (/etc/resolv.conf), else one server
        // or a list in c-ares' form "IP[:PORT][,IP[:PORT]...]" ("[::1]:53"
        // for IPv6): tests point it at a DNS server on loopback.
        std::string servers;
        // Per try; c-ares doubles it on each round of retries, so the
        // defaults give a lookup at most 2 + 4 s per server.
        std::chrono::milliseconds timeout{2000};
        int tries = 2;
    };
    using Done = std::function<void(TxtResult)>;

    static Result<std::unique_ptr<TxtResolver>, ResolverError> create(uv_loop_t* loop, Options options);
    ~TxtResolver();
    TxtResolver(const TxtResolver&) = delete;
    TxtResolver& operator=(const TxtResolver&) = delete;

    void lookup_txt(std::string_view name, Done done);
    // Lookups started and not yet reported.
    std::size_t running() const;

    struct Impl;
    // Made by create() only: a channel that failed to start is never used.
    class Key {
        friend class TxtResolver;
        Key() = default;
    };
    TxtResolver(Key, std::unique_ptr<Impl> impl);

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace postern::dkim
