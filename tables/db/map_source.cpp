// tables/db/map_source.cpp — makemap's input parser; rules in map_source.hpp.
#include "map_source.hpp"

#include <unordered_map>

#include "postern/support/ascii.hpp"

namespace postern::dbmap {
namespace {

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && blank(s.back())) s.remove_suffix(1);
    return s;
}

bool continues(std::string_view line) {
    size_t n = 0;
    while (n < line.size() && line[line.size() - 1 - n] == '\\') ++n;
    return n % 2 == 1;
}

// Yields logical lines: physical lines joined where a backslash continues
// them, with the number of the first.
class Lines {
public:
    explicit Lines(std::string_view text) : text_(text) {}

    bool next(std::string* line, size_t* first) {
        line->clear();
        bool started = false;
        while (!text_.empty()) {
            size_t nl = text_.find('\n');
            std::string_view raw = text_.substr(0, nl);
            text_ = nl == std::string_view::npos ? std::string_view{} : text_.substr(nl + 1);
            ++number_;
            if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
            if (!started) {
                *first = number_;
                started = true;
                // A comment never continues: a backslash ending one must not
                // swallow the entry below it.
                std::string_view t = trim(raw);
                if (!t.empty() && t.front() == '#') {
                    line->assign(t);
                    return true;
                }
            }
            if (!continues(raw)) {
                line->append(raw);
                return true;
            }
            raw.remove_suffix(1);
            line->append(raw);
        }
        return started;
    }

private:
    std::string_view text_;
    size_t number_ = 0;
};

// Splits an entry line into key and value per map_source.hpp; "" or why not.
std::string split(std::string_view line, std::string_view* key, std::string_view* value) {
    size_t end;
    if (line.front() == '[') {
        size_t close = line.find(']');
        if (close == std::string_view::npos) return "expected ']' to end the key \"" + std::string(line) + "\"";
        end = close + 1;
        if (end < line.size() && !blank(line[end]) && line[end] != ':')
            return "expected a blank or ':' after the key \"" + std::string(line.substr(0, end)) + "\"";
    } else {
        end = 0;
        while (end < line.size() && !blank(line[end]) && line[end] != ':') ++end;
    }
    *key = line.substr(0, end);
    std::string_view rest = line.substr(end);
    bool colon = !rest.empty() && rest.front() == ':';
    if (colon) rest.remove_prefix(1);
    while (!rest.empty() && blank(rest.front())) rest.remove_prefix(1);
    if (!colon && !rest.empty() && rest.front() == ':') {  // `key : value`
        rest.remove_prefix(1);
        while (!rest.empty() && blank(rest.front())) rest.remove_prefix(1);
    }
    *value = rest;
    return {};
}

}  // namespace

bool parse_map_source(std::string_view text, const std::string& name, MapType type, const ValueCheck& check,
                      std::vector<Record>* records, std::string* error) {
    std::vector<Record> out;
    std::unordered_map<std::string, size_t> first_line;  // key -> line it was first given on
    Lines lines(text);
    std::string logical;
    size_t lineno = 0;
    while (lines.next(&logical, &lineno)) {
        auto fail = [&](const std::string& what) {
            *error = name + ":" + std::to_string(lineno) + ": " + what;
            return false;
        };
        std::string_view line = trim(logical);
        if (line.empty() || line.front() == '#') continue;
        if (line.find('\0') != std::string_view::npos) return fail("expected text, found a NUL byte");

        std::string_view key, value;
        if (type == MapType::Set) {
            key = line;
            value = kSetValue;
        } else {
            if (std::string why = split(line, &key, &value); !why.empty()) return fail(why);
            if (key.empty()) return fail("expected a key before ':'");
            if (value.empty())
                return fail("expected a value after the key \"" + std::string(key) +
                            "\" (a list of keys needs -t set)");
        }
        std::string k = util::lowercase(key);
        auto [seen, fresh] = first_line.try_emplace(k, lineno);
        if (!fresh)
            return fail("duplicate key \"" + k + "\" (first given on line " + std::to_string(seen->second) +
                        "): expected each key once");
        if (type == MapType::Aliases && check) {
            if (std::string why = check(value); !why.empty()) return fail("invalid alias for \"" + k + "\": " + why);
        }
        out.push_back({std::move(k), std::string(value)});
    }
    *records = std::move(out);
    return true;
}

}  // namespace postern::dbmap
