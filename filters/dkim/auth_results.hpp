// dkim/auth_results.hpp — the Authentication-Results field (RFC 8601) that
// reports DKIM verdicts:
//
//   Authentication-Results: mx.example.net; dkim=pass header.d=example.org
//   <TAB>header.s=sel header.b=AbCdEfGh; dkim=fail
//   <TAB>reason="body hash did not verify" header.d=example.org header.s=ed
//   <TAB>header.b="ab/d+f=h"
//
// one resinfo per verdict, separated by ';', reason= for all but pass.
// header.b= is the first 8 characters of b= (RFC 6008), enough to tell two
// signatures of one domain apart; it is quoted when it holds a '/' or '=',
// which a bare RFC 8601 value may not. No verdicts give "dkim=none".
//
// Lines come without line ends, folded as the signer's (dkim/fold.hpp).
//
// Depends on: dkim/verify, dkim/fold.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "dkim/verify.hpp"

namespace postern::dkim {

// `authserv_id` is this host's name, written as given (the caller's
// configuration, not message text).
std::vector<std::string> authentication_results(std::string_view authserv_id, const std::vector<Verdict>& verdicts);

}  // namespace postern::dkim
