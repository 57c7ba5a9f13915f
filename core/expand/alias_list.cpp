// Splitting and classifying alias values; see alias_list.hpp.
#include "expand/alias_list.hpp"
#include "util/ascii.hpp"

#include <algorithm>
#include <cctype>

namespace postern::expand {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
using util::is_alnum;
bool is_control(char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
    return s;
}

using util::istarts_with;

// One element being built: text plus how much of it must survive trimming
// (escaped or quoted characters are never trimmed away).
struct Builder {
    std::string text;
    std::size_t keep = 0;
    bool started = false;

    void add(char c, bool protect) {
        text += c;
        started = true;
        if (protect || !is_blank(c)) keep = text.size();
    }
    void flush(std::vector<std::string>* out) {
        text.resize(keep);
        if (!text.empty()) out->push_back(std::move(text));
        *this = Builder{};
    }
};

bool split(std::string_view v, bool strict, std::vector<std::string>* out, std::string* error) {
    Builder cur;
    for (std::size_t i = 0; i < v.size(); ++i) {
        char c = v[i];
        if (c == '\\') {
            if (i + 1 == v.size()) {
                if (strict) return *error = "trailing backslash", false;
                cur.add(c, true);
                break;
            }
            cur.add(v[++i], true);
        } else if ((c == '"' || c == '\'') && !cur.started) {
            auto close = v.find(c, i + 1);
            if (close == std::string_view::npos) {
                if (strict) return *error = "unterminated quote", false;
                close = v.size();
            }
            cur.started = true;
            for (char q : v.substr(i + 1, close - i - 1)) cur.add(q, true);
            i = close;
        } else if (c == ',') {
            cur.flush(out);
        } else if (!is_blank(c) || cur.started) {
            cur.add(c, false);
        }
    }
    cur.flush(out);
    return true;
}

Element invalid(std::string why) { return {Element::Kind::Invalid, std::move(why), 0}; }

// `NNN text`: 4xx or 5xx, one space, text starting with a letter or digit.
Element classify_error(std::string_view rest) {
    if (rest.size() < 5 || (rest[0] != '4' && rest[0] != '5') || !std::isdigit(static_cast<unsigned char>(rest[1])) ||
        !std::isdigit(static_cast<unsigned char>(rest[2])) || rest[3] != ' ' || !is_alnum(rest[4]))
        return invalid("error: needs a 4xx or 5xx code, a space and a text");
    int code = (rest[0] - '0') * 100 + (rest[1] - '0') * 10 + (rest[2] - '0');
    return {Element::Kind::Error, std::string(trim(rest.substr(4))), code};
}

bool local_char(char c) {
    static constexpr std::string_view extra = "!#$%*/?|^{}`~&'+-=_.";
    return is_alnum(c) || extra.find(c) != std::string_view::npos;
}
bool domain_char(char c) { return is_alnum(c) || c == '-' || c == '.'; }

Element classify_address(std::string_view text) {
    auto at = text.find('@');
    std::string_view local = text.substr(0, at), domain = text.substr(at + 1);
    if (local.empty() || domain.empty() || !std::all_of(local.begin(), local.end(), local_char) ||
        !std::all_of(domain.begin(), domain.end(), domain_char))
        return invalid("'" + std::string(text) + "' is not a valid address");
    return {Element::Kind::Address, std::string(local) + "@" + util::lowercase(domain), 0};
}

}  // namespace

std::vector<std::string> split_alias_list(std::string_view value) {
    std::vector<std::string> out;
    std::string unused;
    split(value, false, &out, &unused);
    return out;
}

bool split_alias_list(std::string_view value, std::vector<std::string>* out, std::string* error) {
    out->clear();
    return split(value, true, out, error);
}

Element classify_element(std::string_view text, char delim) {
    text = trim(text);
    if (text.empty()) return invalid("empty element");
    if (std::any_of(text.begin(), text.end(), is_control)) return invalid("control character in element");
    for (std::string_view p : {"error:", ":error:"})
        if (istarts_with(text, p)) return classify_error(text.substr(p.size()));
    for (std::string_view p : {":include:", "include:"}) {
        if (!istarts_with(text, p)) continue;
        std::string_view path = trim(text.substr(p.size()));
        if (path.empty() || path.front() != '/') return invalid(":include: needs an absolute path");
        return {Element::Kind::Include, std::string(path), 0};
    }
    if (text.front() == '|') {
        std::string_view cmd = trim(text.substr(1));
        if (cmd.empty()) return invalid("empty command");
        return {Element::Kind::Command, std::string(cmd), 0};
    }
    if (text.front() == '/') return {Element::Kind::File, std::string(text), 0};
    if (text.find('@') != std::string_view::npos) return classify_address(text);
    bool user_ok = std::all_of(text.begin(), text.end(), [delim](char c) {
        return is_alnum(c) || c == '_' || c == '.' || c == '-' || c == '+' || c == delim;
    });
    if (!user_ok) return invalid("'" + std::string(text) + "' is not a user name, address, path or command");
    return {Element::Kind::User, util::lowercase(text), 0};
}

std::vector<std::string> include_lines(std::string_view text) {
    std::vector<std::string> out;
    std::string logical;
    while (!text.empty()) {
        auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (!line.empty() && line.back() == '\\') {  // continued on the next line
            logical.append(line.substr(0, line.size() - 1));
            continue;
        }
        logical.append(line);
        std::string_view t = trim(logical);
        if (!t.empty() && t.front() != '#') out.emplace_back(t);
        logical.clear();
    }
    std::string_view t = trim(logical);  // a continuation on the last line
    if (!t.empty() && t.front() != '#') out.emplace_back(t);
    return out;
}

}  // namespace postern::expand
