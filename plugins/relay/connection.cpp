// plugins/relay/connection.cpp — see connection.hpp.
//
// The socket is non-blocking from the start so that connect(), reads, writes
// and the TLS handshake all wait in poll() with a deadline; nothing here can
// hang the delivery agent past its timeout.
#include "connection.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace postern::relay_plugin {

namespace {

constexpr size_t kReadChunk = 16384;

long long now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

std::string address_text(const sockaddr* sa) {
    char buf[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET)
        ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
    else if (sa->sa_family == AF_INET6)
        ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
    return buf;
}

// The most useful OpenSSL reason: a failed verification names the cause.
std::string ssl_reason(SSL* ssl) {
    long verify = SSL_get_verify_result(ssl);
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (verify != X509_V_OK) return std::string("certificate: ") + X509_verify_cert_error_string(verify);
    if (e == 0) return "connection closed";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

struct AddrInfoFree {
    void operator()(addrinfo* a) const { ::freeaddrinfo(a); }
};

// One non-blocking connect, bounded by the deadline.
util::Fd connect_one(const addrinfo* ai, long long deadline, std::string* error) {
    util::Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) {
        *error = std::string("socket: ") + std::strerror(errno);
        return {};
    }
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0) return fd;
    if (errno != EINPROGRESS) {
        *error = std::strerror(errno);
        return {};
    }
    pollfd p{fd.get(), POLLOUT, 0};
    int left = static_cast<int>(std::max(0LL, deadline - now_ms()));
    int n;
    while ((n = ::poll(&p, 1, left)) < 0 && errno == EINTR) left = static_cast<int>(std::max(0LL, deadline - now_ms()));
    if (n == 0) {
        *error = "connection timed out";
        return {};
    }
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (n < 0 || ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
        *error = std::strerror(n < 0 ? errno : soerr ? soerr : errno);
        return {};
    }
    return fd;
}

}  // namespace

std::unique_ptr<Connection> Connection::open(const std::string& host, int port, int timeout_seconds,
                                             std::string* error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    std::string service = std::to_string(port);
    int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
    if (rc != 0) {
        *error = host + ": host lookup failed: " + ::gai_strerror(rc);
        return nullptr;
    }
    std::unique_ptr<addrinfo, AddrInfoFree> list(res);
    // The whole attempt over every address shares one timeout: a host with
    // many dead addresses must not multiply it.
    long long deadline = now_ms() + timeout_seconds * 1000LL;
    std::string last = "no address";
    std::string last_addr;
    for (const addrinfo* ai = list.get(); ai; ai = ai->ai_next) {
        last_addr = address_text(ai->ai_addr);
        util::Fd fd = connect_one(ai, deadline, &last);
        if (fd) {
            auto c = std::make_unique<Connection>(Key{}, std::move(fd), host + " [" + last_addr + "]");
            c->set_timeout(timeout_seconds);
            return c;
        }
        if (now_ms() >= deadline) break;
    }
    *error = last_addr.empty() ? host + ": " + last
                               : host + " [" + last_addr + "]: connect to port " + service + ": " + last;
    return nullptr;
}

bool Connection::wait(short events, long long deadline, std::string* error) {
    pollfd p{fd_.get(), events, 0};
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            *error = "timed out";
            return false;
        }
        int n = ::poll(&p, 1, static_cast<int>(left));
        if (n > 0) return true;
        if (n < 0 && errno != EINTR) {
            *error = std::string("poll: ") + std::strerror(errno);
            return false;
        }
    }
}

