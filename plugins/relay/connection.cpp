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
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>

namespace postern::relay_plugin {

namespace {

constexpr size_t kReadChunk = 16384;
constexpr int kConnectTimeout = 30;  // seconds for all of one host's addresses, as Postfix's smtp_connect_timeout

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

struct BioFree {
    void operator()(BIO* b) const { BIO_free(b); }
};

// The relay's `pki`: a certificate chain and its key, in PEM, from memory
// (the daemon read them as root; this process could not).
bool use_client_certificate(SSL_CTX* ctx, const std::string& cert_pem, const std::string& key_pem) {
    std::unique_ptr<BIO, BioFree> certs(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
    std::unique_ptr<BIO, BioFree> key(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
    if (!certs || !key) return false;
    X509* leaf = PEM_read_bio_X509(certs.get(), nullptr, nullptr, nullptr);
    if (!leaf) return false;
    bool ok = SSL_CTX_use_certificate(ctx, leaf) == 1;
    X509_free(leaf);
    while (ok) {
        X509* extra = PEM_read_bio_X509(certs.get(), nullptr, nullptr, nullptr);
        if (!extra) break;
        ok = SSL_CTX_add_extra_chain_cert(ctx, extra) == 1;  // takes ownership on success
        if (!ok) X509_free(extra);
    }
    ERR_clear_error();  // the end of the PEM list is reported as an error
    EVP_PKEY* pkey = ok ? PEM_read_bio_PrivateKey(key.get(), nullptr, nullptr, nullptr) : nullptr;
    ok = pkey && SSL_CTX_use_PrivateKey(ctx, pkey) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(pkey);
    return ok;
}

struct AddrInfoFree {
    void operator()(addrinfo* a) const { ::freeaddrinfo(a); }
};

// Bind to the source address `src` when it is of the target's family;
// false (with *error) when it is not, or when the bind fails.
bool bind_source(int fd, const Address& target, const std::string& src, std::string* error) {
    if (src.empty()) return true;
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (target.sa.ss_family == AF_INET) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        sin->sin_family = AF_INET;
        if (::inet_pton(AF_INET, src.c_str(), &sin->sin_addr) == 1) len = sizeof *sin;
    } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
        sin6->sin6_family = AF_INET6;
        if (::inet_pton(AF_INET6, src.c_str(), &sin6->sin6_addr) == 1) len = sizeof *sin6;
    }
    if (len == 0) {
        *error = "source address " + src + " is not of this address's family";
        return false;
    }
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        *error = "bind to source address " + src + ": " + std::strerror(errno);
        return false;
    }
    return true;
}

// One non-blocking connect, bounded by the deadline.
util::Fd connect_one(const Address& a, const std::string& src, long long deadline, std::string* error) {
    util::Fd fd(::socket(a.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        *error = std::string("socket: ") + std::strerror(errno);
        return {};
    }
    if (!bind_source(fd.get(), a, src, error)) return {};
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a.sa), a.len) == 0) return fd;
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

// A smarthost's name is looked up the system's way (getaddrinfo: /etc/hosts,
// then DNS), as an administrator who wrote it expects.
std::unique_ptr<Connection> Connection::open(const std::string& host, int port, const std::string& src,
                                             int timeout_seconds, std::string* error) {
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
    std::vector<Address> addresses;
    for (const addrinfo* ai = list.get(); ai; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
        Address a;
        std::memcpy(&a.sa, ai->ai_addr, ai->ai_addrlen);
        a.len = ai->ai_addrlen;
        a.text = address_text(ai->ai_addr);
        addresses.push_back(std::move(a));
    }
    return open(host, addresses, src, timeout_seconds, error);
}

