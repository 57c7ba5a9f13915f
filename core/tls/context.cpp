// tls/context.cpp — building a listener's SSL_CTX and choosing its
// certificate by SNI.

#include "tls/context.hpp"
#include "util/ascii.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>

namespace postern::tls {

namespace {

// libtls' "secure" set, spelled for OpenSSL (which has no "AEAD" alias):
// TLS 1.2 suites with forward secrecy and authenticated encryption. TLS 1.3
// suites are configured apart by OpenSSL and are all of that kind already.
constexpr const char* kSecureCiphers = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20";
constexpr const char* kCompatCiphers = "HIGH:!aNULL";
constexpr const char* kInsecureCiphers = "ALL:!aNULL:!eNULL";

// The session id context binds cached sessions to this daemon's contexts;
// OpenSSL refuses resumption with client certificates without one.
constexpr unsigned char kSessionIdContext[] = "postern";

enum : unsigned { kTls12 = 1, kTls13 = 2, kTlsSupported = kTls12 | kTls13 };

using util::iequals;

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// The protocol bits one libtls item names; nullopt when unknown.
std::optional<unsigned> protocol_bits(std::string_view item) {
    if (iequals(item, "all") || iequals(item, "legacy") || iequals(item, "secure") || iequals(item, "default"))
        return kTlsSupported;
    if (iequals(item, "tlsv1.2")) return kTls12;
    if (iequals(item, "tlsv1.3")) return kTls13;
    // Known names of versions we never enable: they parse, and add nothing.
    if (iequals(item, "tlsv1") || iequals(item, "tlsv1.0") || iequals(item, "tlsv1.1")) return 0u;
    return std::nullopt;
}

// Accepts any client certificate so the handshake goes on; the chain's real
// verdict stays in SSL_get_verify_result() for peer_verified(). Used when a
// listener has a `ca` but no `verify`.
int accept_any_certificate(int, X509_STORE_CTX*) { return 1; }

}  // namespace

std::optional<ProtocolRange> parse_protocols(std::string_view text, std::string* error) {
    unsigned mask = 0;
    bool any = false;
    std::string_view rest = text;
    // Each round consumes one item and its separator, so the text bounds it.
    while (!rest.empty()) {
        size_t sep = rest.find_first_of(",:");
        std::string_view item = trim(rest.substr(0, sep));
        rest = sep == std::string_view::npos ? std::string_view() : rest.substr(sep + 1);
        if (item.empty()) continue;
        bool negate = item.front() == '!' || item.front() == '-';
        if (negate) item.remove_prefix(1);
        auto bits = protocol_bits(item);
        if (!bits) {
            *error = "protocols \"" + std::string(text) + "\": unknown protocol \"" + std::string(item) + "\"";
            return std::nullopt;
        }
        if (negate && !any) mask = kTlsSupported;  // "!tlsv1.2" alone means all but 1.2
        mask = negate ? (mask & ~*bits) : (mask | *bits);
        any = true;
    }
    if (!any) mask = kTlsSupported;
    switch (mask) {
    case kTls12: return ProtocolRange{TLS1_2_VERSION, TLS1_2_VERSION};
    case kTls13: return ProtocolRange{TLS1_3_VERSION, TLS1_3_VERSION};
    case kTlsSupported: return ProtocolRange{TLS1_2_VERSION, TLS1_3_VERSION};
    default:
        *error = "protocols \"" + std::string(text) + "\": no supported protocol left (TLS 1.2 and 1.3 are supported)";
        return std::nullopt;
    }
}

std::string cipher_list(std::string_view text) {
    text = trim(text);
    if (text.empty() || iequals(text, "secure") || iequals(text, "default")) return kSecureCiphers;
    if (iequals(text, "compat") || iequals(text, "legacy")) return kCompatCiphers;
    if (iequals(text, "insecure") || iequals(text, "all")) return kInsecureCiphers;
    return std::string(text);
}

// One loaded `pki`.
struct Pki {
    std::string name;
    X509Ptr cert;
    X509StackPtr chain;
    PkeyPtr key;
};

struct ServerContext::State {
    std::vector<Pki> pkis;
    SslCtxPtr ctx;  // declared last: freed first, before what its callbacks use

