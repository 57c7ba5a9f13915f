// Fuzz target: filter-rspamd's reading of rspamd's answer
// (filters/rspamd/json.hpp, reply.hpp) and what it makes of it (verdict.hpp,
// edits.hpp). The answer comes over the network from a daemon that scans
// mail, so it is untrusted input. The input is one HTTP body.
// Invariants: nothing crashes or reads past the input; a refusal has an
// offset inside the input and a reason; a decoded reply gives a verdict
// whose SMTP reply is one line with the right code, and whose edits, applied
// to a header section, give lines that are each one line (no CR, LF or other
// control byte but tab), with no blank line (which would end the header
// section early) and every continuation line starting with a blank; the
// same bytes as a header value or as rspamd's SMTP message obey the same.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "rspamd/json.hpp"
#include "rspamd/reply.hpp"
#include "rspamd/verdict.hpp"

using namespace postern::rspamd;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

bool blank(char c) { return c == ' ' || c == '\t'; }

bool one_line(std::string_view s) {
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
    }
    return true;
}

// A header section as it should leave the filter.
void check_section(const std::vector<std::string>& lines) {
    for (const auto& l : lines) {
        check(one_line(l));
        check(!l.empty());
        bool all_blank = true;
        for (char c : l) all_blank = all_blank && blank(c);
        check(!all_blank);
    }
}

void check_verdict(const Verdict& v, const Reply& r) {
    switch (v.disposition) {
    case Disposition::Reject: check(v.reply.rfind("550 5.", 0) == 0 && r.action == Action::Reject); break;
    case Disposition::Tempfail:
        check(v.reply.rfind("451 4.", 0) == 0);
        check(r.action == Action::SoftReject || r.action == Action::Greylist);
        break;
    case Disposition::Accept: check(v.reply.empty()); break;
    }
    check(one_line(v.reply) && v.reply.size() <= 4 + 10 + 400);
    if (v.disposition != Disposition::Accept) {
        check(v.edits.empty());
        return;
    }
    static const std::vector<std::string> section = {
        "Received: from a (a [192.0.2.1])",
        "\tby mx with ESMTP id 1",
        "From: <a@example.org>",
        "Subject: hi",
        "X-Spam: client",
        "To: <b@example.net>",
    };
    std::vector<std::string> out = apply_edits(v.edits, section);
    check_section(out);
    // Each field added is there, starting its own line with its name.
    std::size_t starts = 0;
    for (const auto& l : out) starts += !blank(l[0]);
    check(starts >= v.edits.add.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);

    json::Limits small;
    small.max_depth = 8;
    small.max_values = 200;
    for (const json::Limits& limits : {json::Limits{}, small}) {
        json::ParseResult parsed = json::parse(in, limits);
        if (const auto* e = std::get_if<json::ParseError>(&parsed)) check(e->offset <= size && !e->message.empty());
    }

    DecodeResult decoded = decode_reply(in);
    if (const auto* e = std::get_if<DecodeError>(&decoded)) {
        check(e->offset <= size && !e->message.empty());
    } else {
        const Reply& r = std::get<Reply>(decoded);
        check(parse_action(action_name(r.action)) == r.action);
        Policy accept_grey;
        accept_grey.greylist_tempfails = false;
        check_verdict(decide(r), r);
        check_verdict(decide(r, accept_grey), r);
    }

    // The bytes as a value rspamd wants in a header, and as its SMTP message.
    std::vector<std::string> lines = field_lines("X-Fuzz", in);
    check(!lines.empty() && lines[0].rfind("X-Fuzz:", 0) == 0);
    check_section(lines);
    for (std::size_t i = 1; i < lines.size(); ++i) check(blank(lines[i][0]));
    std::string text = smtp_text(in);
    check(one_line(text) && text.size() <= 400);
    check(text.empty() || (!blank(text.front()) && !blank(text.back())));
    return 0;
}
