// dkim/auth_results.cpp — Authentication-Results for DKIM verdicts.

#include "dkim/auth_results.hpp"

#include "dkim/fold.hpp"

namespace postern::dkim {

namespace {

constexpr std::size_t kShortB = 8;

// RFC 2045's tspecials and what else a bare RFC 8601 value cannot hold.
bool needs_quotes(std::string_view v) {
    if (v.empty()) return true;
    for (char c : v)
        if (c <= ' ' || c >= 0x7f || std::string_view("()<>@,;:\\\"/[]?=").find(c) != std::string_view::npos)
            return true;
    return false;
}

// A quoted-string. Reasons may quote bits of a hostile signature field: any
// byte that is not printable ASCII becomes '?', so nothing can end the
// field or the line early.
std::string quoted(std::string_view v) {
    std::string out = "\"";
    for (char c : v) {
        if (c == '"' || c == '\\') out += '\\';
        out += (c < ' ' || c >= 0x7f) ? '?' : c;
    }
    return out + "\"";
}

std::string pvalue(std::string_view v) { return needs_quotes(v) ? quoted(v) : std::string(v); }

void result_words(Folder& f, const Verdict& v, bool last) {
    std::vector<std::string> words{"dkim=" + std::string(outcome_name(v.outcome))};
    if (!v.reason.empty()) words.push_back("reason=" + quoted(v.reason));
    if (!v.domain.empty()) words.push_back("header.d=" + v.domain);
    if (!v.selector.empty()) words.push_back("header.s=" + v.selector);
    if (!v.b64.empty()) words.push_back("header.b=" + pvalue(std::string_view(v.b64).substr(0, kShortB)));
    if (!last) words.back() += ';';
    for (const std::string& w : words) f.word(w);
}

}  // namespace

std::vector<std::string> authentication_results(std::string_view authserv_id, const std::vector<Verdict>& verdicts) {
    Folder f("Authentication-Results");
    f.word(std::string(authserv_id) + ";");
    if (verdicts.empty()) f.word("dkim=none");
    for (std::size_t i = 0; i < verdicts.size(); ++i) result_words(f, verdicts[i], i + 1 == verdicts.size());
    return f.take();
}

}  // namespace postern::dkim
