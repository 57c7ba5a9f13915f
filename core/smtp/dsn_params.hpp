// The DSN extension's ESMTP parameters (RFC 3461): MAIL `RET=` and `ENVID=`,
// RCPT `NOTIFY=` and `ORCPT=`, and the xtext encoding their values use.
//
// Pure functions over std::string_view; they read untrusted network input,
// are bounded by the length of their arguments and have a fuzz target
// (tests/fuzz/fuzz_dsn_params.cpp). The session splits the parameters
// (smtp/command.hpp) and hands each DSN one here with its key uppercased.
//
// Refusals (DsnError code, then text), the only ones these functions give:
//   501 "5.5.4 Invalid RET parameter"            value not FULL or HDRS
//   501 "5.5.4 Invalid ENVID parameter"          empty, bad xtext, or decodes to
//                                                 a byte outside printable ASCII
//   501 "5.5.4 ENVID parameter too long"         over 100 characters as sent
//   501 "5.5.4 Invalid NOTIFY parameter"         empty, empty item or unknown word
//   501 "5.5.4 NOTIFY=NEVER cannot be combined with other values"
//   501 "5.5.4 Invalid ORCPT parameter"          no `;`, address type other than
//                                                 rfc822, bad xtext, or an
//                                                 implausible address
//   501 "5.5.4 ORCPT parameter too long"         over 500 characters as sent
//   501 "5.5.4 Duplicate RET parameter"          (likewise ENVID, NOTIFY, ORCPT)
//   555 "5.5.4 Unsupported MAIL parameter"       a key other than RET / ENVID
//   555 "5.5.4 Unsupported RCPT parameter"       a key other than NOTIFY / ORCPT
// (OpenSMTPD answers 553 to bad NOTIFY / ORCPT values; 501 is RFC 5321's
// code for a syntax error in parameters, and the enhanced code is added.)
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace postern::smtp {

enum class DsnRet { Unset, Full, Headers };

struct DsnMail {
    DsnRet ret = DsnRet::Unset;
    std::string envid;  // decoded from xtext; "" when not given
};

enum DsnNotify : unsigned {
    NotifyUnset = 0,
    NotifyNever = 1,
    NotifySuccess = 2,
    NotifyFailure = 4,
    NotifyDelay = 8,
};

struct DsnRcpt {
    unsigned notify = NotifyUnset;  // NotifyNever alone, or an OR of the others
    std::string orcpt;              // "rfc822;decoded-address" or ""
};

struct DsnError {
    int code = 0;      // 501
    std::string text;  // "5.5.4 Invalid RET parameter"
};

inline constexpr std::size_t kMaxEnvidLength = 100;  // RFC 3461 4.4
inline constexpr std::size_t kMaxOrcptLength = 500;  // RFC 3461 4.2

// `key` is uppercased already ("RET", "ENVID", "NOTIFY", "ORCPT"). On a bad,
// repeated or unknown parameter returns false, fills `err` and leaves `out`
// as it was.
bool apply_mail_param(std::string_view key, std::string_view value, DsnMail* out, DsnError* err);
bool apply_rcpt_param(std::string_view key, std::string_view value, DsnRcpt* out, DsnError* err);

// xtext (RFC 3461 4): bytes 33..126 stand for themselves except '+' and '=',
// every other byte is "+XX" with two uppercase hex digits.
std::string xtext_encode(std::string_view raw);
// Refuses a byte outside 33..126, a literal '=', and a '+' not followed by two
// hex digits (lowercase digits are accepted: liberal in what we read).
std::optional<std::string> xtext_decode(std::string_view text);

}  // namespace postern::smtp
