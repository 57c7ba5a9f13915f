// dkim/signer.hpp — makes a DKIM-Signature header field (RFC 6376 5, with
// RFC 8463's ed25519-sha256).
//
// The caller streams the body through a BodyHasher (one per body
// canonicalization, shared by every signature that uses it), collects the
// header fields, and calls sign() once per key. The field comes back as
// lines without line ends, the first "DKIM-Signature: v=1; a=...", the
// others starting with HTAB, each under 78 columns:
//
//   DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org;
//   <TAB>s=sel; t=1700000000; h=from:to:subject:date:message-id:from;
//   <TAB>bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;
//   <TAB>b=...
//
// and is to be put at the top of the header section (above the fields it
// signs, as 5.6 recommends), lines joined with CRLF in the message.
//
// What is signed: the names of `headers` present in the message, each as
// many times as it is present (so every instance is covered), then each
// name of `oversign` once more, which no field answers: a From (or any
// oversigned field) added later breaks the signature instead of being shown
// unsigned above the signed one. The h= list is in that order; the fields
// are picked bottom-up (5.4.2). From is always signed, listed or not (RFC
// 6376 5.4); an `oversign` name should also be in `headers`, or its
// one listing signs the bottom-most instance instead of guarding the top.
//
// Depends on: dkim/canon, dkim/headers, dkim/keys, dkim/fold, dkim/crypto.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/canon.hpp"
#include "dkim/headers.hpp"
#include "dkim/keys.hpp"
#include "dkim/result.hpp"

namespace postern::dkim {

// from, to, cc, subject, date, message-id, reply-to, in-reply-to,
// references, mime-version, content-type, content-transfer-encoding: what
// a reader sees or what changes how the body reads (RFC 6376 5.4.1).
std::vector<std::string> default_signed_headers();

struct SignOptions {
    Canon header_canon = Canon::Relaxed;
    // The body canonicalization is the BodyHash's own.
    std::vector<std::string> headers = default_signed_headers();
    std::vector<std::string> oversign = {"from"};
    // x= is t= plus this many seconds; none when unset.
    std::optional<std::uint64_t> expire_after;
    // t=, seconds since the epoch; the clock when unset (tests set it).
    std::optional<std::int64_t> timestamp;
};

// Who signs: d=, s= and the key. The key table gives these.
struct SigningIdentity {
    std::string_view domain;
    std::string_view selector;
    const PrivateKey& key;
};

struct SignError {
    enum class Kind {
        NoFrom,       // no From field: RFC 6376 5.4 requires it signed
        BadIdentity,  // d= or s= is not a domain name
        Crypto,       // OpenSSL failed (a broken key or library)
    };
    Kind kind = Kind::NoFrom;
    std::string text;
};

Result<std::vector<std::string>, SignError> sign(const std::vector<HeaderField>& fields, const BodyHash& body,
                                                 const SigningIdentity& id, const SignOptions& options = {});

}  // namespace postern::dkim
