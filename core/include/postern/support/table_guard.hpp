// postern/support/table_guard.hpp — the C ABI edge of a table plugin.
// Part of the plugin SDK: header-only, C++17.
//
// Every entry point of a table plugin (open, reload, lookup, ...) ends the
// same way: no exception may cross the C ABI, and a failure leaves one line
// in the caller's err buffer. Plugins write their entry points as
//     return postern::util::guarded_table("table-foo", err, errlen, [&] { ...; return POSTERN_OK; });
// and report their own failures with set_error().
#pragma once

#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "postern/table.h"

namespace postern::util {

// One line into the caller's buffer, truncated to fit (abi.h).
inline void set_error(char* err, size_t errlen, const std::string& msg) {
    if (err && errlen) (void)std::snprintf(err, errlen, "%s", msg.c_str());
}

// f() as the entry point's result; an exception becomes POSTERN_TEMPFAIL
// with "PLUGIN: what" in err.
template <typename F>
int guarded_table(const char* plugin, char* err, size_t errlen, F&& f) noexcept {
    try {
        return f();
    } catch (const std::bad_alloc&) {
        set_error(err, errlen, std::string(plugin) + ": out of memory");
    } catch (const std::exception& e) {
        set_error(err, errlen, std::string(plugin) + ": " + e.what());
    } catch (...) {
        set_error(err, errlen, std::string(plugin) + ": unexpected error");
    }
    return POSTERN_TEMPFAIL;
}

}  // namespace postern::util