std::unique_ptr<Connection> Connection::open(const std::string& host, const std::vector<Address>& addresses,
                                             const std::string& src, int timeout_seconds, std::string* error) {
    // The whole attempt over every address shares one timeout: a host with
    // many dead addresses must not multiply it.
    // Connecting is bounded apart from the per-command timeout: a dead host
    // must not hold the agent for minutes before the next one is tried.
    long long deadline = now_ms() + std::min(timeout_seconds, kConnectTimeout) * 1000LL;
    std::string last = "no address";
    std::string last_addr;
    int port = 0;
    for (const Address& a : addresses) {
        last_addr = a.text;
        port = ntohs(a.sa.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in*>(&a.sa)->sin_port
                                               : reinterpret_cast<const sockaddr_in6*>(&a.sa)->sin6_port);
        util::Fd fd = connect_one(a, src, deadline, &last);
        if (fd) {
            auto c = std::make_unique<Connection>(Key{}, std::move(fd), host, a.text);
            c->set_timeout(timeout_seconds);
            return c;
        }
        if (now_ms() >= deadline) break;
    }
    *error = last_addr.empty() ? host + ": " + last
                               : host + " [" + last_addr + "]: connect to port " + std::to_string(port) + ": " + last;
    return nullptr;
}

// A UNIX socket connects at once or fails at once (EAGAIN: its backlog is
// full); the same bounded wait covers the rare in-progress case.
std::unique_ptr<Connection> Connection::open_unix(const std::string& path, int timeout_seconds, std::string* error) {
    Address a;
    auto* sun = reinterpret_cast<sockaddr_un*>(&a.sa);
    if (path.empty() || path.size() >= sizeof sun->sun_path) {
        *error = path + ": socket path too long";
        return nullptr;
    }
    sun->sun_family = AF_UNIX;
    std::memcpy(sun->sun_path, path.data(), path.size());
    a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    long long deadline = now_ms() + std::min(timeout_seconds, kConnectTimeout) * 1000LL;
    std::string why;
    util::Fd fd = connect_one(a, "", deadline, &why);
    if (!fd) {
        *error = path + ": connect: " + why;
        return nullptr;
    }
    auto c = std::make_unique<Connection>(Key{}, std::move(fd), "", "", path);
    c->set_timeout(timeout_seconds);
    return c;
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

bool Connection::quiet() const {
    if (!inbuf_.empty() || (ssl_ && SSL_pending(ssl_.get()) > 0)) return false;
    pollfd p{fd_.get(), static_cast<short>(POLLIN | POLLRDHUP), 0};
    int n;
    while ((n = ::poll(&p, 1, 0)) < 0 && errno == EINTR) {
    }
    return n == 0;
}

std::string Connection::tls_description() const {
    if (!ssl_) return "";
    return std::string(SSL_get_version(ssl_.get())) + " " + SSL_get_cipher_name(ssl_.get());
}

bool Connection::start_tls(const TlsPolicy& policy, std::string* error) {
    ctx_.reset(SSL_CTX_new(TLS_client_method()));
    if (!ctx_) {
        *error = "TLS setup failed";
        return false;
    }
    SSL_CTX_set_min_proto_version(ctx_.get(), policy.min_version ? policy.min_version : TLS1_2_VERSION);
    if (policy.max_version) SSL_CTX_set_max_proto_version(ctx_.get(), policy.max_version);
    if (!policy.ciphers.empty() && SSL_CTX_set_cipher_list(ctx_.get(), policy.ciphers.c_str()) != 1) {
        ERR_clear_error();
        *error = "TLS setup failed: no usable cipher in \"" + policy.ciphers + "\"";
        return false;
    }
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
    if (!policy.cert_pem.empty() && !use_client_certificate(ctx_.get(), policy.cert_pem, policy.key_pem)) {
        ERR_clear_error();
        *error = "cannot use the client certificate (relay pki)";
        return false;
    }
    ssl_.reset(SSL_new(ctx_.get()));
    if (!ssl_ || SSL_set_fd(ssl_.get(), fd_.get()) != 1) {
        *error = "TLS setup failed";
        return false;
    }
    if (!policy.host_is_ip) SSL_set_tlsext_host_name(ssl_.get(), policy.host.c_str());
    if (policy.verify) {
        int ok = policy.host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_.get()), policy.host.c_str())
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
