// sendmail/message.cpp — see message.hpp.
#include "sendmail/message.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iterator>

namespace postern::sendmail {
namespace {

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

// "Name:" with a name of printable characters other than ':' (RFC 5322 2.2).
bool is_field_start(std::string_view line) {
    size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return false;
    for (size_t i = 0; i < colon; ++i)
        if (line[i] < 33 || line[i] > 126) return false;
    return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && iequal(s.substr(0, prefix.size()), prefix);
}

bool is_continuation(std::string_view line) { return !line.empty() && (line[0] == ' ' || line[0] == '\t'); }

std::string trim(std::string_view s) {
    size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return "";
    size_t e = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(b, e - b + 1));
}

// One address of a list, its display name, comments and route dropped.
std::string address_of(std::string_view item) {
    std::string plain;  // the item without comments, spaces outside quotes removed
    std::string angle;
    bool in_angle = false, had_angle = false, quoted = false;
    int comment = 0;
    for (size_t i = 0; i < item.size(); ++i) {
        char c = item[i];
        std::string& into = in_angle ? angle : plain;
        if (c == '\\' && (quoted || comment) && i + 1 < item.size()) {
            if (!comment) into += item.substr(i, 2);
            ++i;
        } else if (comment) {
            comment += c == '(' ? 1 : c == ')' ? -1 : 0;
        } else if (c == '"') {
            quoted = !quoted;
            into += c;
        } else if (quoted) {
            into += c;
        } else if (c == '(') {
            comment = 1;
        } else if (c == '<') {
            in_angle = had_angle = true;
            angle.clear();
        } else if (c == '>') {
            in_angle = false;
        } else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            into += c;
        }
    }
    if (!had_angle) return plain;
    // A source route (<@a,@b:user@x>) is obsolete syntax: the address is after it.
    if (!angle.empty() && angle[0] == '@') {
        size_t colon = angle.find(':');
        angle = colon == std::string::npos ? "" : angle.substr(colon + 1);
    }
    return angle;
}

}  // namespace

bool read_message(std::FILE* in, bool ignore_dots, std::vector<std::string>* lines, std::string* error) {
    char* buf = nullptr;
    size_t cap = 0;
    struct Free {
        char** p;
        ~Free() { std::free(*p); }  // getline(3) may move the buffer: free the last one
    } guard{&buf};
    errno = 0;
    ssize_t n;
    while ((n = getline(&buf, &cap, in)) >= 0) {
        std::string line(buf, static_cast<size_t>(n));
        if (!line.empty() && line.back() == '\n') line.pop_back();
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!ignore_dots && line == ".") return true;
        lines->push_back(std::move(line));
    }
    if (std::ferror(in)) {
        *error = std::string("reading the message: ") + std::strerror(errno ? errno : EIO);
        return false;
    }
    return true;
}

Message split(std::vector<std::string> lines) {
    Message m;
    size_t i = 0;
    if (!lines.empty() && lines[0].rfind("From ", 0) == 0) ++i;  // an mbox separator, not a field
    for (; i < lines.size(); ++i) {
        const std::string& line = lines[i];
        if (line.empty()) {
            ++i;
            break;
        }
        if (is_continuation(line) && !m.fields.empty()) m.fields.back() += "\n" + line;
        else if (is_field_start(line)) m.fields.push_back(line);
        else break;
    }
    m.body.assign(std::make_move_iterator(lines.begin() + static_cast<std::ptrdiff_t>(i)),
                  std::make_move_iterator(lines.end()));
    return m;
}

std::vector<std::string> join(const Message& m) {
    std::vector<std::string> out;
    for (const auto& f : m.fields) {
        size_t start = 0;
        for (size_t nl; (nl = f.find('\n', start)) != std::string::npos; start = nl + 1)
            out.push_back(f.substr(start, nl - start));
        out.push_back(f.substr(start));
    }
    out.emplace_back();
    out.insert(out.end(), m.body.begin(), m.body.end());
    return out;
}

std::string_view field_name(std::string_view field) { return field.substr(0, field.find(':')); }

std::vector<std::string> field_values(const Message& m, std::string_view name) {
    std::vector<std::string> out;
    for (const auto& f : m.fields) {
        if (!iequal(trim(field_name(f)), name)) continue;
        std::string value = f.substr(f.find(':') + 1);
        for (auto& c : value)
            if (c == '\n') c = ' ';
        out.push_back(trim(value));
    }
    return out;
}

