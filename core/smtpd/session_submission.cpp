// smtpd/session_submission.cpp — see session_submission.hpp.
#include "smtpd/session_submission.hpp"

#include <cstdio>
#include <random>

namespace postern::smtpd {
namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

// The field's name when `line` starts a field: printable characters other
// than ':' (RFC 5322 section 2.2), then ':', with spaces before the ':' as
// the obsolete syntax allows (section 4.5). "" when it does not.
std::string_view field_name(std::string_view line) {
    size_t i = 0;
    while (i < line.size() && line[i] >= 33 && line[i] <= 126 && line[i] != ':') ++i;
    size_t name_end = i;
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (name_end == 0 || i == line.size() || line[i] != ':') return {};
    return line.substr(0, name_end);
}

}  // namespace

std::vector<std::string_view> add_missing_fields(std::string& message, const AddedFields& fields) {
    bool has_date = false, has_id = false, in_field = false;
    size_t pos = 0;  // where the header section ends
    while (pos < message.size()) {
        size_t nl = message.find('\n', pos);
        std::string_view line(message.data() + pos, (nl == std::string::npos ? message.size() : nl) - pos);
        if (line.empty()) break;
        if (line[0] == ' ' || line[0] == '\t') {
            if (!in_field) break;  // a continuation of nothing: not a header section
        } else {
            std::string_view name = field_name(line);
            if (name.empty()) break;
            in_field = true;
            has_date = has_date || iequal(name, "Date");
            has_id = has_id || iequal(name, "Message-ID");
        }
        pos = nl == std::string::npos ? message.size() : nl + 1;
    }
    std::vector<std::string_view> added;
    std::string insert;
    if (pos > 0 && message[pos - 1] != '\n') insert += '\n';  // a last line without its end
    if (!has_date) {
        insert += "Date: " + fields.date + "\n";
        added.push_back("Date");
    }
    if (!has_id) {
        insert += "Message-ID: " + fields.message_id + "\n";
        added.push_back("Message-ID");
    }
    if (added.empty()) return added;
    if (pos < message.size() && message[pos] != '\n') insert += '\n';  // what follows stays the body
    message.insert(pos, insert);
    return added;
}

bool starts_field(std::string_view line) { return !field_name(line).empty(); }

std::string rfc5322_date(std::time_t t) {
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[64];
    size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S %z", &tm);
    return std::string(buf, n);
}

std::string new_message_id_value(std::string_view msgid, std::string_view host) {
    static std::mt19937_64 rng{std::random_device{}()};  // the loop's thread only
    char random[17];
    (void)std::snprintf(random, sizeof random, "%016llx", static_cast<unsigned long long>(rng()));
    return "<" + std::string(random) + "." + std::string(msgid) + "@" + std::string(host) + ">";
}

}  // namespace postern::smtpd
