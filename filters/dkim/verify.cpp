// dkim/verify.cpp — DKIM-Signature fields parsed and verified.

#include "dkim/verify.hpp"

#include <charconv>
#include <ctime>

#include "dkim/record.hpp"
#include "dkim/tags.hpp"
#include "postern/support/ascii.hpp"

namespace postern::dkim {

namespace {

using Kind = SignatureError::Kind;

SignatureError bad(Kind kind, std::string text) { return SignatureError{kind, std::move(text)}; }

template <class T>
std::optional<T> parse_number(std::string_view s) {
    T n{};
    if (s.empty()) return std::nullopt;
    for (char c : s)
        if (!util::is_digit(c)) return std::nullopt;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return n;
}

// c=HEADER[/BODY]; the body part defaults to simple (3.5).
std::optional<SignatureError> parse_canon(std::optional<std::string_view> c, Signature& sig) {
    if (!c) return std::nullopt;
    std::string_view header = *c, body = "simple";
    if (std::size_t slash = c->find('/'); slash != std::string_view::npos) {
        header = c->substr(0, slash);
        body = c->substr(slash + 1);
    }
    auto hc = canon_from_name(header), bc = canon_from_name(body);
    if (!hc || !bc) return bad(Kind::BadCanon, "unknown canonicalization c=" + std::string(*c));
    sig.header_canon = *hc;
    sig.body_canon = *bc;
    return std::nullopt;
}

// i=[local-part]@domain, the domain d= or a subdomain of it (3.5).
std::optional<SignatureError> parse_identity(std::optional<std::string_view> i, Signature& sig) {
    if (!i) return std::nullopt;
    std::size_t at = i->rfind('@');
    std::string domain = at == std::string_view::npos ? "" : util::lowercase(i->substr(at + 1));
    if (!is_domain_name(domain)) return bad(Kind::BadIdentity, "malformed i= tag");
    bool inside = domain == sig.domain || (domain.size() > sig.domain.size() && domain.ends_with(sig.domain) &&
                                           domain[domain.size() - sig.domain.size() - 1] == '.');
    if (!inside) return bad(Kind::BadIdentity, "i= domain " + domain + " is not within d=" + sig.domain);
    sig.identity = std::string(*i);
    return std::nullopt;
}

std::optional<SignatureError> parse_times(const TagList& tags, Signature& sig) {
    if (auto l = tags.value("l")) {
        sig.length = parse_number<std::uint64_t>(*l);
        if (!sig.length) return bad(Kind::BadNumber, "malformed l= tag");
    }
    if (auto t = tags.value("t")) {
        sig.timestamp = parse_number<std::int64_t>(*t);
        if (!sig.timestamp) return bad(Kind::BadNumber, "malformed t= tag");
    }
    if (auto x = tags.value("x")) {
        sig.expiry = parse_number<std::int64_t>(*x);
        if (!sig.expiry) return bad(Kind::BadNumber, "malformed x= tag");
        if (sig.timestamp && *sig.expiry < *sig.timestamp) return bad(Kind::BadNumber, "x= is before t=");
    }
    return std::nullopt;
}

std::optional<SignatureError> parse_headers(std::string_view h, Signature& sig) {
    for (std::string_view name : split_colons(h)) {
        if (name.empty()) return bad(Kind::Syntax, "an empty name in h=");
        sig.headers.emplace_back(name);
    }
    for (const std::string& name : sig.headers)
        if (util::iequals(name, "from")) return std::nullopt;
    return bad(Kind::FromNotSigned, "From is not signed (not in h=)");
}

std::optional<SignatureError> parse_hashes(const TagList& tags, Signature& sig) {
    auto bh = base64_decode(*tags.value("bh"));
    auto b = base64_decode(*tags.value("b"));
    if (!bh || !b) return bad(Kind::BadBase64, std::string(!bh ? "bh=" : "b=") + " is not base64");
    sig.body_hash = std::move(*bh);
    sig.signature = std::move(*b);
    sig.b64 = base64_encode(sig.signature);
    return std::nullopt;
}

std::optional<SignatureError> parse_required(const TagList& tags, Signature& sig) {
    for (std::string_view t : {"v", "a", "b", "bh", "d", "h", "s"})
        if (!tags.find(t)) return bad(Kind::MissingTag, "missing tag " + std::string(t) + "=");
    if (*tags.value("v") != "1") return bad(Kind::BadVersion, "unknown version v=" + std::string(*tags.value("v")));
    std::string_view a = *tags.value("a");
    if (util::iequals(a, "rsa-sha1")) return bad(Kind::Sha1, "rsa-sha1 is no longer accepted (RFC 8301)");
    auto alg = algorithm_from_name(a);
    if (!alg) return bad(Kind::BadAlgorithm, "unknown algorithm a=" + std::string(a));
    sig.algorithm = *alg;
    sig.domain = util::lowercase(*tags.value("d"));
    sig.selector = std::string(*tags.value("s"));
    if (!is_domain_name(sig.domain) || !is_domain_name(sig.selector))
        return bad(Kind::BadDomain, "d= or s= is not a domain name");
    return std::nullopt;
}

std::optional<SignatureError> check_query(std::optional<std::string_view> q) {
    if (!q) return std::nullopt;
    for (std::string_view m : split_colons(*q))
        if (util::iequals(m, "dns/txt")) return std::nullopt;
    return bad(Kind::BadQuery, "no known query method in q=" + std::string(*q));
}

Verdict verdict(const Signature& sig, Outcome o, std::string reason) {
    return Verdict{o, std::move(reason), sig.domain, sig.selector, sig.b64};
}

// The key for `sig`, or the verdict that ends the check.
Result<PublicKey, Verdict> key_for(const Signature& sig, const KeyAnswer& key) {
    if (key.status == KeyAnswer::Status::TempFail) return verdict(sig, Outcome::Temperror, "key lookup failed");
    if (key.status == KeyAnswer::Status::NotFound) return verdict(sig, Outcome::Permerror, "no key for signature");
    auto pub = parse_key_record(key.txt);
    if (!pub) return verdict(sig, Outcome::Permerror, pub.error().text);
    if (pub.value().algorithm != sig.algorithm)
        return verdict(sig, Outcome::Permerror,
                       "key type k=" + std::string(key_type_name(pub.value().algorithm)) +
                           " does not match a=" + std::string(algorithm_name(sig.algorithm)));
    // t=s: the identity must be d= itself, no subdomain (3.6.1).
    if (pub.value().strict && sig.identity) {
        std::string_view i = *sig.identity;
        if (!util::iequals(i.substr(i.rfind('@') + 1), sig.domain))
            return verdict(sig, Outcome::Permerror, "i= is a subdomain of d= and the key says t=s");
    }
    return std::move(pub).value();
}

}  // namespace

std::string Signature::key_name() const { return selector + "._domainkey." + domain; }

Result<Signature, SignatureError> parse_signature(std::string_view value) {
    auto tags = TagList::parse(value);
    if (!tags) return bad(Kind::Syntax, "malformed signature: " + tags.error().text);
    const TagList& t = tags.value();
    Signature sig;
    if (auto e = parse_required(t, sig)) return *e;
    if (auto e = parse_canon(t.value("c"), sig)) return *e;
    if (auto e = check_query(t.value("q"))) return *e;
    if (auto e = parse_headers(*t.value("h"), sig)) return *e;
    if (auto e = parse_identity(t.value("i"), sig)) return *e;
    if (auto e = parse_times(t, sig)) return *e;
    if (auto e = parse_hashes(t, sig)) return *e;
    const Tag& b = *t.find("b");
    sig.blanked_value = std::string(value.substr(0, b.raw_begin)) + std::string(value.substr(b.raw_end));
    return sig;
}

std::string_view outcome_name(Outcome o) {
    switch (o) {
    case Outcome::None: return "none";
    case Outcome::Pass: return "pass";
    case Outcome::Fail: return "fail";
    case Outcome::Neutral: return "neutral";
    case Outcome::Permerror: return "permerror";
    case Outcome::Temperror: return "temperror";
    }
    return "none";
}

Verdict verify_signature(const std::vector<HeaderField>& fields, std::size_t index, const Signature& sig,
                         const BodyHash& body, const KeyAnswer& key, std::int64_t now) {
    auto pub = key_for(sig, key);
    if (!pub) return pub.error();
    // t=y: "treat as unsigned": a failure is reported, but as neutral.
    Outcome failed = pub.value().testing ? Outcome::Neutral : Outcome::Fail;
    if (sig.expiry && now > *sig.expiry) return verdict(sig, failed, "signature expired");
    if (body.canon != sig.body_canon) return verdict(sig, Outcome::Permerror, "body hashed the wrong way");
    if (sig.length && body.length < *sig.length) return verdict(sig, failed, "body shorter than l=");
    if (body.base64 != base64_encode(sig.body_hash)) return verdict(sig, failed, "body hash did not verify");
    HeaderField own{index < fields.size() ? fields[index].name : "DKIM-Signature", sig.blanked_value};
    std::string input = header_hash_input(fields, sig.headers, sig.header_canon, own, index);
    if (!verify_input(sig.algorithm, pub.value().pkey.get(), input, sig.signature))
        return verdict(sig, failed, "signature did not verify");
    return verdict(sig, Outcome::Pass, "");
}

MessageVerifier::MessageVerifier(std::vector<HeaderField> fields, VerifyOptions options)
    : fields_(std::move(fields)), options_(options) {
    for (std::size_t i = 0; i < fields_.size() && entries_.size() < options_.max_signatures; ++i) {
        if (!util::iequals(field_name(fields_[i]), "dkim-signature")) continue;
        Entry e;
        e.field = i;
        auto sig = parse_signature(fields_[i].value);
        if (!sig) {
            e.error = sig.error();
            entries_.push_back(std::move(e));
            continue;
        }
        e.sig = std::move(sig).value();
        // Signatures with the same body canonicalization and l= share a hasher.
        e.hasher = hashers_.size();
        for (std::size_t h = 0; h < hashers_.size(); ++h)
            if (hashers_[h].canon() == e.sig->body_canon && hashers_[h].limit() == e.sig->length) e.hasher = h;
        if (e.hasher == hashers_.size()) hashers_.emplace_back(e.sig->body_canon, e.sig->length);
        entries_.push_back(std::move(e));
    }
}

void MessageVerifier::body_line(std::string_view line) {
    for (BodyHasher& h : hashers_) h.line(line);
}

std::vector<std::string> MessageVerifier::key_names() const {
    std::vector<std::string> names;
    for (const Entry& e : entries_) {
        if (!e.sig) continue;
        std::string name = e.sig->key_name();
        bool seen = false;
        for (const std::string& n : names) seen = seen || util::iequals(n, name);
        if (!seen) names.push_back(std::move(name));
    }
    return names;
}

std::vector<Verdict> MessageVerifier::finish(const std::function<KeyAnswer(std::string_view name)>& lookup) {
    std::vector<BodyHash> hashes;
    for (BodyHasher& h : hashers_) hashes.push_back(h.finish());
    std::int64_t now = options_.now.value_or(static_cast<std::int64_t>(std::time(nullptr)));
    std::vector<Verdict> out;
    for (const Entry& e : entries_) {
        if (!e.sig) {
            Outcome o = e.error->kind == Kind::Sha1 ? Outcome::Neutral : Outcome::Permerror;
            out.push_back(Verdict{o, e.error->text, {}, {}, {}});
            continue;
        }
        out.push_back(verify_signature(fields_, e.field, *e.sig, hashes[e.hasher], lookup(e.sig->key_name()), now));
    }
    return out;
}

}  // namespace postern::dkim