void remove_fields(Message& m, std::string_view name) {
    std::erase_if(m.fields, [&](const std::string& f) { return iequal(trim(field_name(f)), name); });
}

std::vector<RecipientField> recipient_fields(const Message& m, bool* resent) {
    *resent = std::any_of(m.fields.begin(), m.fields.end(),
                          [](const std::string& f) { return istarts_with(trim(field_name(f)), "Resent-"); });
    std::vector<std::string_view> kinds = {"To", "Cc", "Bcc"};
    // The fields to read: all of them, or the most recent resent block.
    Message block;
    if (*resent) {
        kinds = {"Resent-To", "Resent-Cc", "Resent-Bcc"};
        std::vector<std::string> seen;  // the block's field names so far
        for (const auto& f : m.fields) {
            std::string name = trim(field_name(f));
            if (!istarts_with(name, "Resent-")) {
                if (!seen.empty() && (iequal(name, "Received") || iequal(name, "Return-Path"))) break;
                continue;  // before the block, or a field out of place inside it
            }
            if (std::any_of(seen.begin(), seen.end(), [&](const std::string& s) { return iequal(s, name); }))
                break;  // the block before it
            seen.push_back(name);
            block.fields.push_back(f);
        }
    }
    std::vector<RecipientField> out;
    for (std::string_view kind : kinds)
        for (auto& value : field_values(*resent ? block : m, kind))
            out.push_back({std::string(kind), std::move(value)});
    return out;
}

void remove_blind_copies(Message& m) {
    remove_fields(m, "Bcc");
    remove_fields(m, "Resent-Bcc");
}

bool parse_address_list(std::string_view list, std::vector<std::string>* out, std::string* error) {
    std::string item;
    bool quoted = false, in_angle = false;
    int comment = 0;
    auto finish = [&] {
        std::string a = address_of(item);
        if (!a.empty()) out->push_back(a);
        item.clear();
    };
    for (size_t i = 0; i < list.size(); ++i) {
        char c = list[i];
        if (c == '\\' && (quoted || comment) && i + 1 < list.size()) {
            item += list.substr(i, 2);
            ++i;
            continue;
        }
        if (comment) {
            comment += c == '(' ? 1 : c == ')' ? -1 : 0;
        } else if (quoted) {
            quoted = c != '"';
        } else if (c == '"') {
            quoted = true;
        } else if (c == '(') {
            comment = 1;
        } else if (c == '<') {
            if (in_angle) return *error = "'<' inside an angle address: " + std::string(list), false;
            in_angle = true;
        } else if (c == '>') {
            in_angle = false;
        } else if (!in_angle && c == ':') {
            item.clear();  // a group's display name: its members follow
            continue;
        } else if (!in_angle && (c == ',' || c == ';')) {
            finish();
            continue;
        }
        item += c;
    }
    if (quoted) return *error = "unclosed quote in address list: " + std::string(list), false;
    if (comment) return *error = "unclosed comment in address list: " + std::string(list), false;
    if (in_angle) return *error = "unclosed '<' in address list: " + std::string(list), false;
    finish();
    return true;
}

std::string display_name(std::string_view name) {
    bool plain = !name.empty();
    for (char c : name)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || std::strchr("!#$%&'*+-/=?^_`{|}~ .", c)) ||
            static_cast<unsigned char>(c) >= 128)
            plain = false;
    // A dot is allowed in a phrase by RFC 5322's obsolete syntax only: quote it.
    if (plain && name.find('.') == std::string_view::npos) return std::string(name);
    std::string q = "\"";
    for (char c : name) {
        if (c == '"' || c == '\\') q += '\\';
        if (c != '\r' && c != '\n') q += c;
    }
    return q + "\"";
}

std::string rfc5322_date(std::time_t t) {
    static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::tm tm{};
    localtime_r(&t, &tm);
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0) off = -off;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld", kDays[tm.tm_wday], tm.tm_mday,
                  kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign, off / 60, off % 60);
    return buf;
}

void add_missing_fields(Message& m, const Additions& a) {
    std::vector<std::string> added;
    if (field_values(m, "From").empty()) added.push_back("From: " + a.from);
    if (field_values(m, "Date").empty()) added.push_back("Date: " + rfc5322_date(a.now));
    if (field_values(m, "Message-ID").empty()) added.push_back("Message-ID: " + a.message_id);
    m.fields.insert(m.fields.begin(), added.begin(), added.end());
}

}  // namespace postern::sendmail
