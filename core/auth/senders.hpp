// The `senders <table> [masquerade]` check of a listener: which MAIL FROM
// addresses an authenticated user may use (the mailaddrmap service,
// table-protocol.md §4). The table maps a user name to a comma list of
// mail address patterns: `user`, `@domain`, `user@domain`, `@` (anything).
// A refusal is answered `530 Sender rejected` by the session; masquerading
// (rewriting From:) is the session's business, not this check's.
//
// The null sender (`MAIL FROM:<>`) is checked like any address, as
// OpenSMTPD does: its user and domain are empty, so only the catch-all `@`
// lets an authenticated user send bounces.
//
// The table may block: call from a worker thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "auth/credentials.hpp"
#include "table/table.hpp"

namespace postern::auth {

// May `user` send as `mail_from` (a bare address, or `<address>`; "" and
// "<>" are the null sender)? Ok or Bad; Bad too when the user has no entry.
// TempFail, with `error` set, when the table cannot answer or is missing.
Check sender_allowed(table::Table* table, std::string_view user, std::string_view mail_from, std::string* error);

// The patterns of a mailaddrmap value: split at commas, blanks trimmed,
// empty items dropped ("a, @b ,,c" -> a, @b, c).
std::vector<std::string_view> split_patterns(std::string_view value);

}  // namespace postern::auth
