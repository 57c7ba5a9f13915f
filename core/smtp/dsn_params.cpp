// The DSN ESMTP parameters and xtext (RFC 3461); see dsn_params.hpp for the
// refusals and their reply texts.

#include "smtp/dsn_params.hpp"
#include "util/ascii.hpp"

#include <array>

namespace postern::smtp {

namespace {

bool fail(DsnError* err, int code, std::string text) {
    err->code = code;
    err->text = std::move(text);
    return false;
}

bool duplicate(DsnError* err, std::string_view key) {
    return fail(err, 501, "5.5.4 Duplicate " + std::string(key) + " parameter");
}

using util::iequals;

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// RFC 3461 wants ENVID and the ORCPT address to be printable US-ASCII
// (graphic characters and space) once decoded: they end up in DSN fields.
bool printable_ascii(std::string_view s) {
    for (char c : s)
        if (c < 0x20 || c > 0x7e) return false;
    return true;
}

bool domain_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

bool plausible_domain(std::string_view d) {
    if (d.empty() || d.size() > 255) return false;
    if (d.front() == '[') {
        if (d.size() < 3 || d.back() != ']') return false;
        for (char c : d.substr(1, d.size() - 2))
            if (c == '[' || c == ']' || c == ' ' || c == '\\') return false;
        return true;
    }
    if (d.front() == '.' || d.back() == '.' || d.find("..") != std::string_view::npos) return false;
    for (char c : d)
        if (!domain_char(c)) return false;
    return true;
}

// A local part: a quoted string (anything printable inside, backslash
// escapes allowed) or dot-atom-ish text without spaces, brackets or quotes.
bool plausible_local(std::string_view l) {
    if (l.empty()) return false;
    if (l.front() == '"') {
        if (l.size() < 2 || l.back() != '"') return false;
        std::string_view in = l.substr(1, l.size() - 2);
        for (std::size_t i = 0; i < in.size(); ++i) {
            if (in[i] == '\\') {
                if (++i == in.size()) return false;
            } else if (in[i] == '"') {
                return false;
            }
        }
        return true;
    }
    for (char c : l)
        if (c == ' ' || c == '<' || c == '>' || c == '"' || c == '(' || c == ')' || c == ',' || c == ';' || c == ':' ||
            c == '\\' || c == '[' || c == ']' || c == '@')
            return false;
    return true;
}

// Plausible, not strictly RFC 5322: the ORCPT address is only reported back
// to the sender, but it must look like one address and nothing more.
bool plausible_address(std::string_view a) {
    if (!printable_ascii(a)) return false;
    std::size_t at = a.rfind('@');
    if (at == std::string_view::npos) return false;
    return plausible_local(a.substr(0, at)) && plausible_domain(a.substr(at + 1));
}

bool apply_ret(std::string_view value, DsnMail* out, DsnError* err) {
    if (out->ret != DsnRet::Unset) return duplicate(err, "RET");
    if (iequals(value, "FULL")) {
        out->ret = DsnRet::Full;
    } else if (iequals(value, "HDRS")) {
        out->ret = DsnRet::Headers;
    } else {
        return fail(err, 501, "5.5.4 Invalid RET parameter");
    }
    return true;
}

bool apply_envid(std::string_view value, DsnMail* out, DsnError* err) {
    if (!out->envid.empty()) return duplicate(err, "ENVID");
    if (value.size() > kMaxEnvidLength) return fail(err, 501, "5.5.4 ENVID parameter too long");
    auto decoded = xtext_decode(value);
    if (value.empty() || !decoded || !printable_ascii(*decoded)) return fail(err, 501, "5.5.4 Invalid ENVID parameter");
    out->envid = std::move(*decoded);
    return true;
}

// One word of a NOTIFY list, or 0 when it is not one.
unsigned notify_word(std::string_view w) {
    if (iequals(w, "NEVER")) return NotifyNever;
    if (iequals(w, "SUCCESS")) return NotifySuccess;
    if (iequals(w, "FAILURE")) return NotifyFailure;
    if (iequals(w, "DELAY")) return NotifyDelay;
    return 0;
}

bool apply_notify(std::string_view value, DsnRcpt* out, DsnError* err) {
    if (out->notify != NotifyUnset) return duplicate(err, "NOTIFY");
    unsigned bits = 0;
    while (true) {
        std::size_t comma = value.find(',');
        unsigned word = notify_word(value.substr(0, comma));
        if (word == 0) return fail(err, 501, "5.5.4 Invalid NOTIFY parameter");
        bits |= word;
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
    }
    if ((bits & NotifyNever) && bits != NotifyNever)
        return fail(err, 501, "5.5.4 NOTIFY=NEVER cannot be combined with other values");
    out->notify = bits;
    return true;
}

bool apply_orcpt(std::string_view value, DsnRcpt* out, DsnError* err) {
    if (!out->orcpt.empty()) return duplicate(err, "ORCPT");
    if (value.size() > kMaxOrcptLength) return fail(err, 501, "5.5.4 ORCPT parameter too long");
    std::size_t semi = value.find(';');
    if (semi == std::string_view::npos || !iequals(value.substr(0, semi), "rfc822"))
        return fail(err, 501, "5.5.4 Invalid ORCPT parameter");
    auto address = xtext_decode(value.substr(semi + 1));
    if (!address || !plausible_address(*address)) return fail(err, 501, "5.5.4 Invalid ORCPT parameter");
    out->orcpt = "rfc822;" + *address;
    return true;
}

}  // namespace

bool apply_mail_param(std::string_view key, std::string_view value, DsnMail* out, DsnError* err) {
    if (key == "RET") return apply_ret(value, out, err);
    if (key == "ENVID") return apply_envid(value, out, err);
    return fail(err, 555, "5.5.4 Unsupported MAIL parameter");
}

bool apply_rcpt_param(std::string_view key, std::string_view value, DsnRcpt* out, DsnError* err) {
    if (key == "NOTIFY") return apply_notify(value, out, err);
    if (key == "ORCPT") return apply_orcpt(value, out, err);
    return fail(err, 555, "5.5.4 Unsupported RCPT parameter");
}

std::string xtext_encode(std::string_view raw) {
    static constexpr std::array<char, 16> kHex = {'0', '1', '2', '3', '4', '5', '6', '7',
                                                  '8', '9', 'A', 'B', 'C', 'D', 'E', 'F'};
    std::string out;
    out.reserve(raw.size());
    for (char ch : raw) {
        auto c = static_cast<unsigned char>(ch);
        if (c >= 33 && c <= 126 && c != '+' && c != '=') {
            out.push_back(ch);
        } else {
            out.push_back('+');
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 0x0f]);
        }
    }
    return out;
}

std::optional<std::string> xtext_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c < 33 || c > 126 || c == '=') return std::nullopt;
        if (c != '+') {
            out.push_back(text[i]);
            continue;
        }
        if (text.size() - i < 3) return std::nullopt;  // '+' needs two digits after it
        int hi = hex_value(text[i + 1]);
        int lo = hex_value(text[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return out;
}

}  // namespace postern::smtp
