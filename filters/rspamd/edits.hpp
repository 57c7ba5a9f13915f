// filters/rspamd/edits.hpp — the changes filter-rspamd makes to a message's
// header section, and their application.
//
// The filter holds the message until rspamd has answered (rspamd needs all of
// it), then writes it back with these changes; the body is never touched, so
// the changes are described and applied on the header section alone, which
// the program keeps in memory while the body may wait in a file.
//
// Positions follow rspamd's milter (the semantics its proxy gives the same
// reply): removals first, each naming a field by name (case-insensitive) and
// occurrence; then the subject; then additions, each at an "order": 0 is the
// top, N puts the field after N existing ones, -1 at the bottom, -N after
// all but N-1; positions past either end are clamped. Positions count the
// fields left after removals, so fields we add are never removed, and
// several additions at the same position keep their order (the first given
// is the topmost).
//
// Depends on: nothing but the standard library.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::rspamd {

struct HeaderAdd {
    std::string name;
    std::string value;  // may be folded ("\r\n\t" or "\n\t"): see field_lines
    int order = 0;
    friend bool operator==(const HeaderAdd&, const HeaderAdd&) = default;
};

struct HeaderRemove {
    std::string name;
    int which = 0;  // 0 every one, N > 0 the Nth from the top, N < 0 the Nth from the bottom
    friend bool operator==(const HeaderRemove&, const HeaderRemove&) = default;
};

struct Edits {
    std::vector<HeaderAdd> add;
    std::vector<HeaderRemove> remove;
    std::optional<std::string> subject;  // the new value of the first Subject field (added if none)
    bool empty() const { return add.empty() && remove.empty() && !subject; }
    friend bool operator==(const Edits&, const Edits&) = default;
};

// The lines of the field "name: value", without line ends. A line break in
// the value ("\r\n", "\n" or a lone "\r") starts a continuation line, which
// gets a leading tab unless it starts with a space or tab already (a value
// from rspamd cannot start a field of its own). Other control bytes are
// dropped: the lines travel in a line protocol and must stay one line each.
std::vector<std::string> field_lines(std::string_view name, std::string_view value);

// The header section with the edits made. `lines` are its lines without line
// ends, continuation lines included, without the empty line that ends it.
std::vector<std::string> apply_edits(const Edits& edits, const std::vector<std::string>& lines);

}  // namespace postern::rspamd
