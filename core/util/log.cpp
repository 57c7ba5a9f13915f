// Logging to stderr or syslog; see log.hpp.
#include "util/log.hpp"

#include <syslog.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace postern::log {
namespace {

std::atomic<bool> g_stderr{true};
std::atomic<bool> g_verbose{false};
std::mutex g_mutex;  // keeps lines from several threads whole on stderr

void emit(int priority, std::string_view level, std::string_view line) {
    if (!g_stderr) {
        syslog(priority, "%.*s", static_cast<int>(line.size()), line.data());
        return;
    }
    auto now = std::chrono::system_clock::now();
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    localtime_r(&t, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    std::lock_guard lock(g_mutex);
    std::fprintf(stderr, "%s %.*s%.*s\n", stamp, static_cast<int>(level.size()), level.data(),
                 static_cast<int>(line.size()), line.data());
}

bool needs_quotes(std::string_view v) {
    if (v.empty()) return true;
    for (unsigned char c : v)
        if (c <= ' ' || c == '"' || c == '\\' || c == '=' || c >= 0x7f) return true;
    return false;
}

}  // namespace

void init(bool to_stderr, bool verbose) {
    g_stderr = to_stderr;
    g_verbose = verbose;
    if (!to_stderr) openlog("postern", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void set_verbose(bool v) { g_verbose = v; }
bool verbose() { return g_verbose; }

void info(std::string_view line) { emit(LOG_INFO, "", line); }
void warn(std::string_view line) { emit(LOG_WARNING, "warning: ", line); }
void error(std::string_view line) { emit(LOG_ERR, "error: ", line); }
void debug(std::string_view line) {
    if (g_verbose) emit(LOG_DEBUG, "debug: ", line);
}

Line& Line::kv(std::string_view key, std::string_view value) {
    text_ += ' ';
    text_ += key;
    text_ += '=';
    if (!needs_quotes(value)) {
        text_ += value;
        return *this;
    }
    // Quote, escaping what would break the line apart; control bytes become \xNN.
    text_ += '"';
    for (unsigned char c : value) {
        if (c == '"' || c == '\\') {
            text_ += '\\';
            text_ += static_cast<char>(c);
        } else if (c < ' ' || c == 0x7f) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            text_ += hex;
        } else {
            text_ += static_cast<char>(c);
        }
    }
    text_ += '"';
    return *this;
}

Line& Line::kv(std::string_view key, long long value) { return kv(key, std::to_string(value)); }

}  // namespace postern::log
