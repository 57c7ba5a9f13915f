// Listening sockets; see listen.hpp.
#include "smtpd/listen.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>

#include "smtpd/interfaces.hpp"
#include "util/fd.hpp"
#include "util/log.hpp"

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

std::string errno_text(const std::string& what) { return what + ": " + strerror(errno); }

// A socket file left by a daemon that died is in the way of bind(); one that
// still answers belongs to a running daemon and is left alone.
bool remove_stale_socket(const std::string& path, const sockaddr_un& sun, std::string* error) {
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return true;
        *error = errno_text(path);
        return false;
    }
    if (!S_ISSOCK(st.st_mode)) {
        *error = path + " exists and is not a socket";
        return false;
    }
    util::Fd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && connect(probe.get(), reinterpret_cast<const sockaddr*>(&sun), sizeof sun) == 0) {
        *error = "another posternd is already listening on " + path;
        return false;
    }
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
        *error = errno_text("remove stale socket " + path);
        return false;
    }
    return true;
}

// Others need search permission on the socket's folder to reach it. The
// control socket's folder is made 0750 for the control socket alone; that
// socket keeps its own 0660 mode, so opening the folder's search bit (not
// its listing) gives nobody the control socket.
void open_folder_to_all(const std::string& path) {
    size_t slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0 || (st.st_mode & S_IXOTH)) return;
    if (chmod(dir.c_str(), (st.st_mode & 07777) | S_IXOTH) != 0)
        log::warn(log::Line("local socket folder closed to other users; only its owner and group can submit")
                      .kv("path", dir)
                      .kv("error", strerror(errno)));
}

// bind_tcp, tried again while the address is in use, for kBindRetryMs: a
// restart right after a crash may find the port still held while the
// dead daemon's processes are torn down, and must not fail for it (the
// listeners are closed on exec, so no agent or filter of its keeps them).
// Another program on the port still fails the start, later.
bool bind_retrying(const std::string& ip, int port, const std::string& address, int* fd, std::string* error) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::milliseconds(kBindRetryMs);
    for (bool told = false;; told = true) {
        int err = 0;
        if (bind_tcp(ip, port, fd, error, &err)) return true;
        if (err != EADDRINUSE || Clock::now() >= deadline) return false;
        if (!told)
            log::warn(log::Line("listen address in use; trying again")
                          .kv("address", address)
                          .kv("for_ms", static_cast<long long>(kBindRetryMs)));
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

}  // namespace

bool bind_tcp(const std::string& ip, int port, int* fd_out, std::string* error, int* error_number) {
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
        if (error_number) *error_number = errno;
        *error = strerror(errno);
        return false;
    }
    *fd_out = fd.release();
    return true;
}

bool open_local_socket(const config::Config& config, const std::string& path, std::vector<ListenSocket>* out,
                       std::string* error) {
    const config::Listener* listener = nullptr;
    for (const auto& l : config.listeners)
        if (l.socket) listener = &l;
    if (!listener) return true;
    sockaddr_un sun{};
    if (path.empty() || path.size() >= sizeof sun.sun_path) {
        *error = "local socket path too long (max " + std::to_string(sizeof sun.sun_path - 1) + " bytes): " + path;
        return false;
    }
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, path.data(), path.size());
    if (!remove_stale_socket(path, sun, error)) return false;
    util::Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
        *error = errno_text("socket");
        return false;
    }
    // bind() creates the file with the umask applied: chmod afterwards sets
    // the mode whatever the umask was.
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) {
        *error = errno_text("bind " + path);
        return false;
    }
    if (chmod(path.c_str(), 0666) != 0 || listen(fd.get(), 511) != 0) {
        *error = errno_text(path);
        unlink(path.c_str());
        return false;
    }
    open_folder_to_all(path);
    ListenSocket s;
    s.listener = listener;
    s.address = "unix:" + path;
    s.local = true;
    s.fd = fd.release();
    out->push_back(s);
    return true;
}

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
    } else if (auto addrs = interface_target_addresses(l); !addrs.empty()) {
        for (auto& a : addrs) add(a);
    } else if (std::string hint = interface_name_hint(l); !hint.empty()) {
        *error = hint;  // a group, or a BSD name: no host name lookup, which would only time out
        return out;
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
        if (l.socket) continue;  // a UNIX socket: open_local_socket
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
            if (!bind_retrying(ip, l.port, s.address, &s.fd, &err)) {
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
