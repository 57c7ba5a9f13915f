// tables/file/table_file.cpp — table-file.so, the static file table backend.
//
// Reads the OpenSMTPD static table format (table(5); reference/table-protocol.md
// §2) so existing `table aliases file:/etc/mail/aliases` lines work unchanged:
//
//   - blank lines skipped; a line whose first non-blank char is `#` is a
//     comment (a `#` later on the line is data); `# @list` before any entry
//     forces list mode;
//   - the key ends at the first space, tab or `:`; a key starting with `[`
//     runs to the matching `]` (IPv6 keys such as `[::1]`);
//   - the first entry decides: no value -> list, value -> map; in a map a line
//     without a value rejects the file; in a list the whole line is the key;
//   - duplicate keys: the last one wins; keys are lowercased; empty file = map.
//
// Config: the path of the file. Thread-safety: the parsed content is
// immutable and swapped under a std::shared_mutex by reload(), which keeps the
// old content when the new file does not parse.
#include <postern/table.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "postern/support/ascii.hpp"
#include "postern/support/fd.hpp"
#include "postern/support/table_guard.hpp"

namespace {

using postern::util::guarded_table;
using postern::util::set_error;

struct Content {
    bool list = false;
    // Entries in file order (for iterate) and an index for lookup.
    std::vector<std::pair<std::string, std::string>> entries;
    std::unordered_map<std::string, size_t> index;
};

struct Table {
    std::string path;
    mutable std::shared_mutex lock;
    std::shared_ptr<const Content> content;
};

using postern::util::lowercase;

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && blank(s.back())) s.remove_suffix(1);
    return s;
}

void add(Content& c, std::string key, std::string value) {
    auto [it, inserted] = c.index.try_emplace(key, c.entries.size());
    if (inserted) c.entries.emplace_back(std::move(key), std::move(value));
    else c.entries[it->second].second = std::move(value);  // last one wins
}

// Split a trimmed entry line into key and value ("" when there is none).
// Returns an error text for a malformed key.
std::optional<std::string> split(std::string_view line, std::string_view* key, std::string_view* value) {
    size_t end;
    if (line.front() == '[') {
        size_t close = line.find(']');
        if (close == std::string_view::npos) return "malformed key (no closing ])";
        end = close + 1;
        if (end < line.size() && line[end] != ' ' && line[end] != '\t' && line[end] != ':')
            return "malformed key (text after ])";
    } else {
        end = line.find_first_of(" \t:");
        if (end == std::string_view::npos) end = line.size();
    }
    *key = line.substr(0, end);
    std::string_view rest = end < line.size() ? line.substr(end + 1) : std::string_view{};
    while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
    *value = rest;
    return std::nullopt;
}

bool is_list_marker(std::string_view comment) {
    comment.remove_prefix(1);  // the '#'
    return trim(comment) == "@list";
}

// Parse the whole file text. On error return "PATH:LINE: reason".
std::optional<std::string> parse(const std::string& path, std::string_view text, Content* out) {
    Content c;
    bool decided = false;
    size_t lineno = 0;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        std::string_view raw = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        ++lineno;
        auto where = [&] { return path + ":" + std::to_string(lineno) + ": "; };

        std::string_view line = trim(raw);
        if (line.empty()) continue;
        if (line.find('\0') != std::string_view::npos) return where() + "NUL byte in line";
        if (line.front() == '#') {
            if (!decided && is_list_marker(line)) {
                c.list = true;
                decided = true;
            }
            continue;
        }
        std::string_view key, value;
        if (auto e = split(line, &key, &value)) return where() + *e;
        if (key.empty()) return where() + "empty key";
        if (!decided) {
            c.list = value.empty();
            decided = true;
        }
        if (c.list) {
            add(c, lowercase(line), {});
        } else {
            if (value.empty()) return where() + "invalid map entry (key \"" + std::string(key) + "\" has no value)";
            add(c, lowercase(key), std::string(value));
        }
    }
    *out = std::move(c);
    return std::nullopt;
}