    // The pki serving `sni`: the first whose certificate names it, else the
    // first whose NAME is it (6.8), else the first.
    size_t choose(std::string_view sni) const {
        constexpr unsigned flags = X509_CHECK_FLAG_ALWAYS_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS;
        for (size_t i = 0; i < pkis.size(); ++i) {
            if (X509_check_host(pkis[i].cert.get(), sni.data(), sni.size(), flags, nullptr) == 1) return i;
        }
        for (size_t i = 0; i < pkis.size(); ++i) {
            if (iequals(pkis[i].name, sni)) return i;
        }
        return 0;
    }
};

namespace {

// OpenSSL calls this after reading the ClientHello (SNI known) and before it
// picks a cipher, which depends on the certificate's key type. The first pki
// is the context's own; another replaces it on this connection only.
int select_certificate(SSL* ssl, void* arg) {
    const auto* state = static_cast<const ServerContext::State*>(arg);
    const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (sni == nullptr || state->pkis.size() < 2) return 1;
    size_t i = state->choose(sni);
    if (i == 0) return 1;
    const Pki& p = state->pkis[i];
    // Clear first: a pki with another key type would otherwise sit beside the
    // default one, and OpenSSL could still pick the default's.
    SSL_certs_clear(ssl);
    return SSL_use_cert_and_key(ssl, p.cert.get(), p.key.get(), p.chain.get(), 1) == 1 ? 1 : 0;
}

std::optional<Pki> load_pki(const PkiFiles& files, std::string* error) {
    if (files.cert_file.empty()) {
        *error = "pki " + files.name + ": no certificate file";
        return std::nullopt;
    }
    if (files.key_file.empty()) {
        *error = "pki " + files.name + ": no key file";
        return std::nullopt;
    }
    auto certs = load_certificates(files.cert_file, error);
    if (!certs) return std::nullopt;
    PkeyPtr key = load_private_key(files.key_file, error);
    if (!key) return std::nullopt;
    if (auto m = key_mismatch(files, certs->leaf.get(), key.get())) {
        *error = *m;
        return std::nullopt;
    }
    return Pki{files.name, std::move(certs->leaf), std::move(certs->chain), std::move(key)};
}

bool set_protocols_and_ciphers(SSL_CTX* ctx, const ServerOptions& o, std::string* error) {
    auto range = parse_protocols(o.protocols, error);
    if (!range) return false;
    if (SSL_CTX_set_min_proto_version(ctx, range->min_version) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, range->max_version) != 1) {
        *error = "protocols \"" + o.protocols + "\": " + openssl_errors();
        return false;
    }
    std::string list = cipher_list(o.ciphers);
    if (SSL_CTX_set_cipher_list(ctx, list.c_str()) != 1) {
        *error = "ciphers \"" + o.ciphers + "\": " + openssl_errors();
        return false;
    }
    return true;
}

bool set_client_verification(SSL_CTX* ctx, const ServerOptions& o, std::string* error) {
    if (o.ca_file.empty()) {
        if (!o.verify_client) return true;
        *error = "verify needs a ca to check client certificates against";
        return false;
    }
    // Our loader first, for its plain messages about a bad bundle.
    if (!load_certificates(o.ca_file, error)) return false;
    if (SSL_CTX_load_verify_file(ctx, o.ca_file.c_str()) != 1) {
        *error = o.ca_file + ": " + openssl_errors();
        return false;
    }
    // Tells clients which CAs we accept, so one with several certificates
    // sends the right one.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.ca_file.c_str());
    if (names == nullptr) {
        *error = o.ca_file + ": " + openssl_errors();
        return false;
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    if (o.verify_client)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT | SSL_VERIFY_CLIENT_ONCE, nullptr);
    else SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, accept_any_certificate);
    return true;
}

}  // namespace

std::unique_ptr<ServerContext> ServerContext::create(const ServerOptions& o, std::string* error) {
    ERR_clear_error();
    if (o.pkis.empty()) {
        *error = "no pki: a tls or smtps listener needs at least one";
        return nullptr;
    }
    auto state = std::make_shared<State>();
    for (const PkiFiles& files : o.pkis) {
        auto pki = load_pki(files, error);
        if (!pki) return nullptr;
        state->pkis.push_back(std::move(*pki));
    }
    state->ctx.reset(SSL_CTX_new(TLS_server_method()));
    SSL_CTX* ctx = state->ctx.get();
    if (ctx == nullptr) {
        *error = "cannot create a TLS context: " + openssl_errors();
        return nullptr;
    }
    // Compression leaks secrets (CRIME); renegotiation only brings DoS and
    // confused-deputy bugs to SMTP, which never needs it.
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    // Idle sessions (most SMTP time is waiting) give their buffers back.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_dh_auto(ctx, 1);
    SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof kSessionIdContext - 1);
    if (!set_protocols_and_ciphers(ctx, o, error)) return nullptr;
    const Pki& first = state->pkis.front();
    if (SSL_CTX_use_cert_and_key(ctx, first.cert.get(), first.key.get(), first.chain.get(), 1) != 1) {
        *error = "pki " + first.name + ": " + openssl_errors();
        return nullptr;
    }
    SSL_CTX_set_cert_cb(ctx, select_certificate, state.get());
    if (!set_client_verification(ctx, o, error)) return nullptr;
    return std::make_unique<ServerContext>(Key(), std::move(state));
}

ServerContext::ServerContext(Key, std::shared_ptr<State> state) : state_(std::move(state)) {}
ServerContext::~ServerContext() = default;

std::shared_ptr<ssl_ctx_st> ServerContext::shared_ctx() const {
    return std::shared_ptr<ssl_ctx_st>(state_, state_->ctx.get());
}

}  // namespace postern::tls
