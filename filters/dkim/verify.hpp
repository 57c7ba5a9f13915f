// dkim/verify.hpp — checks DKIM-Signature fields (RFC 6376 6, RFC 8463).
//
// Pure code: the DNS lookup of each key (TXT at SELECTOR._domainkey.DOMAIN)
// is the program's, which hands the answers back. The usual way through it:
//
//   MessageVerifier v(fields);                 // the header section
//   for each body line: v.body_line(line);     // streamed, never held
//   v.key_names()                              // what to look up
//   auto verdicts = v.finish(lookup);          // lookup(name) -> KeyAnswer
//   authentication_results("mx.example.org", verdicts)  // auth_results.hpp
//
// parse_signature and verify_signature are the steps it is made of, for a
// caller that wants them one by one.
//
// Results (RFC 8601 2.7.1) and what gives them:
//   pass       the body hash and the signature verify
//   fail       body hash or signature mismatch, expired (x= past), body
//              shorter than l=
//   neutral    rsa-sha1 (RFC 8301: no longer considered valid); a failure
//              under a key in testing mode (t=y: "treat as unsigned")
//   permerror  a malformed or incomplete signature field, From not in h=,
//              i= outside d=, no key, a revoked or malformed key, a key of
//              another type than a=
//   temperror  the key lookup failed for now
//   none       no signature at all (authentication_results of no verdicts)
//
// Depends on: dkim/canon, dkim/headers, dkim/record, dkim/tags, dkim/crypto.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/canon.hpp"
#include "dkim/crypto.hpp"
#include "dkim/headers.hpp"
#include "dkim/result.hpp"

namespace postern::dkim {

// A DKIM-Signature field's value, parsed and checked (3.5, 6.1.1).
struct Signature {
    Algorithm algorithm = Algorithm::RsaSha256;
    Canon header_canon = Canon::Simple;  // c= defaults to simple/simple
    Canon body_canon = Canon::Simple;
    std::string domain;                     // d=, lowercased
    std::string selector;                   // s=
    std::vector<std::string> headers;       // h=, as written
    std::string body_hash;                  // bh=, decoded
    std::string signature;                  // b=, decoded
    std::string b64;                        // b= as written, FWS removed (header.b=)
    std::optional<std::string> identity;    // i=
    std::optional<std::uint64_t> length;    // l=
    std::optional<std::int64_t> timestamp;  // t=
    std::optional<std::int64_t> expiry;     // x=
    // The field's value with the b= value (and the FWS around it) removed:
    // what the header hash input holds (3.7).
    std::string blanked_value;

    // "SELECTOR._domainkey.DOMAIN": where the key is published.
    std::string key_name() const;
};

struct SignatureError {
    enum class Kind {
        Syntax,        // not a tag list, or an h= with an empty name
        MissingTag,    // one of v a b bh d h s absent
        BadVersion,    // v= not 1
        Sha1,          // a=rsa-sha1 (RFC 8301)
        BadAlgorithm,  // any other unknown a=
        BadCanon,      // c= not simple/relaxed
        BadDomain,     // d= or s= not a domain name
        BadBase64,     // b= or bh= not base64
        BadIdentity,   // i= malformed or not in d=
        FromNotSigned,
        BadNumber,  // l=, t= or x= not digits, or x= before t=
        BadQuery,   // q= without dns/txt
    };
    Kind kind = Kind::Syntax;
    std::string text;
};

Result<Signature, SignatureError> parse_signature(std::string_view value);

enum class Outcome { None, Pass, Fail, Neutral, Permerror, Temperror };
// "none", "pass", ..., as Authentication-Results writes them.
std::string_view outcome_name(Outcome o);

struct Verdict {
    Outcome outcome = Outcome::None;
    std::string reason;  // "" for pass; our text, sanitized when written out
    // Known when the signature parsed; empty otherwise.
    std::string domain;
    std::string selector;
    std::string b64;  // the whole b= value
    bool operator==(const Verdict&) const = default;
};

// What the program found for a key name.
struct KeyAnswer {
    enum class Status { Found, NotFound, TempFail };
    Status status = Status::NotFound;
    std::string txt;  // Found: the TXT record, its strings joined
};

// Verifies one parsed signature: `index` is its own field in `fields`,
// `body` the finished hash of a BodyHasher made with the signature's body
// canonicalization and l=, `now` the clock (seconds) for x=.
Verdict verify_signature(const std::vector<HeaderField>& fields, std::size_t index, const Signature& sig,
                         const BodyHash& body, const KeyAnswer& key, std::int64_t now);

struct VerifyOptions {
    // Signatures beyond this many (from the top) are not looked at: each
    // costs a DNS lookup, and a message may carry hundreds.
    std::size_t max_signatures = 8;
    std::optional<std::int64_t> now;  // the clock when unset (tests set it)
};

class MessageVerifier {
public:
    explicit MessageVerifier(std::vector<HeaderField> fields, VerifyOptions options = {});

    // One body line without its line end, un-dot-stuffed.
    void body_line(std::string_view line);

    // The key names to look up, one per signature that parsed (repeats
    // removed); none when there is nothing to verify.
    std::vector<std::string> key_names() const;

    // Ends the body and gives one verdict per signature looked at, top
    // first; none for a message without signatures. Call once.
    std::vector<Verdict> finish(const std::function<KeyAnswer(std::string_view name)>& lookup);

private:
    struct Entry {
        std::size_t field = 0;                // index in fields_
        std::optional<Signature> sig;         // parsed
        std::optional<SignatureError> error;  // or why not
        std::size_t hasher = 0;               // index in hashers_
    };

    std::vector<HeaderField> fields_;
    VerifyOptions options_;
    std::vector<Entry> entries_;
    std::vector<BodyHasher> hashers_;  // one per (body canon, l=) in use
};

}  // namespace postern::dkim
