// dkim/canon.hpp — canonicalization (RFC 6376 3.4): what a header field and
// the body are reduced to before they are hashed.
//
// Headers (3.4.1 simple, 3.4.2 relaxed) are small and canonicalized whole.
// The body is streamed: a BodyHasher is fed one line at a time and hashes as
// it goes, so that a 35 MB message is never held. Its only state is the SHA-256
// context, a count of empty lines not yet known not to be trailing ones, and
// the relaxed form of the current line.
//
// Body rules, with RFC 6376 errata 1384 (the relaxed form of an empty body is
// empty, not CRLF):
//   simple   every line ends in CRLF; empty lines at the end are dropped; a
//            body that is then empty is a single CRLF.
//   relaxed  WSP (SP, HTAB) at the end of each line is dropped and every
//            other run of WSP becomes one SP; empty lines at the end (a line
//            of only WSP counts as empty) are dropped; an empty body stays
//            empty.
// Bodies carried by SMTP always end in CRLF, so "no trailing CRLF" cannot
// arise here: the caller gives lines without their ends.
//
// Depends on: dkim/crypto (SHA-256, base64).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dkim/crypto.hpp"

namespace postern::dkim {

enum class Canon { Simple, Relaxed };

// "simple", "relaxed".
std::string_view canon_name(Canon c);
std::optional<Canon> canon_from_name(std::string_view name);

// The canonical form of one header field, "name:value\r\n".
// `name` is the text before the colon and `value` everything after it, as
// the message has them: the value keeps its leading space and its folding
// (CRLF followed by SP or HTAB before each continuation line).
//   simple   name + ":" + value + CRLF, byte for byte.
//   relaxed  the name lowercased and stripped of WSP; the value unfolded
//            (every CRLF removed), WSP runs made one SP, WSP at both ends
//            removed.
std::string canon_header(Canon c, std::string_view name, std::string_view value);

// A finished body hash: which canonicalization made it (the c= tag's second
// half follows from it) and the bh= value, base64 of the SHA-256 digest.
struct BodyHash {
    Canon canon = Canon::Relaxed;
    std::string base64;
    std::uint64_t length = 0;  // of the whole canonical body, limit or not
    bool operator==(const BodyHash&) const = default;
};

class BodyHasher {
public:
    // `limit`: hash only the first `limit` bytes of the canonical body (a
    // verifier honouring an l= tag); signers never set it.
    explicit BodyHasher(Canon c, std::optional<std::uint64_t> limit = std::nullopt);

    BodyHasher(BodyHasher&&) noexcept = default;
    BodyHasher& operator=(BodyHasher&&) noexcept = default;

    Canon canon() const { return canon_; }
    std::optional<std::uint64_t> limit() const { return limit_; }

    // One body line without its line end (CRLF or LF), already
    // un-dot-stuffed. Lines after finish() are ignored.
    void line(std::string_view text);

    // Ends the body: the trailing empty lines are dropped, the empty-body
    // rule applied, and the digest taken. Call once.
    BodyHash finish();

    // Bytes of canonical body hashed so far, capped by the limit.
    std::uint64_t hashed() const { return hashed_; }

private:
    void emit(std::string_view bytes);
    void flush_empty_lines();

    Canon canon_;
    std::optional<std::uint64_t> limit_;
    MdCtxPtr ctx_;
    std::uint64_t pending_empty_ = 0;  // empty lines seen since the last non-empty one
    std::uint64_t hashed_ = 0;
    std::uint64_t length_ = 0;
    bool finished_ = false;
    std::string scratch_;  // the relaxed form of the current line, reused
};

}  // namespace postern::dkim
