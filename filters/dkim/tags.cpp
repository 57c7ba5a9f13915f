// dkim/tags.cpp — RFC 6376 3.2 tag lists.

#include "dkim/tags.hpp"

#include "postern/support/ascii.hpp"

namespace postern::dkim {

namespace {

bool is_fws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_valchar(char c) { return c >= 0x21 && c <= 0x7e && c != ';'; }

bool is_tag_name(std::string_view s) {
    if (s.empty() || !util::is_alpha(s.front())) return false;
    for (char c : s)
        if (!util::is_alnum(c) && c != '_') return false;
    return true;
}

std::string quoted(std::string_view s) { return "\"" + std::string(s.substr(0, 40)) + "\""; }

// One tag-spec, text[begin, end): the ';' are the caller's.
Result<Tag, TagError> parse_spec(std::string_view text, std::size_t begin, std::size_t end) {
    std::string_view spec = text.substr(begin, end - begin);
    std::size_t eq = spec.find('=');
    if (eq == std::string_view::npos)
        return TagError{TagError::Kind::NoEquals, "expected NAME=VALUE, found " + quoted(trim_fws(spec))};
    std::string_view name = trim_fws(spec.substr(0, eq));
    if (!is_tag_name(name)) return TagError{TagError::Kind::BadName, "bad tag name " + quoted(name)};
    Tag tag;
    tag.name = name;
    tag.raw_begin = begin + eq + 1;
    tag.raw_end = end;
    tag.value = trim_fws(text.substr(tag.raw_begin, tag.raw_end - tag.raw_begin));
    for (char c : tag.value)
        if (!is_valchar(c) && !is_fws(c))
            return TagError{TagError::Kind::BadValue,
                            "tag \"" + std::string(name) + "\": a byte not allowed in a value"};
    return tag;
}

}  // namespace

std::string_view trim_fws(std::string_view s) {
    while (!s.empty() && is_fws(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_fws(s.back())) s.remove_suffix(1);
    return s;
}

Result<TagList, TagError> TagList::parse(std::string_view text) {
    TagList list;
    std::size_t begin = 0;
    while (begin <= text.size()) {
        std::size_t end = text.find(';', begin);
        bool last = end == std::string_view::npos;
        if (last) end = text.size();
        if (trim_fws(text.substr(begin, end - begin)).empty()) {
            // Only the end may be empty: "a=1;" ends with an optional ';'.
            if (last && begin > 0) break;
            return TagError{TagError::Kind::EmptySpec, "an empty tag (\";;\" or a leading ';')"};
        }
        auto tag = parse_spec(text, begin, end);
        if (!tag) return tag.error();
        if (list.find(tag.value().name) != nullptr)
            return TagError{TagError::Kind::Duplicate, "duplicate tag \"" + std::string(tag.value().name) + "\""};
        list.tags_.push_back(tag.value());
        if (last) break;
        begin = end + 1;
    }
    return list;
}

const Tag* TagList::find(std::string_view name) const {
    for (const Tag& t : tags_)
        if (t.name == name) return &t;
    return nullptr;
}

std::optional<std::string_view> TagList::value(std::string_view name) const {
    const Tag* t = find(name);
    if (t == nullptr) return std::nullopt;
    return t->value;
}

std::vector<std::string_view> split_colons(std::string_view value) {
    std::vector<std::string_view> items;
    std::size_t begin = 0;
    while (true) {
        std::size_t colon = value.find(':', begin);
        if (colon == std::string_view::npos) {
            items.push_back(trim_fws(value.substr(begin)));
            return items;
        }
        items.push_back(trim_fws(value.substr(begin, colon - begin)));
        begin = colon + 1;
    }
}

}  // namespace postern::dkim
