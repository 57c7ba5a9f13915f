// tls/context.hpp — ServerContext: the TLS settings of one listener.
//
// Built once per listener from its `pki`, `ca`, `verify`, `ciphers` and
// `protocols` options (config-grammar.md §3-4), then shared read-only by every
// Connection accepted on it, from any thread. Building it reads every file, so
// a bad certificate or key is a start-up error naming the file, never a
// handshake failure later.
//
// Certificate choice: with several pkis, the client's SNI name is matched, in
// pki order, against the names inside each certificate (subject CN and DNS
// subjectAltNames, `*.` wildcards) and, for 6.8 configurations, against the
// pki's own NAME. No SNI, or no match: the first pki.
//
// Defaults: TLS 1.2 and 1.3 only; forward-secret AEAD ciphers for TLS 1.2;
// no compression; no renegotiation; session tickets allowed.
//
// Depends on OpenSSL 3 (libssl, libcrypto).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tls/check.hpp"

struct ssl_ctx_st;

namespace postern::tls {

struct ServerOptions {
    std::vector<PkiFiles> pkis;  // one or more; the first is the default certificate
    std::string ca_file;         // CA bundle for client certificates ("" = none)
    // `verify`: a client certificate signed by ca_file is required; the
    // handshake fails without one. With a ca_file but no `verify`, a client
    // certificate is asked for but optional, and Connection::peer_verified()
    // tells whether it checked out.
    bool verify_client = false;
    // OpenSSL cipher list for TLS <= 1.2, or one of libtls' keywords:
    // "secure"/"default" (= ""), "compat"/"legacy", "insecure"/"all".
    std::string ciphers;
    // libtls protocol list: "tlsv1.2,tlsv1.3", "secure", "default", "all",
    // "legacy", "!tlsv1.2" (',' or ':' between items). "" = TLS 1.2 and 1.3.
    std::string protocols;
};

// The TLS versions a `protocols` string allows, as OpenSSL version numbers.
struct ProtocolRange {
    int min_version;  // e.g. TLS1_2_VERSION
    int max_version;  // e.g. TLS1_3_VERSION
};

// Parses a libtls protocol list. TLS 1.0 and 1.1 are recognised but never
// enabled (as in current libtls); a list that leaves nothing is an error:
//   protocols "tlsv1.1": no supported protocol left (TLS 1.2 and 1.3 are supported)
//   protocols "sslv3": unknown protocol "sslv3"
std::optional<ProtocolRange> parse_protocols(std::string_view text, std::string* error);

// The OpenSSL cipher list a `ciphers` string stands for.
std::string cipher_list(std::string_view text);

class ServerContext {
    struct Key {
        explicit Key() = default;
    };  // only create() makes one

public:
    struct State;  // the SSL_CTX and the loaded certificates, see context.cpp
    ServerContext(Key, std::shared_ptr<State> state);

    // nullptr on failure, with `error` naming the file or option and the
    // reason (OpenSSL's own text included where it has one).
    static std::unique_ptr<ServerContext> create(const ServerOptions& o, std::string* error);
    ~ServerContext();

    ServerContext(const ServerContext&) = delete;
    ServerContext& operator=(const ServerContext&) = delete;

    // The SSL_CTX, kept alive with everything its callbacks use for as long
    // as one copy of this pointer lives (Connections hold one, so reloading
    // the configuration may drop a ServerContext while sessions still run).
    std::shared_ptr<ssl_ctx_st> shared_ctx() const;

private:
    std::shared_ptr<State> state_;
};

}  // namespace postern::tls
