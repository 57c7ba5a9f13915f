// tables/db/map_source.hpp — the text a map is built from (makemap's input):
// the table file format of reference/table-protocol.md §2, as makemap reads
// it, turned into the records of a map file.
//
//   - CR before LF ignored; a line ending in an odd number of backslashes
//     continues on the next (the backslash and the line break are dropped,
//     the next line is taken as it is);
//   - blank lines and lines whose first non-blank character is `#` are
//     skipped (a `#` later on a line is data, as in file: tables);
//   - map (plain or aliases): the key ends at the first blank or `:`, a key
//     starting with `[` runs to its `]`; then blanks, at most one `:` (so
//     `key value`, `key: value`, `key:value` and `key  :  value` are the
//     same), blanks, and the value to the end of the line, trailing blanks
//     dropped; every entry needs a value;
//   - set: the whole line is the key, the value is "<set>";
//   - keys are lowercased; a key seen twice is an error.
//
// Errors are "NAME:LINE: what was expected", LINE being the first line of an
// entry that continues.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "dbfile.hpp"

namespace postern::dbmap {

enum class MapType { Plain, Aliases, Set };

// For -t aliases: "" when `value` is a valid alias list, else why not.
using ValueCheck = std::function<std::string(std::string_view value)>;

// Parses `text` (read from `name`, used in messages). On success fills
// *records in file order and returns true; else returns false with one
// "NAME:LINE: ..." line in *error.
bool parse_map_source(std::string_view text, const std::string& name, MapType type, const ValueCheck& check,
                      std::vector<Record>* records, std::string* error);

}  // namespace postern::dbmap
