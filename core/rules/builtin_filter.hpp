// rules/builtin_filter.hpp — the condition of a built-in filter (`filter
// NAME phase PHASE match [!] CONDITION DECISION`), tested the way the rules
// test the `match` criterion of the same name.
//
// fcrdns holds when the client's PTR name resolves back to its address
// (Subject::fcrdns), rdns is `from rdns`, src is `from src`, helo, auth,
// mail-from and rcpt-to their `match` namesakes. The phase's parameter is
// what a condition about it looks at: the HELO name at helo/ehlo, the sender
// at mail-from, the recipient at rcpt-to (the session has not taken them
// yet when the filters are asked).
//
// Depends on: rules/ruleset, config.
#pragma once

#include <string>

#include "config/config.hpp"
#include "rules/ruleset.hpp"

namespace postern::rules {

config::Criterion builtin_criterion(const config::FilterCondition& c);

// `s` as the condition sees it at the filter's phase, given its parameter.
Subject builtin_subject(const config::BuiltinFilter& f, Subject s, const std::string& param);

// Yes when the condition holds (its `!` applied), No, or TempFail with
// *error when a table cannot be read. May block on a table.
Ruleset::Verdict test_builtin(const Ruleset& rules, const config::BuiltinFilter& f, const Subject& s,
                              const std::string& param, std::string* error);

}  // namespace postern::rules
