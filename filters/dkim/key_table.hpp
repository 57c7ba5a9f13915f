// dkim/key_table.hpp — which keys sign which mail: the key table file.
//
//   # DOMAIN       SELECTOR   KEYFILE
//   example.org    rsa2024    /etc/postern/dkim/example.org.rsa.pem
//   example.org    ed2024     /etc/postern/dkim/example.org.ed25519.pem
//   example.net    mail       example.net.pem
//   *              default    /etc/postern/dkim/default.pem
//
// One line per signing key, fields separated by spaces or tabs; '#' starts
// a comment (at the start of a field), blank lines are skipped. A domain
// with several lines gets several signatures (RSA and Ed25519 side by side,
// as RFC 8463 advises while verifiers catch up). "*" is the default for a
// From domain that has no line of its own; its d= is that From domain, so
// its selector must be published under every domain it signs for. A
// relative KEYFILE is relative to the table's own folder.
//
// Every key is loaded when the table is read, so that a bad key stops the
// filter at start-up rather than failing mail later. Errors name the table
// and line: "dkim.keys:3: expected DOMAIN SELECTOR KEYFILE, found 2 fields",
// "dkim.keys:4: KEYFILE: RSA key of 512 bits is too short (at least 1024)".
//
// Depends on: dkim/keys, dkim/headers (domain syntax).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/keys.hpp"
#include "dkim/result.hpp"

namespace postern::dkim {

struct KeyEntry {
    std::string domain;    // lowercased; "*" for the default
    std::string selector;  // as written
    std::string file;      // the key file's path, resolved
    std::size_t line = 0;  // in the table
    PrivateKey key;
};

struct TableError {
    std::string text;  // "FILE:LINE: what was expected" or "FILE: cannot read: ..."
};

// One signature to make: d=, s= and the key.
struct KeyMatch {
    std::string domain;  // the From domain itself for "*" lines
    std::string_view selector;
    const PrivateKey* key = nullptr;
};

class KeyTable {
public:
    // Reads the table at `path` and loads every key in it.
    static Result<KeyTable, TableError> load(const std::string& path);

    // Parses table text; `name` is what errors call the table, `dir` where
    // relative key files are looked for.
    static Result<KeyTable, TableError> parse(std::string_view text, const std::string& name, const std::string& dir);

    // The keys for mail from `from_domain` (any case): its own lines, in
    // table order, or else the "*" lines; none when neither exists.
    std::vector<KeyMatch> lookup(std::string_view from_domain) const;

    const std::vector<KeyEntry>& entries() const { return entries_; }

private:
    std::vector<KeyEntry> entries_;
};

}  // namespace postern::dkim
