// The Sender Rewriting Scheme (see srs.hpp for the forms and the case rules).
// Parsing is a left-to-right split on '=' over string_views of the input; the
// HMAC input is lowercased into a fixed stack buffer, so nothing is allocated
// but the result. Depends on OpenSSL 3's libcrypto (HMAC, EVP_EncodeBlock).

#include "relay/srs.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <initializer_list>

namespace postern::relay {
namespace {

constexpr std::string_view kBase32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr std::int64_t kSecondsPerDay = 86400;
constexpr int kSlots = 1024;  // two base32 characters
constexpr std::size_t kHashLen = 4;
constexpr std::string_view kSeparators = "=+-";

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

// Today's slot, flooring so that instants before the epoch stay in 0..1023.
int day_slot(std::int64_t now_unix) {
    std::int64_t day = now_unix / kSecondsPerDay;
    if (now_unix % kSecondsPerDay < 0) --day;
    return static_cast<int>(((day % kSlots) + kSlots) % kSlots);
}

std::string encode_stamp(int slot) { return {kBase32[(slot >> 5) & 31], kBase32[slot & 31]}; }

std::optional<int> decode_stamp(std::string_view tt) {
    if (tt.size() != 2) return std::nullopt;
    int slot = 0;
    for (char c : tt) {
        std::size_t v = kBase32.find(ascii_upper(c));
        if (v == std::string_view::npos) return std::nullopt;
        slot = (slot << 5) | static_cast<int>(v);
    }
    return slot;
}

// The first four base64 characters of HMAC-SHA1(key, lowercase(parts...)).
// Four characters carry 24 bits: only the first 3 digest bytes are encoded.
bool make_hash(std::string_view key, std::initializer_list<std::string_view> parts, std::array<char, kHashLen>* out) {
    std::array<unsigned char, kSrsMaxAddress + 8> data;
    std::size_t len = 0;
    for (std::string_view part : parts) {
        if (part.size() > data.size() - len) return false;
        for (char c : part) data[len++] = static_cast<unsigned char>(ascii_lower(c));
    }
    std::array<unsigned char, EVP_MAX_MD_SIZE> md;
    unsigned int md_len = 0;
    if (HMAC(EVP_sha1(), key.data(), static_cast<int>(key.size()), data.data(), len, md.data(), &md_len) == nullptr ||
        md_len < 3)
        return false;
    std::array<unsigned char, kHashLen + 1> b64;  // EVP_EncodeBlock adds a NUL
    if (EVP_EncodeBlock(b64.data(), md.data(), 3) != static_cast<int>(kHashLen)) return false;
    for (std::size_t i = 0; i < kHashLen; ++i) (*out)[i] = static_cast<char>(b64[i]);
    return true;
}

// Either key may have signed it; the hash compares without case (srs.hpp).
bool hash_matches(const SrsKeys& keys, std::initializer_list<std::string_view> parts, std::string_view given) {
    if (given.size() != kHashLen) return false;
    for (const std::string* key : {&keys.key, &keys.backup_key}) {
        if (key->empty()) continue;
        std::array<char, kHashLen> want;
        if (make_hash(*key, parts, &want) && iequal(given, std::string_view(want.data(), want.size()))) return true;
    }
    return false;
}

struct Address {
    std::string_view local, domain;
};

std::optional<Address> split_address(std::string_view address) {
    std::size_t at = address.rfind('@');
    if (at == std::string_view::npos) return std::nullopt;
    return Address{address.substr(0, at), address.substr(at + 1)};
}

// 0 or 1 when `local` starts with SRS0 / SRS1 (any case) and a separator.
std::optional<int> srs_kind(std::string_view local) {
    if (local.size() < 5 || kSeparators.find(local[4]) == std::string_view::npos) return std::nullopt;
    if (!iequal(local.substr(0, 3), "SRS")) return std::nullopt;
    if (local[3] == '0') return 0;
    if (local[3] == '1') return 1;
    return std::nullopt;
}

// Takes the field up to the next '=' off the front of *rest; nullopt when
// there is no '=' left.
std::optional<std::string_view> take_field(std::string_view* rest) {
    std::size_t eq = rest->find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    std::string_view field = rest->substr(0, eq);
    rest->remove_prefix(eq + 1);
    return field;
}

// The parts of an SRS1 local part after "SRS1<sep>": hash, host, and the
// inner SRS0 text after "SRS0" (which begins with its separator).
struct Srs1 {
    std::string_view hash, host, user;
};

std::optional<Srs1> parse_srs1(std::string_view after_prefix) {
    auto hash = take_field(&after_prefix);
    if (!hash) return std::nullopt;
    auto host = take_field(&after_prefix);
    // The inner part starts with the separator that followed "SRS0".
    if (!host || hash->empty() || host->empty() || after_prefix.empty() ||
        kSeparators.find(after_prefix.front()) == std::string_view::npos)
        return std::nullopt;
    return Srs1{*hash, *host, after_prefix};
}

struct Srs0 {
    std::string_view hash, stamp, domain, local;
};

std::optional<Srs0> parse_srs0(std::string_view after_prefix) {
    auto hash = take_field(&after_prefix);
    if (!hash) return std::nullopt;
    auto stamp = take_field(&after_prefix);
    if (!stamp) return std::nullopt;
    auto domain = take_field(&after_prefix);  // the local part keeps any further '='
    if (!domain || hash->empty() || stamp->empty() || domain->empty() || after_prefix.empty()) return std::nullopt;
    return Srs0{*hash, *stamp, *domain, after_prefix};
}

bool set_error(std::string* error, std::string text) {
    if (error) *error = std::move(text);
    return false;
}

bool valid_our_domain(std::string_view domain) {
    return !domain.empty() && domain.find_first_of("@=") == std::string_view::npos;
}

// "SRS1=HHHH=host=" + user + "@" + our_domain, signed over host + user.
std::optional<std::string> compose_srs1(std::string_view host, std::string_view user, std::string_view our_domain,
                                        const SrsKeys& keys, std::string* error) {
    std::array<char, kHashLen> hash;
    if (!make_hash(keys.key, {host, user}, &hash)) {
        set_error(error, "HMAC-SHA1 failed");
        return std::nullopt;
    }
    std::string out;
    out.reserve(5 + kHashLen + 1 + host.size() + 1 + user.size() + 1 + our_domain.size());
    out.append("SRS1=").append(hash.data(), hash.size()).append("=").append(host).append("=");
    out.append(user).append("@").append(our_domain);
    return out;
}

// "SRS0=HHHH=TT=domain=local@" + our_domain, signed over TT + domain + local.
std::optional<std::string> compose_srs0(Address sender, std::string_view our_domain, const SrsKeys& keys,
                                        std::int64_t now_unix, std::string* error) {
    std::string stamp = encode_stamp(day_slot(now_unix));
    std::array<char, kHashLen> hash;
    if (!make_hash(keys.key, {stamp, sender.domain, sender.local}, &hash)) {
        set_error(error, "HMAC-SHA1 failed");
        return std::nullopt;
    }
    std::string out;
    out.reserve(5 + kHashLen + 1 + 2 + 1 + sender.domain.size() + 1 + sender.local.size() + 1 + our_domain.size());
    out.append("SRS0=").append(hash.data(), hash.size()).append("=").append(stamp).append("=");
    out.append(sender.domain).append("=").append(sender.local).append("@").append(our_domain);
    return out;
}

std::optional<std::string> rewrite(Address sender, std::string_view our_domain, const SrsKeys& keys,
                                   std::int64_t now_unix, std::string* error) {
    auto kind = srs_kind(sender.local);
    // Only the first forwarder can check an SRS0 hash: carry the text after
    // "SRS0" whole, separator included (hence the "==" in SRS1 addresses).
    if (kind == 0) return compose_srs1(sender.domain, sender.local.substr(4), our_domain, keys, error);
    if (kind == 1) {
        if (auto inner = parse_srs1(sender.local.substr(5)))
            return compose_srs1(inner->host, inner->user, our_domain, keys, error);
        // Not a usable SRS1 address: wrap it as an ordinary sender, which
        // still reverses to exactly what we were given.
    }
    return compose_srs0(sender, our_domain, keys, now_unix, error);
}

// Age in days of `slot` seen today, in 0..1023; 1023 means "tomorrow".
int slot_age(int slot, std::int64_t now_unix) { return ((day_slot(now_unix) - slot) % kSlots + kSlots) % kSlots; }

SrsResult reverse_srs0(std::string_view after_prefix, const SrsKeys& keys, std::int64_t now_unix, int ttl_days,
                       std::string* original) {
    auto f = parse_srs0(after_prefix);
    if (!f) return SrsResult::Malformed;
    auto slot = decode_stamp(f->stamp);
    if (!slot) return SrsResult::Malformed;
    // The hash first: an unsigned timestamp means nothing.
    if (!hash_matches(keys, {f->stamp, f->domain, f->local}, f->hash)) return SrsResult::BadHash;
    int age = slot_age(*slot, now_unix);
    if (age > ttl_days && age != kSlots - 1) return SrsResult::Expired;  // clock skew: one day ahead
    if (original) {
        original->clear();
        original->reserve(f->local.size() + 1 + f->domain.size());
        original->append(f->local).append("@").append(f->domain);
    }
    return SrsResult::Ok;
}

SrsResult reverse_srs1(std::string_view after_prefix, const SrsKeys& keys, std::string* original) {
    auto f = parse_srs1(after_prefix);
    if (!f) return SrsResult::Malformed;
    if (!hash_matches(keys, {f->host, f->user}, f->hash)) return SrsResult::BadHash;
    if (original) {
        original->clear();
        original->reserve(4 + f->user.size() + 1 + f->host.size());
        original->append("SRS0").append(f->user).append("@").append(f->host);
    }
    return SrsResult::Ok;
}

}  // namespace

std::optional<std::string> srs_forward(std::string_view sender, std::string_view our_domain, const SrsKeys& keys,
                                       std::int64_t now_unix, std::string* error) {
    if (sender.empty()) return std::string();  // bounces are never rewritten
    if (!valid_our_domain(our_domain)) {
        set_error(error, "invalid SRS domain \"" + std::string(our_domain) + "\"");
        return std::nullopt;
    }
    if (keys.key.empty()) {
        set_error(error, "empty SRS key");
        return std::nullopt;
    }
    if (sender.size() > kSrsMaxAddress) {
        set_error(error, "sender longer than 512 bytes");
        return std::nullopt;
    }
    auto parts = split_address(sender);
    if (!parts) {
        set_error(error, "no '@' in sender");
        return std::nullopt;
    }
    if (parts->local.empty() || parts->domain.empty()) {
        set_error(error, parts->local.empty() ? "empty local part in sender" : "empty domain in sender");
        return std::nullopt;
    }
    if (iequal(parts->domain, our_domain)) return std::string(sender);
    // The domain ends at the next '=' when the address is read back.
    if (parts->domain.find('=') != std::string_view::npos) {
        set_error(error, "'=' in sender domain");
        return std::nullopt;
    }
    auto out = rewrite(*parts, our_domain, keys, now_unix, error);
    if (out && out->size() > kSrsMaxAddress) {
        set_error(error, "rewritten sender longer than 512 bytes");
        return std::nullopt;
    }
    return out;
}

SrsResult srs_reverse(std::string_view address, const SrsKeys& keys, std::int64_t now_unix, int ttl_days,
                      std::string* original) {
    auto kind = srs_kind(address);  // the local part starts the address
    if (!kind) return SrsResult::NotSrs;
    if (address.size() > kSrsMaxAddress) return SrsResult::Malformed;
    auto parts = split_address(address);
    if (!parts || parts->domain.empty()) return SrsResult::Malformed;
    if (ttl_days < 0) ttl_days = 0;
    // Ages 1022 and 1023 mean two days and one day ahead: keep them apart from "old".
    if (ttl_days > kSlots - 3) ttl_days = kSlots - 3;
    std::string_view after_prefix = parts->local.substr(5);
    if (*kind == 0) return reverse_srs0(after_prefix, keys, now_unix, ttl_days, original);
    return reverse_srs1(after_prefix, keys, original);
}

std::string_view srs_result_name(SrsResult result) {
    switch (result) {
    case SrsResult::NotSrs: return "not SRS";
    case SrsResult::Ok: return "ok";
    case SrsResult::BadHash: return "bad hash";
    case SrsResult::Expired: return "expired";
    case SrsResult::Malformed: return "malformed";
    }
    return "unknown";
}

}  // namespace postern::relay
