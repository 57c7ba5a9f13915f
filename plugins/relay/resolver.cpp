// plugins/relay/resolver.cpp — see resolver.hpp.
#include "resolver.hpp"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>

namespace postern::relay_plugin {

namespace {

constexpr int kTries = 3;
constexpr int kMaxTryMs = 5000;

long long now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

ares_channel chan(void* p) { return static_cast<ares_channel>(p); }

}  // namespace

struct Resolver::Answer {
    bool done = false;
    int status = ARES_ETIMEOUT;
    std::vector<unsigned char> bytes;
};

std::unique_ptr<Resolver> Resolver::create(const std::string& servers, int timeout_seconds, std::string* error) {
    static std::once_flag once;
    static int init_status = ARES_SUCCESS;
    std::call_once(once, [] { init_status = ares_library_init(ARES_LIB_INIT_ALL); });
    if (init_status != ARES_SUCCESS) {
        *error = std::string("DNS: ") + ares_strerror(init_status);
        return nullptr;
    }
    auto r = std::make_unique<Resolver>(Key{});
    r->timeout_ms_ = timeout_seconds * 1000;
    ares_options opts{};
    opts.flags = ARES_FLAG_NOSEARCH;
    opts.timeout = std::min(r->timeout_ms_, kMaxTryMs);
    opts.tries = kTries;
    opts.lookups = const_cast<char*>("b");  // DNS only, never /etc/hosts
    ares_channel ch = nullptr;
    int rc = ares_init_options(&ch, &opts, ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS);
    if (rc != ARES_SUCCESS) {
        *error = std::string("DNS: ") + ares_strerror(rc);
        return nullptr;
    }
    r->channel_ = ch;
    if (!servers.empty() && (rc = ares_set_servers_ports_csv(ch, servers.c_str())) != ARES_SUCCESS) {
        *error = "DNS: bad resolver list \"" + servers + "\": " + ares_strerror(rc);
        return nullptr;
    }
    return r;
}

Resolver::~Resolver() {
    if (channel_) ares_destroy(chan(channel_));
}

void Resolver::start(const std::string& name, int type, Answer* answer) {
    ares_query(
        chan(channel_), name.c_str(), ns_c_in, type,
        [](void* arg, int status, int, unsigned char* abuf, int alen) {
            auto* a = static_cast<Answer*>(arg);
            a->done = true;
            a->status = status;
            if (status == ARES_SUCCESS && abuf && alen > 0) a->bytes.assign(abuf, abuf + alen);
        },
        answer);
}

void Resolver::wait_all(long long deadline) {
    ares_channel ch = chan(channel_);
    for (;;) {
        ares_socket_t socks[ARES_GETSOCK_MAXNUM];
        int mask = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
        pollfd fds[ARES_GETSOCK_MAXNUM];
        int n = 0;
        for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
            short ev = (ARES_GETSOCK_READABLE(mask, i) ? POLLIN : 0) | (ARES_GETSOCK_WRITABLE(mask, i) ? POLLOUT : 0);
            if (ev) fds[n++] = pollfd{socks[i], ev, 0};
        }
        if (n == 0) {
            // No socket open: every query has answered, or c-ares gave up on
            // them. Cancel whatever might remain so that no callback can run
            // after the answers on the caller's stack are gone.
            ares_cancel(ch);
            return;
        }
        timeval tv{};
        timeval* next = ares_timeout(ch, nullptr, &tv);
        long long left = deadline - now_ms();
        if (left <= 0) {
            ares_cancel(ch);  // callbacks run now with ARES_ECANCELLED
            return;
        }
        long long wait = next ? std::min<long long>(left, tv.tv_sec * 1000LL + tv.tv_usec / 1000 + 1) : left;
        int got = ::poll(fds, static_cast<nfds_t>(n), static_cast<int>(wait));
        if (got <= 0) {
            ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts and retries
            continue;
        }
        for (int i = 0; i < n; ++i) {
            if (!fds[i].revents) continue;
            bool in = fds[i].revents & (POLLIN | POLLERR | POLLHUP);
            bool out = fds[i].revents & POLLOUT;
            ares_process_fd(ch, in ? fds[i].fd : ARES_SOCKET_BAD, out ? fds[i].fd : ARES_SOCKET_BAD);
        }
    }
}

