// tables/proc/config.cpp — see config.hpp.
#include "config.hpp"

#include <charconv>

namespace postern::proctable {
namespace {

bool blank(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && (blank(s.back()) || s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

// Cut the first blank-separated word off `s`.
std::string_view next_word(std::string_view& s) {
    std::size_t end = 0;
    while (end < s.size() && !blank(s[end])) ++end;
    std::string_view word = s.substr(0, end);
    s.remove_prefix(end);
    while (!s.empty() && blank(s.front())) s.remove_prefix(1);
    return word;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// The name goes into protocol lines between '|' and into argv[0].
bool valid_name(std::string_view name) {
    if (name.empty() || name.size() > 255) return false;
    for (char c : name)
        if (c == '|' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
    return true;
}

std::string_view basename(std::string_view path) {
    std::size_t slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::variant<Config, std::string> parse_config(std::string_view text) {
    std::string_view rest = trim(text);
    if (rest.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
        return std::string("the config holds a line break or NUL byte");
    Config c;
    c.program = std::string(next_word(rest));
    if (c.program.empty()) return std::string("no program given (expected proc:/path/to/program [argument])");
    if (c.program.front() != '/') return "the program must be an absolute path, not \"" + c.program + "\"";
    c.name = std::string(basename(c.program));
    if (c.name.empty()) return "\"" + c.program + "\" names a folder, not a program";
    c.protocol = starts_with(c.program, kOpensmtpdLibexec) ? Protocol::Imsg : Protocol::Line;

    for (;;) {
        std::string_view probe = rest;
        std::string_view word = next_word(probe);
        if (starts_with(word, "protocol=")) {
            std::string_view v = word.substr(9);
            if (v == "imsg") c.protocol = Protocol::Imsg;
            else if (v == "line") c.protocol = Protocol::Line;
            else return "protocol=" + std::string(v) + ": expected protocol=imsg or protocol=line";
        } else if (starts_with(word, "name=")) {
            std::string_view v = word.substr(5);
            if (!valid_name(v)) return "name=" + std::string(v) + ": expected a name without '|' or control characters";
            c.name = std::string(v);
        } else if (starts_with(word, "timeout=")) {
            std::string_view v = word.substr(8);
            int n = 0;
            auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
            if (ec != std::errc() || end != v.data() + v.size() || n < 1 || n > 300)
                return "timeout=" + std::string(v) + ": expected a number of seconds from 1 to 300";
            c.timeout_seconds = n;
        } else {
            break;
        }
        rest = probe;
    }
    if (!valid_name(c.name)) return "the program's file name \"" + c.name + "\" cannot be a table name; give name=";
    c.argument = std::string(rest);
    return c;
}

}  // namespace postern::proctable