bool Connection::start_tls(const TlsPolicy& policy, std::string* error) {
    ctx_.reset(SSL_CTX_new(TLS_client_method()));
    if (!ctx_) {
        *error = "TLS setup failed";
        return false;
    }
    SSL_CTX_set_min_proto_version(ctx_.get(), TLS1_2_VERSION);
    if (policy.verify) {
        SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
        int ok = policy.ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx_.get())
                                        : SSL_CTX_load_verify_locations(ctx_.get(), policy.ca_file.c_str(), nullptr);
        if (ok != 1) {
            ERR_clear_error();
            *error = "cannot load CA certificates" + (policy.ca_file.empty() ? "" : " from " + policy.ca_file);
            return false;
        }
    } else {
        SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_NONE, nullptr);
    }
    ssl_.reset(SSL_new(ctx_.get()));
    if (!ssl_ || SSL_set_fd(ssl_.get(), fd_.get()) != 1) {
        *error = "TLS setup failed";
        return false;
    }
    if (!policy.host_is_ip) SSL_set_tlsext_host_name(ssl_.get(), policy.host.c_str());
    if (policy.verify) {
        int ok = policy.host_is_ip
                     ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_.get()), policy.host.c_str())
                     : SSL_set1_host(ssl_.get(), policy.host.c_str());
        if (ok != 1) {
            *error = "TLS setup failed: bad host name for verification";
            return false;
        }
    }
    long long deadline = now_ms() + timeout_ms_;
    for (;;) {
        ERR_clear_error();
        int rc = SSL_connect(ssl_.get());
        if (rc == 1) return true;
        int e = SSL_get_error(ssl_.get(), rc);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (!wait(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, error)) {
                *error = "TLS handshake " + *error;
                return false;
            }
            continue;
        }
        *error = "TLS handshake failed: " + ssl_reason(ssl_.get());
        return false;
    }
}

bool Connection::send(std::string_view bytes, std::string* error) {
    long long deadline = now_ms() + timeout_ms_;
    while (!bytes.empty()) {
        ssize_t n;
        short want = POLLOUT;
        if (ssl_) {
            ERR_clear_error();
            int chunk = static_cast<int>(std::min<size_t>(bytes.size(), 1 << 20));
            int rc = SSL_write(ssl_.get(), bytes.data(), chunk);
            if (rc > 0) {
                n = rc;
            } else {
                int e = SSL_get_error(ssl_.get(), rc);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                    *error = "write failed: " + ssl_reason(ssl_.get());
                    return false;
                }
                want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
                n = -1;
            }
        } else {
            n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                *error = std::string("write failed: ") + std::strerror(errno);
                return false;
            }
        }
        if (n > 0) {
            bytes.remove_prefix(static_cast<size_t>(n));
            continue;
        }
        if (!wait(want, deadline, error)) {
            *error = "write " + *error;
            return false;
        }
    }
    return true;
}

bool Connection::fill(long long deadline, std::string* error) {
    char buf[kReadChunk];
    for (;;) {
        short want = POLLIN;
        if (ssl_) {
            ERR_clear_error();
            int rc = SSL_read(ssl_.get(), buf, sizeof buf);
            if (rc > 0) {
                inbuf_.append(buf, static_cast<size_t>(rc));
                return true;
            }
            int e = SSL_get_error(ssl_.get(), rc);
            if (e == SSL_ERROR_ZERO_RETURN) {
                *error = "connection closed by server";
                return false;
            }
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                *error = "read failed: " + ssl_reason(ssl_.get());
                return false;
            }
            if (e == SSL_ERROR_WANT_WRITE) want = POLLOUT;
        } else {
            ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
            if (n > 0) {
                inbuf_.append(buf, static_cast<size_t>(n));
                return true;
            }
            if (n == 0) {
                *error = "connection closed by server";
                return false;
            }
            if (errno != EAGAIN && errno != EINTR) {
                *error = std::string("read failed: ") + std::strerror(errno);
                return false;
            }
        }
        if (!wait(want, deadline, error)) {
            *error = "no reply: " + *error;
            return false;
        }
    }
}

bool Connection::read_reply(relay::Reply* reply, std::string* error) {
    relay::ReplyParser parser;
    long long deadline = now_ms() + timeout_ms_;
    for (;;) {
        size_t used = 0;
        auto st = parser.feed(inbuf_, &used);
        inbuf_.erase(0, used);
        if (st == relay::ReplyParser::Status::Done) {
            *reply = parser.reply();
            return true;
        }
        if (st == relay::ReplyParser::Status::Error) {
            *error = "bad reply: " + parser.error();
            return false;
        }
        if (!fill(deadline, error)) return false;
    }
}

}  // namespace postern::relay_plugin
