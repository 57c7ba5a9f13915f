// dkim/tags.hpp — the tag=value lists of RFC 6376 3.2, the syntax shared by
// the DKIM-Signature header field and the DNS key record.
//
//   tag-list  = tag-spec *( ";" tag-spec ) [ ";" ]
//   tag-spec  = [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]
//   tag-name  = ALPHA *( ALPHA / DIGIT / "_" )
//   tag-value = printable US-ASCII but ";", with inner folding white space
//
// The parse keeps views into the text (the caller keeps the text alive) and
// where each raw value lies, because a verifier must blank the b= value of
// the very header it verifies, byte for byte (3.5, 3.7).
//
// Depends on: dkim/result.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/result.hpp"

namespace postern::dkim {

struct Tag {
    std::string_view name;   // case-sensitive, as 3.2 says
    std::string_view value;  // without the FWS around it
    // The raw value: from just after '=' to just before ';' (or the end),
    // FWS included, as offsets into the parsed text.
    std::size_t raw_begin = 0;
    std::size_t raw_end = 0;
};

struct TagError {
    enum class Kind {
        NoEquals,   // a tag-spec without '='
        BadName,    // empty, or not ALPHA *(ALPHA / DIGIT / "_")
        BadValue,   // a byte outside VALCHAR and FWS
        EmptySpec,  // ";;" or a list that starts with ';'
        Duplicate,  // the same tag twice (3.2: invalid)
    };
    Kind kind = Kind::NoEquals;
    std::string text;  // `duplicate tag "b"`...
};

class TagList {
public:
    static Result<TagList, TagError> parse(std::string_view text);

    const std::vector<Tag>& tags() const { return tags_; }
    const Tag* find(std::string_view name) const;
    std::optional<std::string_view> value(std::string_view name) const;

private:
    std::vector<Tag> tags_;
};

// Splits a colon-separated value (h=, the key record's h= and s=) into its
// items, FWS around each removed. "" gives one empty item.
std::vector<std::string_view> split_colons(std::string_view value);

// FWS (SP, HTAB, CR, LF) removed from both ends.
std::string_view trim_fws(std::string_view s);

}  // namespace postern::dkim
