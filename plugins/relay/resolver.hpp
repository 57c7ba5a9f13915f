// plugins/relay/resolver.hpp — DNS for MX routing: MX, A and AAAA records
// through c-ares, answered from the system's resolvers (/etc/resolv.conf) or
// from the servers named by `mta resolver` (tests point it at a DNS server
// on loopback).
//
// The relay plugin runs in a delivery agent of its own, so lookups may block
// the caller; each one waits in poll() at most `timeout` seconds in all. The
// DNS answers are parsed by c-ares (bounded, fuzzed upstream); this file only
// reads the parsed records.
//
// Lookups never use search domains (MX hosts and recipient domains are
// absolute) and never read /etc/hosts: what routes mail is the DNS.
//
// Depends on: c-ares, mx.hpp (MxRecord).
#pragma once

#include <sys/socket.h>

#include <memory>
#include <string>
#include <vector>

#include "mx.hpp"

namespace postern::relay_plugin {

// One address to connect to, with its text for logs ("192.0.2.1", "2001:db8::1").
struct Address {
    sockaddr_storage sa{};
    socklen_t len = 0;
    std::string text;
};

// Which address families to use (`mta limit inet4|inet6`).
enum class Family { Any, Inet4, Inet6 };

class Resolver {
public:
    // `servers`: "" for the system's resolvers, else c-ares' list form
    // "ADDR[:PORT][,ADDR[:PORT]...]" ("[::1]:53" for IPv6).
    static std::unique_ptr<Resolver> create(const std::string& servers, int timeout_seconds, std::string* error);
    ~Resolver();
    Resolver(const Resolver&) = delete;
    Resolver& operator=(const Resolver&) = delete;

    // NoData: the name exists without records of that type (for MX: use the
    // implicit MX); NotFound: the name does not exist (NXDOMAIN); TempFail:
    // no answer (timeout, SERVFAIL, refused), *error says which.
    enum class Status { Ok, NoData, NotFound, TempFail };
    Status mx(const std::string& domain, std::vector<relay::MxRecord>* out, std::string* error);
    // IPv4 addresses first, then IPv6 ones, each with `port`.
    Status addresses(const std::string& host, int port, Family family, std::vector<Address>* out, std::string* error);

    struct Key {};
    explicit Resolver(Key) {}

private:
    struct Answer;
    void start(const std::string& name, int type, Answer* answer);
    // Run c-ares until every started query has answered or the deadline passed.
    void wait_all(long long deadline_ms);

    void* channel_ = nullptr;  // ares_channel, opaque here
    int timeout_ms_ = 0;
};

}  // namespace postern::relay_plugin