// Read the whole file; false with errno set on failure.
bool read_file(const std::string& path, std::string* text) {
    postern::util::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return false;
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return false;
    if (!S_ISREG(st.st_mode)) {
        errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        return false;
    }
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n == 0) return true;
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        text->append(buf, static_cast<size_t>(n));
    }
}

// Read and parse `path`. On failure store the reason and return nullptr.
std::shared_ptr<const Content> load(const std::string& path, int* status, std::string* error) {
    std::string text;
    if (!read_file(path, &text)) {
        *error = path + ": " + std::strerror(errno);
        *status = POSTERN_TEMPFAIL;
        return nullptr;
    }
    auto content = std::make_shared<Content>();
    if (auto e = parse(path, text, content.get())) {
        *error = *e;
        *status = POSTERN_PERMFAIL;
        return nullptr;
    }
    return content;
}

uint32_t flags_of(const Content& c) { return POSTERN_TABLE_ITERABLE | (c.list ? POSTERN_TABLE_LIST : 0u); }

std::shared_ptr<const Content> snapshot(const Table& t) {
    std::shared_lock guard(t.lock);
    return t.content;
}

int table_open(const char* config, void** handle, uint32_t* flags, char* err, size_t errlen) {
    return guarded_table("table-file", err, errlen, [&] {
        if (!config || !*config) {
            set_error(err, errlen, "table-file: no file given");
            return static_cast<int>(POSTERN_PERMFAIL);
        }
        auto t = std::make_unique<Table>();
        t->path = config;
        int status = POSTERN_OK;
        std::string error;
        t->content = load(t->path, &status, &error);
        if (!t->content) {
            set_error(err, errlen, error);
            return status;
        }
        *flags = flags_of(*t->content);
        *handle = t.release();
        return static_cast<int>(POSTERN_OK);
    });
}

int table_reload(void* handle, uint32_t* flags, char* err, size_t errlen) {
    return guarded_table("table-file", err, errlen, [&] {
        auto* t = static_cast<Table*>(handle);
        int status = POSTERN_OK;
        std::string error;
        auto fresh = load(t->path, &status, &error);
        if (!fresh) {  // keep serving the old content
            set_error(err, errlen, error);
            return status;
        }
        *flags = flags_of(*fresh);
        std::unique_lock guard(t->lock);
        t->content = std::move(fresh);
        return static_cast<int>(POSTERN_OK);
    });
}

int table_lookup(void* handle, const char* key, postern_table_value_cb cb, void* ctx, char* err, size_t errlen) {
    return guarded_table("table-file", err, errlen, [&] {
        auto content = snapshot(*static_cast<Table*>(handle));
        auto it = content->index.find(lowercase(key ? key : ""));
        if (it == content->index.end()) return static_cast<int>(POSTERN_NOTFOUND);
        const auto& [k, v] = content->entries[it->second];
        cb(ctx, content->list ? k.c_str() : v.c_str());
        return static_cast<int>(POSTERN_OK);
    });
}

int table_iterate(void* handle, postern_table_entry_cb cb, void* ctx, char* err, size_t errlen) {
    return guarded_table("table-file", err, errlen, [&] {
        auto content = snapshot(*static_cast<Table*>(handle));
        for (const auto& [k, v] : content->entries) cb(ctx, k.c_str(), content->list ? nullptr : v.c_str());
        return static_cast<int>(POSTERN_OK);
    });
}

void table_close(void* handle) {
    std::unique_ptr<Table> owned(static_cast<Table*>(handle));  // released by table_open
}

const struct postern_table_plugin plugin = {
    POSTERN_ABI_VERSION,
    sizeof(postern_table_plugin),
    "file",
    table_open,
    table_reload,
    table_lookup,
    table_iterate,
    table_close,
    nullptr,  // lookup_service: one map answers every service
    nullptr,  // fetch: source and relayhost values come by iterate
    nullptr,  // services: every service
};

}  // namespace

extern "C" POSTERN_EXPORT const struct postern_table_plugin* postern_table_plugin(void) { return &plugin; }
