// dkim/signer.cpp — DKIM-Signature fields, laid out and signed.

#include "dkim/signer.hpp"

#include <ctime>

#include "dkim/fold.hpp"
#include "postern/support/ascii.hpp"

namespace postern::dkim {

namespace {

bool contains(const std::vector<std::string>& names, std::string_view name) {
    for (const std::string& n : names)
        if (util::iequals(n, name)) return true;
    return false;
}

// The h= list: every present instance of `headers`, then one more of each
// `oversign` name (see signer.hpp).
std::vector<std::string> signed_names(const std::vector<HeaderField>& fields, const SignOptions& o) {
    std::vector<std::string> names;
    std::vector<std::string> seen;
    // From first, whatever the list says: RFC 6376 5.4 requires it signed.
    std::vector<std::string> wanted{"from"};
    wanted.insert(wanted.end(), o.headers.begin(), o.headers.end());
    for (const std::string& h : wanted) {
        std::string name = util::lowercase(h);
        if (contains(seen, name)) continue;  // a name listed twice is still signed once per instance
        seen.push_back(name);
        names.insert(names.end(), count_fields(fields, name), name);
    }
    for (const std::string& h : o.oversign) names.push_back(util::lowercase(h));
    return names;
}

// Writes the tags before b= into the folder; "b=" is the last word.
void layout(Folder& f, const std::vector<std::string>& names, const BodyHash& body, const SigningIdentity& id,
            const SignOptions& o, std::int64_t t) {
    Algorithm alg = id.key.algorithm;
    f.word("v=1;");
    f.word("a=" + std::string(algorithm_name(alg)) + ";");
    f.word("c=" + std::string(canon_name(o.header_canon)) + "/" + std::string(canon_name(body.canon)) + ";");
    f.word("d=" + std::string(id.domain) + ";");
    f.word("s=" + std::string(id.selector) + ";");
    f.word("t=" + std::to_string(t) + ";");
    if (o.expire_after) f.word("x=" + std::to_string(t + static_cast<std::int64_t>(*o.expire_after)) + ";");
    // h= may fold after any colon (3.5's FWS around ':').
    for (std::size_t i = 0; i < names.size(); ++i) {
        std::string piece = (i == 0 ? "h=" : "") + names[i] + (i + 1 < names.size() ? ":" : ";");
        f.word(piece, i == 0);
    }
    f.word("bh=" + body.base64 + ";");
    f.word("b=");
}

}  // namespace

std::vector<std::string> default_signed_headers() {
    return {"from",     "to",          "cc",         "subject",      "date",         "message-id",
            "reply-to", "in-reply-to", "references", "mime-version", "content-type", "content-transfer-encoding"};
}

Result<std::vector<std::string>, SignError> sign(const std::vector<HeaderField>& fields, const BodyHash& body,
                                                 const SigningIdentity& id, const SignOptions& options) {
    if (count_fields(fields, "from") == 0) return SignError{SignError::Kind::NoFrom, "no From field to sign"};
    // d= and s= end up in the header and in a DNS name: nothing but a
    // domain name may go there.
    if (!is_domain_name(id.domain) || !is_domain_name(id.selector))
        return SignError{SignError::Kind::BadIdentity, "d=" + std::string(id.domain) + " s=" +
                                                           std::string(id.selector) + " is not a domain and selector"};
    std::int64_t t = options.timestamp.value_or(static_cast<std::int64_t>(std::time(nullptr)));
    std::vector<std::string> names = signed_names(fields, options);
    Folder f("DKIM-Signature");
    layout(f, names, body, id, options, t);
    // 3.7: the signature field itself is hashed as it will appear, with an
    // empty b= and without its final CRLF; the value then goes after "b=",
    // which a verifier blanks again before hashing.
    std::string input = header_hash_input(fields, names, options.header_canon, {"DKIM-Signature", f.value()});
    std::string why;
    std::optional<std::string> sig = sign_input(id.key.algorithm, id.key.pkey.get(), input, &why);
    if (!sig) return SignError{SignError::Kind::Crypto, "signing failed: " + why};
    f.breakable(base64_encode(*sig));
    return f.take();
}

}  // namespace postern::dkim
