// tables/sqlite/config.cpp — parser of the table-sqlite configuration file.
//
// A line is `KEY VALUE`: the key ends at the first blank or ':', then blanks
// and a ':' followed by a blank are skipped (table-sqlite accepts `key: value`
// too), the rest of the line is the value. Blank lines and lines whose first
// non-blank character is '#' are skipped; a '#' later on a line is part of the
// value (SQL may hold one in a string).
#include "config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <map>

#include "errno_text.hpp"
#include "postern/support/fd.hpp"

namespace postern::sqlite {
namespace {

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && blank(s.back())) s.remove_suffix(1);
    return s;
}

void split(std::string_view line, std::string_view* key, std::string_view* value) {
    size_t end = line.find_first_of(" \t\r\v\f:");
    if (end == std::string_view::npos) end = line.size();
    *key = line.substr(0, end);
    std::string_view rest = end < line.size() ? line.substr(end + 1) : std::string_view{};  // the separator is eaten
    for (;;) {
        if (!rest.empty() && blank(rest.front())) rest.remove_prefix(1);
        else if (rest.size() >= 2 && rest[0] == ':' && blank(rest[1])) rest.remove_prefix(2);
        else if (rest == ":") rest = {};
        else break;
    }
    *value = rest;
}

// A whole decimal number in [0, max], or nullopt.
std::optional<uint64_t> number(std::string_view text, uint64_t max) {
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end != text.data() + text.size() || n > max) return std::nullopt;
    return n;
}

constexpr uint64_t kMaxBusyTimeoutMs = 60000;  // lookups must wait seconds, not minutes (table.h)
constexpr uint64_t kMaxInt = 2147483647;

class Parser {
public:
    Parser(const std::string& path, Config* out) : path_(path), out_(out) {}

    // One trimmed, non-empty, non-comment line.
    std::optional<std::string> line(size_t lineno, std::string_view text) {
        auto where = [&] { return path_ + ":" + std::to_string(lineno) + ": "; };
        std::string_view key, value;
        split(text, &key, &value);
        if (value.empty()) return where() + "key \"" + std::string(key) + "\" has no value";
        if (auto [it, fresh] = seen_.try_emplace(std::string(key), lineno); !fresh)
            return where() + "duplicate key \"" + std::string(key) + "\" (first on line " + std::to_string(it->second) +
                   ")";
        if (auto e = assign(key, value, lineno)) return where() + *e;
        return std::nullopt;
    }

    std::optional<std::string> finish() {
        if (out_->dbpath.empty()) return path_ + ": no dbpath (the SQLite database to open)";
        bool any = out_->fetch_source.has_value();
        for (const auto& q : out_->queries) any = any || q.has_value();
        if (!any) return path_ + ": no query_* or fetch_source: the table would answer nothing";
        return std::nullopt;
    }

private:
    std::optional<std::string> assign(std::string_view key, std::string_view value, size_t lineno) {
        if (key == "dbpath") {
            if (value.front() != '/') return "dbpath must be an absolute path, not \"" + std::string(value) + "\"";
            out_->dbpath = value;
            out_->dbpath_line = lineno;
        } else if (auto i = key_index(key)) {
            out_->queries[*i] = Query{std::string(value), lineno};
        } else if (key == "fetch_source") {
            out_->fetch_source = Query{std::string(value), lineno};
        } else if (key == "fetch_source_expire") {
            auto n = number(value, kMaxInt);
            if (!n)
                return "fetch_source_expire: expected seconds from 0 to 2147483647, not \"" + std::string(value) + "\"";
            out_->source_expire = std::chrono::seconds(*n);
        } else if (key == "fetch_source_refresh") {
            auto n = number(value, kMaxInt);
            if (!n)
                return "fetch_source_refresh: expected a count from 0 to 2147483647, not \"" + std::string(value) +
                       "\"";
            out_->source_refresh = *n;
        } else if (key == "busy_timeout") {
            auto n = number(value, kMaxBusyTimeoutMs);
            if (!n) return "busy_timeout: expected milliseconds from 0 to 60000, not \"" + std::string(value) + "\"";
            out_->busy_timeout = std::chrono::milliseconds(*n);
        } else {
            return "unknown key \"" + std::string(key) + "\" (see postern-table-sqlite(5))";
        }
        return std::nullopt;
    }

    const std::string& path_;
    Config* out_;
    std::map<std::string, size_t, std::less<>> seen_;  // key -> first line
};

}  // namespace

std::optional<std::string> parse_config(const std::string& path, std::string_view text, Config* out) {
    Config config;
    config.path = path;
    Parser parser(path, &config);
    size_t lineno = 0;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        std::string_view raw = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        ++lineno;
        if (raw.find('\0') != std::string_view::npos) return path + ":" + std::to_string(lineno) + ": NUL byte in line";
        std::string_view line = trim(raw);
        if (line.empty() || line.front() == '#') continue;
        if (auto e = parser.line(lineno, line)) return e;
    }
    if (auto e = parser.finish()) return e;
    *out = std::move(config);
    return std::nullopt;
}

std::optional<std::string> load_config(const std::string& path, Config* out) {
    util::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return path + ": " + errno_text(errno);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return path + ": " + errno_text(errno);
    if (!S_ISREG(st.st_mode)) return path + ": not a regular file";
    std::string text;
    char buf[16384];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            return path + ": " + errno_text(errno);
        }
        text.append(buf, static_cast<size_t>(n));
    }
    return parse_config(path, text, out);
}

}  // namespace postern::sqlite
