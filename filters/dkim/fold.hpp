// dkim/fold.hpp — lays out a header field we write (DKIM-Signature,
// Authentication-Results) over lines short enough for every mail system.
//
// Lines are kept under 78 columns (RFC 5322 2.1.1's SHOULD), a tab counted
// as 8 as a reader's terminal shows it; continuation lines start with one
// HTAB. Lines are returned without line ends: the caller writes them with
// whatever ends its transport uses (CRLF in a message, one protocol line
// each for a filter). A piece too long for any line (a long domain) is
// written whole on a line of its own rather than cut where folding is not
// allowed.
//
// Depends on: nothing but the standard library.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace postern::dkim {

class Folder {
public:
    // Lines stay at or under this many columns (so under 78).
    static constexpr std::size_t kWidth = 76;

    // Starts the field: "Name:" (no space yet).
    explicit Folder(std::string_view name);

    // A piece that must not be split, after a space if `space` (or at the
    // start of a continuation line when it does not fit).
    void word(std::string_view piece, bool space = true);

    // Text that may be folded between any two characters (base64: RFC 6376
    // allows FWS anywhere in it): fills the line, then continues on the next.
    void breakable(std::string_view text);

    const std::vector<std::string>& lines() const { return lines_; }
    std::vector<std::string> take() { return std::move(lines_); }

    // The field as one string, lines joined by CRLF: what the field's value
    // is in the message (for hashing), from just after the colon.
    std::string value() const;

private:
    std::size_t columns() const;
    void new_line();

    std::vector<std::string> lines_;
    std::size_t name_size_;
};

}  // namespace postern::dkim
