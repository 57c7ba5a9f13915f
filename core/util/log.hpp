// Logging: one grep-friendly line per event, `key=value` style.
//
// With -d lines go to stderr (with a timestamp), otherwise to syslog under
// the mail facility. Callers build the line with Line, which quotes values
// that hold spaces or quotes so a line always splits back into its fields.
#pragma once

#include <string>
#include <string_view>

namespace postern::log {

void init(bool to_stderr, bool verbose);
void set_verbose(bool verbose);
bool verbose();

void info(std::string_view line);
void warn(std::string_view line);
void error(std::string_view line);
void debug(std::string_view line);  // only with -v

// Builds "word key=value key2=\"value with spaces\"".
class Line {
public:
    explicit Line(std::string_view head) : text_(head) {}
    Line& kv(std::string_view key, std::string_view value);
    Line& kv(std::string_view key, long long value);
    const std::string& str() const { return text_; }
    operator std::string_view() const { return text_; }

private:
    std::string text_;
};

}  // namespace postern::log
