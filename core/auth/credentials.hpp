// Credential checks for SMTP AUTH on a listener with `auth <table>`: the
// table maps a user name to a crypt(3) hash, as `smtpctl encrypt` prints it
// (`$6$...`, `$2b$...`, `$y$...`, whatever libxcrypt knows), or to
// `user:hash` (table-protocol.md §7). The part before the colon is ignored,
// as OpenSMTPD ignores it.
//
// Hashing is deliberately slow and a table may block: call these from a
// worker thread, never from the event loop. They are thread-safe
// (crypt_rn(3) with per-call state).
#pragma once

#include <string>
#include <string_view>

#include "table/table.hpp"

namespace postern::auth {

// Ok: accepted. Bad: refused (535). TempFail: could not decide now (454/421).
enum class Check { Ok, Bad, TempFail };

// Does `password` hash to `hash`? Bad for a wrong password, for a locked or
// empty hash (`*`, `!...`, ""), for a hash libxcrypt does not know or that
// is malformed, and for a password holding NUL or longer than crypt(3)
// takes. TempFail only if crypt(3) ran out of memory. The comparison takes
// the same time wherever the hashes differ.
Check check_password(std::string_view password, std::string_view hash);

// Looks `user` up in `table` (the credentials service, key lowercased; the
// password is used as given) and checks `password` against its hash. An
// unknown user is Bad and costs a hash computation all the same, so the
// reply's timing does not tell which user names exist. TempFail, with
// `error` set, when the table cannot answer or there is no table.
Check check_credentials(table::Table* table, std::string_view user, std::string_view password, std::string* error);

// A system account's password (`auth` without a table, as OpenSMTPD does):
// the hash from the shadow database, else from the password database.
// Reading the shadow database needs root, so the daemon asks its privileged
// parent; anywhere else the answer is TempFail with the reason.
Check check_system_account(std::string_view user, std::string_view password, std::string* error);

}  // namespace postern::auth
