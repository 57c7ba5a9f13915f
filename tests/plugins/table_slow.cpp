// tests/plugins/table_slow.cpp — table-slow.so: a map table that takes 2 s
// to answer each lookup and each iteration, as a remote database on a bad
// day would. tests/integration/test_slow_table.py routes relay mail with it
// and checks that SMTP sessions on the same daemon are answered meanwhile:
// table calls must never run on the event loop.
//
// Config: the absolute path of a file of "KEY VALUE" lines, read once at
// open. When a file named PATH.calls exists and is writable, each call
// appends one line to it ("lookup KEY" or "iterate") once it is answered,
// so that a test can tell the table was asked.
#include <postern/table.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>

namespace {

constexpr auto kDelay = std::chrono::seconds(2);

struct Table {
    std::string calls;  // PATH.calls
    std::map<std::string, std::string> entries;
};

void note(const Table& t, const std::string& line) {
    int fd = ::open(t.calls.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return;
    std::string text = line + "\n";
    (void)!::write(fd, text.data(), text.size());
    ::close(fd);
}

int table_open(const char* config, void** handle, uint32_t* flags, char* err, size_t errlen) {
    std::ifstream in(config);
    if (!in) {
        std::snprintf(err, errlen, "slow: cannot read %s", config);
        return POSTERN_TEMPFAIL;
    }
    auto t = std::make_unique<Table>();
    t->calls = std::string(config) + ".calls";
    std::string key, value;
    while (in >> key >> value) t->entries[key] = value;
    *flags = POSTERN_TABLE_ITERABLE;
    *handle = t.release();  // freed by table_close
    return POSTERN_OK;
}

int table_reload(void*, uint32_t* flags, char*, size_t) {
    *flags = POSTERN_TABLE_ITERABLE;
    return POSTERN_OK;
}

int table_lookup(void* handle, const char* key, postern_table_value_cb cb, void* ctx, char*, size_t) {
    const auto& t = *static_cast<const Table*>(handle);
    std::this_thread::sleep_for(kDelay);
    note(t, std::string("lookup ") + key);
    auto it = t.entries.find(key);
    if (it == t.entries.end()) return POSTERN_NOTFOUND;
    cb(ctx, it->second.c_str());
    return POSTERN_OK;
}

int table_iterate(void* handle, postern_table_entry_cb cb, void* ctx, char*, size_t) {
    const auto& t = *static_cast<const Table*>(handle);
    std::this_thread::sleep_for(kDelay);
    note(t, "iterate");
    for (const auto& [k, v] : t.entries) cb(ctx, k.c_str(), v.c_str());
    return POSTERN_OK;
}

void table_close(void* handle) { std::unique_ptr<Table> owned(static_cast<Table*>(handle)); }

const struct postern_table_plugin plugin = {
    POSTERN_ABI_VERSION,
    sizeof(postern_table_plugin),
    "slow",
    table_open,
    table_reload,
    table_lookup,
    table_iterate,
    table_close,
    nullptr,
    nullptr,
    nullptr,
};

}  // namespace

extern "C" POSTERN_EXPORT const struct postern_table_plugin* postern_table_plugin(void) { return &plugin; }
