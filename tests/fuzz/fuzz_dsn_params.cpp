// Fuzz target: the DSN ESMTP parameters and xtext (core/smtp/dsn_params.cpp).
// The input is split at its first '=' into a key and a value, which go to
// both apply functions as they are and under each DSN key; the whole input
// goes to xtext_decode. Checks: a refusal always has a code and a text and
// leaves the result untouched, an accepted value respects the documented
// limits, and xtext_decode(xtext_encode(x)) == x.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "smtp/dsn_params.hpp"

using namespace postern::smtp;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

bool printable(std::string_view s) {
    for (char c : s)
        if (c < 0x20 || c > 0x7e) return false;
    return true;
}

void check_error(const DsnError& err) {
    check(err.code == 501 || err.code == 555);
    check(err.text.starts_with("5.5.4 "));
}

void try_mail(std::string_view key, std::string_view value) {
    DsnMail m;
    DsnError err;
    if (!apply_mail_param(key, value, &m, &err)) {
        check_error(err);
        check(m.ret == DsnRet::Unset && m.envid.empty());
        return;
    }
    check(m.envid.size() <= kMaxEnvidLength && printable(m.envid));
    check(key == "RET" ? m.ret != DsnRet::Unset : !m.envid.empty());
    // A second application of the same key is always refused.
    DsnMail before = m;
    check(!apply_mail_param(key, value, &m, &err));
    check(m.ret == before.ret && m.envid == before.envid);
}

void try_rcpt(std::string_view key, std::string_view value) {
    DsnRcpt r;
    DsnError err;
    if (!apply_rcpt_param(key, value, &r, &err)) {
        check_error(err);
        check(r.notify == NotifyUnset && r.orcpt.empty());
        return;
    }
    if (key == "NOTIFY") {
        check(r.notify == NotifyNever || (r.notify != 0 && (r.notify & ~14u) == 0));
    } else {
        check(r.orcpt.starts_with("rfc822;") && printable(r.orcpt));
        check(r.orcpt.find('@') != std::string::npos && r.orcpt.size() <= kMaxOrcptLength);
    }
    check(!apply_rcpt_param(key, value, &r, &err));
}

void try_xtext(std::string_view in) {
    std::string enc = xtext_encode(in);
    for (char c : enc) check(c >= 33 && c <= 126 && c != '=');
    auto dec = xtext_decode(enc);
    check(dec.has_value() && *dec == in);
    if (auto d = xtext_decode(in)) {
        check(d->size() <= in.size());
        check(xtext_decode(xtext_encode(*d)) == d);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::size_t eq = in.find('=');
    std::string_view key = in.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view{} : in.substr(eq + 1);

    try_mail(key, value);
    try_rcpt(key, value);
    for (std::string_view k : {"RET", "ENVID"}) try_mail(k, value);
    for (std::string_view k : {"NOTIFY", "ORCPT"}) try_rcpt(k, value);
    try_xtext(in);
    try_xtext(value);
    return 0;
}