namespace {

Resolver::Status status_of(int rc, const std::string& what, std::string* error) {
    switch (rc) {
    case ARES_SUCCESS: return Resolver::Status::Ok;
    case ARES_ENODATA: return Resolver::Status::NoData;
    case ARES_ENOTFOUND: return Resolver::Status::NotFound;
    default: *error = what + ": DNS lookup failed: " + ares_strerror(rc); return Resolver::Status::TempFail;
    }
}

}  // namespace

Resolver::Status Resolver::mx(const std::string& domain, std::vector<relay::MxRecord>* out, std::string* error) {
    Answer a;
    start(domain, ns_t_mx, &a);
    wait_all(now_ms() + timeout_ms_);
    Status s = status_of(a.status, domain + " MX", error);
    if (s != Status::Ok) return s;
    ares_mx_reply* list = nullptr;
    int rc = ares_parse_mx_reply(a.bytes.data(), static_cast<int>(a.bytes.size()), &list);
    if (rc != ARES_SUCCESS) return status_of(rc, domain + " MX", error);
    for (ares_mx_reply* r = list; r; r = r->next) out->push_back({r->priority, r->host ? r->host : ""});
    ares_free_data(list);
    return out->empty() ? Status::NoData : Status::Ok;
}

Resolver::Status Resolver::addresses(const std::string& host, int port, Family family, std::vector<Address>* out,
                                     std::string* error) {
    Answer a4, a6;
    if (family != Family::Inet6) start(host, ns_t_a, &a4);
    if (family != Family::Inet4) start(host, ns_t_aaaa, &a6);
    wait_all(now_ms() + timeout_ms_);
    constexpr int kMaxAddresses = 16;
    if (family != Family::Inet6 && a4.status == ARES_SUCCESS) {
        ares_addrttl ttls[kMaxAddresses];
        int n = kMaxAddresses;
        if (ares_parse_a_reply(a4.bytes.data(), static_cast<int>(a4.bytes.size()), nullptr, ttls, &n) == ARES_SUCCESS) {
            for (int i = 0; i < n; ++i) {
                Address ad;
                auto* sin = reinterpret_cast<sockaddr_in*>(&ad.sa);
                sin->sin_family = AF_INET;
                sin->sin_port = htons(static_cast<uint16_t>(port));
                sin->sin_addr = ttls[i].ipaddr;
                ad.len = sizeof(sockaddr_in);
                char buf[INET_ADDRSTRLEN];
                ad.text = ::inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
                out->push_back(std::move(ad));
            }
        }
    }
    if (family != Family::Inet4 && a6.status == ARES_SUCCESS) {
        ares_addr6ttl ttls[kMaxAddresses];
        int n = kMaxAddresses;
        if (ares_parse_aaaa_reply(a6.bytes.data(), static_cast<int>(a6.bytes.size()), nullptr, ttls, &n) ==
            ARES_SUCCESS) {
            for (int i = 0; i < n; ++i) {
                Address ad;
                auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ad.sa);
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port = htons(static_cast<uint16_t>(port));
                std::memcpy(&sin6->sin6_addr, &ttls[i].ip6addr, sizeof sin6->sin6_addr);
                ad.len = sizeof(sockaddr_in6);
                char buf[INET6_ADDRSTRLEN];
                ad.text = ::inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf);
                out->push_back(std::move(ad));
            }
        }
    }
    if (!out->empty()) return Status::Ok;
    // Nothing usable: the most telling of the two answers.
    int rc4 = family == Family::Inet6 ? ARES_ENODATA : a4.status;
    int rc6 = family == Family::Inet4 ? ARES_ENODATA : a6.status;
    if (rc4 == ARES_ENOTFOUND || rc6 == ARES_ENOTFOUND) return status_of(ARES_ENOTFOUND, host, error);
    if (rc4 != ARES_SUCCESS && rc4 != ARES_ENODATA) return status_of(rc4, host + " A", error);
    if (rc6 != ARES_SUCCESS && rc6 != ARES_ENODATA) return status_of(rc6, host + " AAAA", error);
    return Status::NoData;
}

}  // namespace postern::relay_plugin
