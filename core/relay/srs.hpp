// The Sender Rewriting Scheme (SRS), "guarded" form: the envelope sender of a
// message we forward is rewritten into our own domain, so that SPF at the next
// hop passes, and a bounce to that address can be checked and sent back to the
// original sender. A pure module: no I/O, no clock, no configuration; it
// depends on OpenSSL 3 (libcrypto) for HMAC-SHA1 and base64 only.
//
// Forms (the separator after SRS0/SRS1 may be '=', '+' or '-' on input; we
// always write '='; every other field separator is '='):
//
//   SRS0=HHHH=TT=orig-domain=orig-local@our-domain
//   SRS1=HHHH=first-forwarder-domain=<sep>HHHH=TT=orig-domain=orig-local@our-domain
//
//   TT    days since the epoch mod 1024 as two base32 characters
//         (ABCDEFGHIJKLMNOPQRSTUVWXYZ234567, high five bits first).
//   HHHH  the first 4 characters of base64(HMAC-SHA1(key, data)) where data is
//         TT + orig-domain + orig-local for SRS0, and first-forwarder-domain +
//         the text after "SRS0" (separator included) for SRS1.
//
// Case: mail systems on the way may change the case of a local part, so, as
// libsrs2 and postsrsd do, the HMAC is computed over the ASCII-lowercased data,
// and on reversal the hash and TT compare without case. Reversal returns the
// fields with the case they arrived in.
//
// An SRS0 address forwarded again becomes SRS1 (only the first forwarder can
// check its hash, so it is carried whole); an SRS1 address forwarded again is
// re-signed for our domain around the same inner part. Reversing an SRS1
// address gives the SRS0 address at the first forwarder, which bounces there
// directly. SRS1 carries no timestamp: its age is checked by the first
// forwarder on the inner SRS0.
//
// The original local part is taken whole (everything after the domain's '='),
// so '=', '+' or '@' inside it survive the round trip. A timestamp repeats
// every 1024 days: an address 1024 days old reads as new again (as in every
// SRS implementation); the hash is what stops forgery.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::relay {

// Longer addresses are refused in both directions (RFC 5321 allows 256).
inline constexpr std::size_t kSrsMaxAddress = 512;

struct SrsKeys {
    std::string key;         // signs, and verifies
    std::string backup_key;  // verifies only (key rotation); "" = none
};

// Rewrites `sender` (local@domain, without angle brackets) for forwarding from
// `our_domain` at time `now_unix`. "" (the null sender) and senders whose
// domain is `our_domain` (without case) come back unchanged. nullopt with
// *error set when the sender has no '@', an empty local part or domain, a '='
// in its domain, is over kSrsMaxAddress (before or after rewriting), when
// `our_domain` is empty or holds '@' or '=', or when `keys.key` is empty.
std::optional<std::string> srs_forward(std::string_view sender, std::string_view our_domain, const SrsKeys& keys,
                                       std::int64_t now_unix, std::string* error);

enum class SrsResult {
    NotSrs,     // the local part does not start with SRS0 or SRS1 and a separator
    Ok,         // *original is set
    BadHash,    // neither key signed it (also: no key at all)
    Expired,    // SRS0 older than ttl_days, or more than one day in the future
    Malformed,  // SRS-looking but a field is missing or empty, or over kSrsMaxAddress
};

// Reverses an address received for our domain (the domain after the last '@'
// is not checked here: the caller routes only its own domains to this).
// SRS0 gives the original address; SRS1 gives the SRS0 address at the first
// forwarder's domain. `original` is written only on Ok. ttl_days is clamped
// to 0..1021 (OpenSMTPD's default is 4).
SrsResult srs_reverse(std::string_view address, const SrsKeys& keys, std::int64_t now_unix, int ttl_days,
                      std::string* original);

std::string_view srs_result_name(SrsResult result);

}  // namespace postern::relay
