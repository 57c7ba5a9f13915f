// dkim/key_table.cpp — the key table: parsed, its keys loaded, looked up.

#include "dkim/key_table.hpp"

#include "dkim/file.hpp"
#include "dkim/headers.hpp"
#include "postern/support/ascii.hpp"

namespace postern::dkim {

namespace {

// A key table is a few lines per domain; a megabyte is the wrong file.
constexpr std::size_t kMaxTable = 1 << 20;

std::vector<std::string_view> fields_of(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
        if (i == line.size() || line[i] == '#') break;  // a comment runs to the end of the line
        std::size_t begin = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') ++i;
        out.push_back(line.substr(begin, i - begin));
    }
    return out;
}

std::string where(const std::string& name, std::size_t line) { return name + ":" + std::to_string(line) + ": "; }

std::string resolve(std::string_view file, const std::string& dir) {
    if (file.front() == '/' || dir.empty()) return std::string(file);
    return dir + (dir.back() == '/' ? "" : "/") + std::string(file);
}

// The entry for one line of fields, its key loaded; an error without the
// "FILE:LINE: " the caller puts in front.
Result<KeyEntry, TableError> entry(const std::vector<std::string_view>& f, const std::string& dir) {
    if (f.size() != 3)
        return TableError{"expected DOMAIN SELECTOR KEYFILE, found " + std::to_string(f.size()) +
                          (f.size() == 1 ? " field" : " fields")};
    std::string domain = util::lowercase(f[0]);
    if (domain != "*" && !is_domain_name(domain))
        return TableError{"expected a domain name or \"*\", found \"" + std::string(f[0]) + "\""};
    if (!is_domain_name(f[1]))
        return TableError{"expected a selector (letters, digits, '-', '.'), found \"" + std::string(f[1]) + "\""};
    KeyEntry e{domain, std::string(f[1]), resolve(f[2], dir), 0, {}};
    auto key = load_private_key(e.file);
    if (!key) return TableError{key.error().text};
    e.key = std::move(key).value();
    return e;
}

const KeyEntry* same_pair(const std::vector<KeyEntry>& entries, const KeyEntry& e) {
    for (const KeyEntry& other : entries)
        if (other.domain == e.domain && util::iequals(other.selector, e.selector)) return &other;
    return nullptr;
}

}  // namespace

Result<KeyTable, TableError> KeyTable::parse(std::string_view text, const std::string& name, const std::string& dir) {
    KeyTable table;
    std::size_t number = 0;
    while (!text.empty()) {
        std::size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        ++number;
        std::vector<std::string_view> f = fields_of(line);
        if (f.empty()) continue;
        auto e = entry(f, dir);
        if (!e) return TableError{where(name, number) + e.error().text};
        e.value().line = number;
        // Two signatures under one selector would publish one key for two.
        if (const KeyEntry* dup = same_pair(table.entries_, e.value()))
            return TableError{where(name, number) + dup->domain + " " + dup->selector + " is already on line " +
                              std::to_string(dup->line)};
        table.entries_.push_back(std::move(e).value());
    }
    if (table.entries_.empty()) return TableError{name + ": no keys (expected lines DOMAIN SELECTOR KEYFILE)"};
    return table;
}

Result<KeyTable, TableError> KeyTable::load(const std::string& path) {
    std::string text;
    if (auto why = read_file(path, text, kMaxTable)) return TableError{path + ": cannot read: " + *why};
    if (text.size() > kMaxTable) return TableError{path + ": too large to be a key table (over 1 MiB)"};
    std::size_t slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
    return parse(text, path, dir);
}

std::vector<KeyMatch> KeyTable::lookup(std::string_view from_domain) const {
    std::string domain = util::lowercase(from_domain);
    std::vector<KeyMatch> out;
    if (!is_domain_name(domain)) return out;  // it becomes d=: nothing else may
    for (const KeyEntry& e : entries_)
        if (e.domain == domain) out.push_back({domain, e.selector, &e.key});
    if (!out.empty()) return out;
    for (const KeyEntry& e : entries_)
        if (e.domain == "*") out.push_back({domain, e.selector, &e.key});
    return out;
}

}  // namespace postern::dkim
