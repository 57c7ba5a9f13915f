// Listening sockets; see listen.hpp.
#include "smtpd/listen.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "util/fd.hpp"

namespace postern::smtpd {
namespace {

bool is_ip(const std::string& s, int* family) {
    unsigned char buf[16];
    if (inet_pton(AF_INET, s.c_str(), buf) == 1) return *family = AF_INET, true;
    if (inet_pton(AF_INET6, s.c_str(), buf) == 1) return *family = AF_INET6, true;
    return false;
}

bool family_ok(const config::Listener& l, int family) {
    return l.family == config::Listener::Family::Any ||
           (l.family == config::Listener::Family::Inet4 && family == AF_INET) ||
           (l.family == config::Listener::Family::Inet6 && family == AF_INET6);
}

std::string ip_of(const sockaddr* sa) {
    char buf[INET6_ADDRSTRLEN] = "";
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
    return buf;
}

// Addresses of the interface called `name` (empty when there is none).
std::vector<std::string> interface_addresses(const std::string& name) {
    std::vector<std::string> out;
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0) return out;
    std::unique_ptr<ifaddrs, decltype(&freeifaddrs)> guard(list, freeifaddrs);
    for (ifaddrs* i = list; i; i = i->ifa_next) {
        if (!i->ifa_addr || name != i->ifa_name) continue;
        if (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6) continue;
        // Link-local IPv6 addresses need a scope to bind; skip them.
        if (i->ifa_addr->sa_family == AF_INET6 &&
            IN6_IS_ADDR_LINKLOCAL(&reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr))
            continue;
        out.push_back(ip_of(i->ifa_addr));
    }
    return out;
}

bool bind_one(const std::string& ip, int port, int* fd_out, std::string* error) {
    int family = AF_INET;
    is_ip(ip, &family);
    util::Fd fd(socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
        *error = std::string("socket: ") + strerror(errno);
        return false;
    }
    int on = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_storage ss{};
    socklen_t len;
    if (family == AF_INET) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(static_cast<uint16_t>(port));
        inet_pton(AF_INET, ip.c_str(), &sin->sin_addr);
        len = sizeof *sin;
    } else {
        setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(static_cast<uint16_t>(port));
        inet_pton(AF_INET6, ip.c_str(), &sin6->sin6_addr);
        len = sizeof *sin6;
    }
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd.get(), 511) != 0) {
        *error = strerror(errno);
        return false;
    }
    *fd_out = fd.release();
    return true;
}

}  // namespace

std::vector<std::string> resolve_listen_target(const config::Listener& l, std::string* error) {
    std::vector<std::string> out;
    int family = 0;
    auto add = [&](const std::string& ip) {
        int f = 0;
        if (is_ip(ip, &f) && family_ok(l, f)) out.push_back(ip);
    };
    if (is_ip(l.on, &family)) {
        add(l.on);
    } else if (l.on == "localhost") {
        add("127.0.0.1");
        add("::1");
    } else if (auto addrs = interface_addresses(l.on); !addrs.empty()) {
        for (auto& a : addrs) add(a);
    } else {
        addrinfo hints{}, *res = nullptr;
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(l.on.c_str(), nullptr, &hints, &res) == 0) {
            std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
            for (addrinfo* a = res; a; a = a->ai_next) add(ip_of(a->ai_addr));
        }
    }
    if (out.empty())
        *error = "'" + l.on + "' is neither an address, an interface with addresses nor a host name that resolves";
    return out;
}

bool open_listeners(const config::Config& config, std::vector<ListenSocket>* out, std::vector<std::string>* errors) {
    size_t before = errors->size();
    for (const auto& l : config.listeners) {
        if (l.socket) continue;  // local enqueue: see posternd(8), not supported yet
        std::string err;
        auto addrs = resolve_listen_target(l, &err);
        if (addrs.empty()) {
            errors->push_back(config::format({l.where, "listen on " + l.on + ": " + err}));
            continue;
        }
        for (const auto& ip : addrs) {
            ListenSocket s;
            s.listener = &l;
            s.address = (ip.find(':') != std::string::npos ? "[" + ip + "]" : ip) + ":" + std::to_string(l.port);
            if (!bind_one(ip, l.port, &s.fd, &err)) {
                errors->push_back(config::format({l.where, "listen on " + s.address + ": " + err}));
                continue;
            }
            out->push_back(s);
        }
    }
    if (errors->size() != before) {
        close_listeners(*out);
        return false;
    }
    return true;
}

void close_listeners(std::vector<ListenSocket>& sockets) {
    for (auto& s : sockets)
        if (s.fd >= 0) ::close(s.fd);
    sockets.clear();
}

std::vector<std::string> local_addresses() {
    std::vector<std::string> out;
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0) return out;
    std::unique_ptr<ifaddrs, decltype(&freeifaddrs)> guard(list, freeifaddrs);
    for (ifaddrs* i = list; i; i = i->ifa_next)
        if (i->ifa_addr && (i->ifa_addr->sa_family == AF_INET || i->ifa_addr->sa_family == AF_INET6))
            out.push_back(ip_of(i->ifa_addr));
    return out;
}

}  // namespace postern::smtpd
