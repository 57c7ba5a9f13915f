// Delivery results on the wire; see result.hpp.
#include "delivery/result.hpp"

#include <arpa/inet.h>

#include <algorithm>

namespace postern::delivery {
namespace {

constexpr std::string_view kLineBreaks("\r\n\0", 3);

// One line: no line break or NUL reaches a log line or a report's header.
bool one_line(std::string_view s, std::size_t max) {
    return s.size() <= max && s.find_first_of(kLineBreaks) == std::string_view::npos;
}

bool is_address(const std::string& s) {
    unsigned char buf[16];
    return s.size() <= kMaxRemoteAddr &&
           (::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1);
}

// A host as a route names it: a DNS name, or the text of an address literal.
bool is_host(std::string_view s) {
    return s.size() <= kMaxRemoteHost && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '-' || c == '_' || c == ':';
           });
}

bool parse_number(std::string_view s, std::size_t max_digits, unsigned long* out) {
    if (s.empty() || s.size() > max_digits || s.find_first_not_of("0123456789") != std::string_view::npos) return false;
    *out = std::stoul(std::string(s));
    return true;
}

}  // namespace

const char* status_word(Result::Status s) {
    return s == Result::Status::Ok ? "ok" : s == Result::Status::PermFail ? "perm" : "temp";
}

bool valid_enhanced(std::string_view code, Result::Status status) {
    char cls = status == Result::Status::Ok ? '2' : status == Result::Status::TempFail ? '4' : '5';
    if (code.size() < 5 || code[0] != cls || code[1] != '.') return false;
    code.remove_prefix(2);
    auto dot = code.find('.');
    auto digits = [](std::string_view d) {
        return !d.empty() && d.size() <= 3 && d.find_first_not_of("0123456789") == std::string_view::npos;
    };
    return dot != std::string_view::npos && digits(code.substr(0, dot)) && digits(code.substr(dot + 1));
}

std::string check_result(const Result& r) {
    if (!one_line(r.text, kMaxResultText)) return "text";
    if (!r.enhanced.empty() && !valid_enhanced(r.enhanced, r.status)) return "enhanced status code";
    if (!is_host(r.remote.host)) return "remote host";
    if (!r.remote.addr.empty() && !is_address(r.remote.addr)) return "remote address";
    if (r.remote.code != 0 && (r.remote.code < 200 || r.remote.code > 599)) return "remote reply code";
    if (!one_line(r.remote.reply, kMaxRemoteReply) || (r.remote.code == 0 && !r.remote.reply.empty()))
        return "remote reply";
    if (r.dsn_handed_on && r.status != Result::Status::Ok) return "flags";
    if (r.unreadable && r.status != Result::Status::TempFail) return "flags";
    return "";
}

void append_result_fields(const Result& r, std::vector<std::string>* out) {
    out->insert(out->end(),
                {status_word(r.status), r.text, r.enhanced, r.remote.host, r.remote.addr, std::to_string(r.remote.code),
                 r.remote.reply, std::to_string((r.dsn_handed_on ? 1 : 0) | (r.unreadable ? 2 : 0))});
}

bool parse_result(const std::string* f, Result* out, std::string* why) {
    Result r;
    unsigned long code = 0, flags = 0;
    if (f[0] == "ok") r.status = Result::Status::Ok;
    else if (f[0] == "temp") r.status = Result::Status::TempFail;
    else if (f[0] == "perm") r.status = Result::Status::PermFail;
    else return *why = "status", false;
    if (!parse_number(f[5], 3, &code)) return *why = "remote reply code", false;
    if (!parse_number(f[7], 1, &flags) || flags > 3) return *why = "flags", false;
    r.text = f[1];
    r.enhanced = f[2];
    r.remote = {f[3], f[4], static_cast<int>(code), f[6]};
    r.dsn_handed_on = flags & 1;
    r.unreadable = flags & 2;
    *why = check_result(r);
    if (!why->empty()) return false;
    *out = std::move(r);
    return true;
}

}  // namespace postern::delivery
