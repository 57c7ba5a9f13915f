// Recipient expansion: one accepted local recipient becomes its final
// destinations (users, addresses, files, commands) through the action's
// `alias <t>` or `virtual <t>` table and its userbase, as OpenSMTPD does
// (table-protocol.md §6). The daemon calls expand() on a worker thread at
// RCPT time (tables may block) and refuses the recipient with the reply in
// Result when it is not Ok. Addresses it returns are re-matched by the
// daemon as mail from local, with max_depth lowered by one each time so that
// a loop through the rules ends too.
//
// Choices made here, and why:
// - Files and commands (`/path`, `|cmd`) run as the action's `user` if one is
//   set; otherwise as the user named by the alias key whose entry held them
//   (`bob: |/usr/bin/vacation` runs as bob), tag stripped, if the userbase
//   knows it; otherwise as Request::default_user ("nobody"), looked up in
//   the system's users. None of them ever runs as uid 0: an account with
//   uid 0 is replaced by the default user, the way Postfix's default_privs
//   treats root-owned aliases, because an alias table entry like
//   `root: |/usr/local/bin/notify` must not hand the message and its
//   environment to a root shell. A missing default user is a temporary
//   failure (a host problem: the mail waits for the admin, never bounces).
// - A table that cannot answer (TempFail), an :include: file that cannot be
//   read and a missing run-as account give 451 "4.3.0 Temporary lookup
//   failure". OpenSMTPD says 424 4.2.4, but 424 is no RFC 5321 reply code;
//   451 is the one clients know for "local error, try again".
// - Expansion problems (too deep, nothing left, an alias target that is no
//   user, an invalid element, a bad userinfo entry) give 550 "5.2.4 Mailing
//   list expansion problem" (OpenSMTPD's 524 is not an RFC 5321 code either).
// - `error:NNN text` ends the whole expansion with that code and text; a 4xx
//   code makes the Status TempFail, a 5xx code Permanent.
// - Loops: each name is looked up in the alias table once per expansion.
//   An element naming the entry's own key (`root: root, admin@other`) is
//   delivered to that user (sameuser); a name met again further down
//   (a: b, b: a) is dropped, so a pure cycle ends in "nothing left".
// - Duplicates (same kind and value) are delivered once; the first wins.
// - The `+tag` of the recipient, lowercased like every key and user name,
//   becomes Destination::extension; a user element with a tag of its own
//   (`bob+lists`) carries that tag instead.
// - ~/.forward (Request::forward): a user reached by expansion whose
//   .forward lists anything is replaced by its entries, as if it were their
//   alias entry; their own name there (sameuser) delivers to them. Its
//   `:include:` lines are skipped; `|command` and `/file` lines run as the
//   user, and never in root's .forward (skipped with a warning, since root's
//   commands would run as the default user). Not read when the action has
//   `user NAME` (one account delivers for everyone).
// - forward-only and expand-only actions deliver nothing themselves: a user
//   without a .forward is a temporary failure under forward-only (the user
//   may be about to write one) and a permanent one under expand-only; under
//   forward-only, files, commands and error: lines are temporary failures
//   too, as in OpenSMTPD: only addresses may come out.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "expand/alias_list.hpp"
#include "expand/forward.hpp"
#include "expand/userbase.hpp"
#include "table/table.hpp"

namespace postern::expand {

struct Destination {
    enum class Kind { User, Address, File, Command } kind = Kind::User;
    std::string value;      // user name / user@domain / absolute path / command (without '|')
    UserInfo user;          // User: the recipient's account; File/Command: the account it runs as
    UserInfo run_as;        // User/File/Command: the account delivery runs as (action `user` wins)
    std::string extension;  // the +tag, for %{...} and EXTENSION
};

struct Request {
    std::string local;                    // recipient local part as received (may hold +tag)
    std::string domain;                   // lowercased
    table::Table* alias = nullptr;        // action `alias <t>`
    table::Table* virtual_ = nullptr;     // action `virtual <t>` (wins over alias if both are set)
    table::Table* userbase = nullptr;     // action `userbase <t>`; nullptr = system users
    std::string as_user;                  // action `user NAME`: every local delivery runs as this user
    std::string default_user = "nobody";  // files/commands with no other owner (system user)
    char subaddr_delim = '+';
    ForwardReader forward;      // how to read a user's ~/.forward; empty = never
    bool forward_only = false;  // action forward-only
    bool expand_only = false;   // action expand-only
    int max_depth = 10;
};

struct Result {
    Status status = Status::Ok;
    std::vector<Destination> dests;
    std::string error;  // reply text after the code, e.g. "5.1.1 <u@d>: Recipient address rejected: User unknown"
    int code = 250;
    std::string log;                    // what went wrong, naming tables and keys: for the log, never the client
    std::vector<std::string> warnings;  // things skipped (nested :include:), for the log
};

Result expand(const Request& req);

}  // namespace postern::expand
