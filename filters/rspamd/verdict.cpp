// filters/rspamd/verdict.cpp — mapping rspamd's answer to what the filter
// does (see verdict.hpp).

#include "verdict.hpp"

#include <algorithm>
#include <cstdio>

#include "postern/support/ascii.hpp"

namespace postern::rspamd {

namespace {

// RFC 5321 allows 512 bytes for a reply line; the code, the enhanced code
// and room for the filter protocol's prefix leave about this much.
constexpr std::size_t kMaxText = 400;

// Where Debian's filter-rspamd folds its X-Spam-Status tests list.
constexpr std::size_t kFoldAt = 68;

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::string fixed3(double d) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", d);
    return buf;
}

std::string fixed2(double d) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f", d);
    return buf;
}

// "X.Y.Z " at the start of the text, X being the reply's class: rspamd's
// message already carries an enhanced status code, which we keep.
bool starts_with_enhanced_code(std::string_view text, char klass) {
    if (text.size() < 6 || text[0] != klass || text[1] != '.') return false;
    std::size_t i = 2;
    for (int part = 0; part < 2; ++part) {
        std::size_t digits = 0;
        while (i < text.size() && util::is_digit(text[i]) && digits < 4) ++i, ++digits;
        if (digits == 0 || digits > 3) return false;
        if (i >= text.size()) return false;
        if (part == 0 && text[i++] != '.') return false;
    }
    return text[i] == ' ';
}

std::string refusal(std::string_view code, std::string_view enhanced, const std::optional<std::string>& message,
                    std::string_view fallback) {
    std::string text = message ? smtp_text(*message) : std::string();
    if (text.empty()) text = fallback;
    std::string out(code);
    out += ' ';
    if (!starts_with_enhanced_code(text, code[0])) {
        out += enhanced;
        out += ' ';
    }
    return out + text;
}

// "Yes, score=61.200 required=100.000" and, folded under it, the symbols
// sorted by name: "tests=[A=1.000, B=0.000,\n\tC=...]".
std::string spam_status(const Reply& r) {
    std::string out = "Yes, score=" + fixed3(r.score) + " required=" + fixed3(r.required_score);
    if (r.symbols.empty()) return out;
    std::vector<const Symbol*> sorted;
    for (const auto& s : r.symbols) sorted.push_back(&s);
    std::sort(sorted.begin(), sorted.end(), [](const Symbol* a, const Symbol* b) { return a->name < b->name; });
    std::string line = "tests=[";
    for (std::size_t i = 0; i < sorted.size(); ++i) {
        std::string item = sorted[i]->name + "=" + fixed3(sorted[i]->score);
        item += i + 1 < sorted.size() ? "," : "]";
        if (i == 0) {
            line += item;
        } else if (line.size() + 1 + item.size() > kFoldAt) {
            out += "\n\t" + line;
            line = item;
        } else {
            line += ' ' + item;
        }
    }
    return out + "\n\t" + line;
}

bool rspamd_adds(const Reply& r, std::string_view name) {
    return std::any_of(r.add_headers.begin(), r.add_headers.end(),
                       [&](const HeaderToAdd& h) { return util::iequals(h.name, name); });
}

// What every accepted message gets from rspamd itself.
void rspamd_edits(const Reply& r, Edits& e) {
    for (const auto& sig : r.dkim_signatures) e.add.push_back({"DKIM-Signature", sig, 0});
    for (const auto& h : r.add_headers) e.add.push_back({h.name, h.value, h.order});
    for (const auto& h : r.remove_headers) e.remove.push_back({h.name, h.which});
}

void add_ours(const Reply& r, Edits& e, std::string name, std::string value) {
    if (!rspamd_adds(r, name)) e.add.push_back({std::move(name), std::move(value), 0});
}

Verdict accept(const Reply& r) {
    Verdict v;
    rspamd_edits(r, v.edits);
    return v;
}

}  // namespace

std::string smtp_text(std::string_view text) {
    std::string out;
    for (char c : text) {
        auto u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u == 0x7f) ? ' ' : c;
    }
    auto first = std::find_if_not(out.begin(), out.end(), is_blank);
    out.erase(out.begin(), first);
    while (!out.empty() && is_blank(out.back())) out.pop_back();
    if (out.size() > kMaxText) {
        std::size_t cut = kMaxText;
        // Back to the start of a UTF-8 sequence.
        while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
        out.resize(cut);
        while (!out.empty() && is_blank(out.back())) out.pop_back();
    }
    return out;
}

Verdict decide(const Reply& r, const Policy& policy) {
    if (r.no_action) {
        Verdict v = accept(r);
        add_ours(r, v.edits, "X-Rspamd-Action", std::string(action_name(r.action)));
        return v;
    }
    switch (r.action) {
    case Action::Reject:
        return {Disposition::Reject, refusal("550", "5.7.1", r.smtp_message, "Spam message rejected"), {}};
    case Action::SoftReject:
        return {Disposition::Tempfail, refusal("451", "4.7.1", r.smtp_message, "Try again later"), {}};
    case Action::Greylist:
        if (policy.greylist_tempfails)
            return {Disposition::Tempfail, refusal("451", "4.7.1", std::nullopt, "Greylisted, try again later"), {}};
        return accept(r);
    case Action::RewriteSubject: {
        Verdict v = accept(r);
        if (r.subject) v.edits.subject = *r.subject;
        return v;
    }
    case Action::AddHeader: {
        Verdict v;
        add_ours(r, v.edits, "X-Spam", "Yes");
        add_ours(r, v.edits, "X-Spam-Score", fixed2(r.score) + " / " + fixed2(r.required_score));
        add_ours(r, v.edits, "X-Spam-Status", spam_status(r));
        rspamd_edits(r, v.edits);
        return v;
    }
    case Action::NoAction: return accept(r);
    }
    return accept(r);
}

}  // namespace postern::rspamd
