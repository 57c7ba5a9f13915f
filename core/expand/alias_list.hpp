// Alias values: splitting a comma list into elements and saying what each
// element is (aliases(5) syntax, table-protocol.md §6).
//
// These are pure functions of text: they read no file and ask no table, so
// the same rules serve alias and virtual tables, :include: files and tests.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace postern::expand {

// Splits an alias value on commas. Each element is trimmed of blanks; empty
// elements are dropped. A backslash takes the next character literally (a
// comma, a quote, a blank). A quote (" or ') that begins an element protects
// everything up to the matching quote, commas included, and is removed; a
// quote anywhere else is an ordinary character (o'brien@example.org).
// Lenient: an unterminated quote runs to the end of the text and a trailing
// backslash stands for itself.
std::vector<std::string> split_alias_list(std::string_view value);

// The same rules, strict: false and the reason for an unterminated quote or
// a trailing backslash.
bool split_alias_list(std::string_view value, std::vector<std::string>* out, std::string* error);

struct Element {
    enum class Kind { User, Address, File, Command, Include, Error, Invalid } kind = Kind::Invalid;
    // User: the name, lowercased (may hold +tag). Address: local@domain with
    // the domain lowercased. File, Include: the absolute path. Command: the
    // command without '|'. Error: the reply text. Invalid: why.
    std::string value;
    int code = 0;  // Error: the reply code (4xx or 5xx)
};

// What one (already split and unquoted) element is, tried in this order:
// `error:NNN text` / `:error:NNN text`, `:include:/path` / `include:/path`,
// `|command`, `/path`, `local@domain`, `user`. `delim` is the sub-address
// delimiter, allowed in user names besides `+`.
Element classify_element(std::string_view text, char delim = '+');

// The logical lines of an :include: file, each an alias value of its own:
// a line ending in a backslash continues on the next, blank lines and lines
// whose first non-blank character is '#' are skipped, CR before LF ignored.
std::vector<std::string> include_lines(std::string_view text);

}  // namespace postern::expand
