// Builds delivery status notifications (RFC 3464 in an RFC 3462
// multipart/report); see dsn.hpp for what goes in and what comes out.

#include "bounce/dsn.hpp"

#include <sys/random.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <random>

namespace postern::bounce {

namespace {

constexpr std::size_t kFoldWidth = 78;  // RFC 5322 2.1.1 "SHOULD"
constexpr std::size_t kMaxPiece = 900;  // stays well under the 998-octet "MUST"

constexpr int kBoundaryTries = 16;

// 16 random bytes as 32 hex digits, from the OS random source. getrandom()
// only fails before the pool is seeded or on a signal; random_device is the
// fallback so that a report is never lost for want of entropy.
std::string random_hex() {
    std::array<unsigned char, 16> bytes{};
    std::size_t got = 0;
    for (int tries = 0; got < bytes.size() && tries < 8; ++tries) {
        ssize_t n = getrandom(bytes.data() + got, bytes.size() - got, 0);
        if (n > 0) got += static_cast<std::size_t>(n);
        else if (n < 0 && errno != EINTR) break;
    }
    if (got < bytes.size()) {
        std::random_device rd;
        for (auto& b : bytes) b = static_cast<unsigned char>(rd());
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char b : bytes) {
        out.push_back(kHex[b >> 4]);
        out.push_back(kHex[b & 0x0f]);
    }
    return out;
}

// "=_" cannot appear in quoted-printable or base64 text, so a boundary that
// starts with it is also safe against any encoded part of the original.
std::string random_boundary() { return "=_postern-dsn-" + random_hex(); }

// An address to put inside angle brackets: header-safe and without brackets
// of its own, which would end the address early.
std::string bracket_safe(std::string_view addr) {
    std::string out = header_safe(addr);
    for (char& c : out)
        if (c == '<' || c == '>') c = '_';
    return out;
}

// A token for dns;/smtp; fields and the Message-ID's right-hand side.
std::string token_safe(std::string_view s) {
    std::string out = header_safe(s);
    for (char& c : out)
        if (c == ' ' || c == '<' || c == '>' || c == ';' || c == '"') c = '_';
    return out;
}

bool digits(std::string_view s, std::size_t max) {
    if (s.empty() || s.size() > max) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

// RFC 3463 status "class.subject.detail" whose class fits the report kind.
std::string checked_status(std::string_view s, Kind kind) {
    char cls = kind == Kind::Failed ? '5' : kind == Kind::Delayed ? '4' : '2';
    std::string fallback = std::string(1, cls) + ".0.0";
    if (s.size() < 5 || s[0] != cls || s[1] != '.') return fallback;
    std::string_view rest = s.substr(2);
    std::size_t dot = rest.find('.');
    if (dot == std::string_view::npos) return fallback;
    if (!digits(rest.substr(0, dot), 3) || !digits(rest.substr(dot + 1), 3)) return fallback;
    return std::string(s);
}

const char* action_word(Kind k) {
    switch (k) {
    case Kind::Failed: return "failed";
    case Kind::Delayed: return "delayed";
    case Kind::Delivered: return "delivered";
    }
    return "failed";
}

const char* subject_word(Kind k) {
    switch (k) {
    case Kind::Failed: return "Failure";
    case Kind::Delayed: return "Delay";
    case Kind::Delivered: return "Success";
    }
    return "Failure";
}

// Splits `text` at spaces into lines: the first begins with `first`, the
// others with `cont`; a line is closed before it would pass `width` (unless
// it holds a single word) and a word longer than kMaxPiece is cut.
std::string wrap(std::string_view text, std::string_view first, std::string_view cont, std::size_t width) {
    std::string out;
    std::string line(first);
    bool empty_line = true;
    auto flush = [&] {
        out += line;
        out += '\n';
        line.assign(cont);
        empty_line = true;
    };
    while (!text.empty()) {
        std::size_t sp = text.find(' ');
        std::string_view word = text.substr(0, sp);
        text = sp == std::string_view::npos ? std::string_view{} : text.substr(sp + 1);
        while (!word.empty()) {
            std::string_view piece = word.substr(0, kMaxPiece);
            word.remove_prefix(piece.size());
            if (!empty_line && line.size() + 1 + piece.size() > width) flush();
            if (!empty_line) line += ' ';
            line += piece;
            empty_line = false;
            if (!word.empty()) flush();
        }
    }
    if (!empty_line || out.empty()) {
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out += line;
        out += '\n';
    }
    return out;
}

// The original's header section: everything before its first empty line.
std::string_view header_section(std::string_view original) {
    if (original.starts_with("\n") || original.starts_with("\r\n")) return {};
    std::size_t lf = original.find("\n\n");
    std::size_t crlf = original.find("\n\r\n");
    std::size_t end = std::min(lf, crlf);
    return end == std::string_view::npos ? original : original.substr(0, end + 1);
}

bool has_8bit(std::string_view s) {
    for (char c : s)
        if (static_cast<unsigned char>(c) > 127) return true;
    return false;
}

std::string human_part(const Report& r, const std::vector<RecipientReport>& rcpts, bool full, bool too_large) {
    std::string host = header_safe(r.reporting_mta);
    std::string out = "This is the mail system at host " + host + ".\n\n";
    std::string intro;
    switch (r.kind) {
    case Kind::Failed:
        intro = "Your message could not be delivered to the recipients listed below. The failure "
                "is permanent: the mail system will not try again. ";
        intro += full        ? "Your message is attached."
                 : too_large ? "Your message is too large to be returned whole: its headers are attached."
                             : "The headers of your message are attached.";
        break;
    case Kind::Delayed:
        intro = "Your message has not yet been delivered to the recipients listed below. The mail "
                "system will keep trying until the time shown for each; you do not need to send it "
                "again. You will be told if delivery finally fails.";
        break;
    case Kind::Delivered: intro = "Your message was delivered to the recipients listed below."; break;
    }
    out += wrap(intro, "", "", 72);
    out += '\n';
    for (const RecipientReport& rc : rcpts) {
        std::string diag = header_safe(rc.diagnostic);
        std::string line = "<" + bracket_safe(rc.final_recipient) + ">:";
        if (!diag.empty()) line += " " + diag;
        out += wrap(line, "", "    ", 72);
        if (r.kind == Kind::Delayed && rc.will_retry_until != 0)
            out += "    Delivery will be retried until " + rfc5322_date(rc.will_retry_until) + ".\n";
    }
    out += "\n-- \nMail Delivery System at " + host +
           "\nThis message was generated automatically: please do not reply to it.\n";
    return out;
}

std::string per_message_fields(const Report& r) {
    std::string out = fold_field("Reporting-MTA", "dns; " + token_safe(r.reporting_mta));
    std::string envid = header_safe(r.envid);
    if (!envid.empty()) out += fold_field("Original-Envelope-Id", envid);
    if (r.arrival != 0) out += fold_field("Arrival-Date", rfc5322_date(r.arrival));
    return out;
}

std::string per_recipient_fields(const Report& r, const RecipientReport& rc) {
    std::string out;
    std::string orcpt = header_safe(rc.original_recipient);
    if (!orcpt.empty()) {
        if (orcpt.find(';') == std::string::npos) orcpt = "rfc822;" + orcpt;
        out += fold_field("Original-Recipient", orcpt);
    }
    out += fold_field("Final-Recipient", "rfc822; " + header_safe(rc.final_recipient));
    out += fold_field("Action", r.kind == Kind::Delivered && rc.relayed ? "relayed" : action_word(r.kind));
    out += fold_field("Status", checked_status(rc.status, r.kind));
    std::string mta = token_safe(rc.remote_mta);
    if (!mta.empty()) out += fold_field("Remote-MTA", "dns; " + mta);
    std::string diag = header_safe(rc.diagnostic);
    if (!diag.empty()) out += fold_field("Diagnostic-Code", "smtp; " + diag);
    if (rc.last_attempt != 0) out += fold_field("Last-Attempt-Date", rfc5322_date(rc.last_attempt));
    if (r.kind == Kind::Delayed && rc.will_retry_until != 0)
        out += fold_field("Will-Retry-Until", rfc5322_date(rc.will_retry_until));
    return out;
}

std::string status_part(const Report& r, const std::vector<RecipientReport>& rcpts) {
    std::string out = per_message_fields(r);
    for (const RecipientReport& rc : rcpts) out += "\n" + per_recipient_fields(r, rc);
    return out;
}

std::string ensure_final_lf(std::string_view s) {
    std::string out(s);
    if (!out.empty() && out.back() != '\n') out += '\n';
    return out;
}

struct Part {
    std::string headers;  // its MIME header lines, each ending in LF
    std::string body;
    bool full = false;       // the whole message
    bool too_large = false;  // the whole message was asked for, and is too large
};

// At most kMaxReturned of `text`, cut after a line's end.
std::string_view bounded(std::string_view text) {
    if (text.size() <= kMaxReturned) return text;
    std::size_t lf = text.rfind('\n', kMaxReturned - 1);
    return text.substr(0, lf == std::string_view::npos ? kMaxReturned : lf + 1);
}

Part returned_part(const Report& r, std::string_view original) {
    const bool wanted = r.kind == Kind::Failed && r.return_full && !original.empty();
    const bool full = wanted && original.size() <= kMaxReturned;
    std::string body = ensure_final_lf(full ? original : bounded(header_section(original)));
    std::string h = full ? "Content-Type: message/rfc822\nContent-Description: Undelivered message\n"
                         : "Content-Type: text/rfc822-headers\nContent-Description: Message headers\n";
    h += has_8bit(body) ? "Content-Transfer-Encoding: 8bit\n" : "Content-Transfer-Encoding: 7bit\n";
    return {h, body, full, wanted && !full};
}

std::string top_headers(const Report& r, std::string_view message_id_domain, std::string_view boundary,
                        bool eight_bit) {
    std::string host = token_safe(r.reporting_mta);
    std::string postmaster = bracket_safe(r.postmaster);
    if (postmaster.find('@') == std::string::npos) postmaster += "@" + host;
    std::string domain = token_safe(message_id_domain);
    if (domain.empty()) domain = host.empty() ? "localhost" : host;
    std::string out;
    out += fold_field("From", "Mail Delivery System <" + postmaster + ">");
    out += fold_field("To", "<" + bracket_safe(r.sender) + ">");
    out += fold_field("Subject", std::string("Delivery Status Notification (") + subject_word(r.kind) + ")");
    out += fold_field("Date", rfc5322_date(std::time(nullptr)));
    out += fold_field("Message-ID", "<" + random_hex() + "@" + domain + ">");
    out += "Auto-Submitted: auto-replied\n";
    out += "MIME-Version: 1.0\n";
    out += "Content-Type: multipart/report; report-type=delivery-status;\n boundary=\"" + std::string(boundary) +
           "\"\n";
    out += eight_bit ? "Content-Transfer-Encoding: 8bit\n" : "Content-Transfer-Encoding: 7bit\n";
    return out;
}

}  // namespace

std::string header_safe(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char ch : value) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7f) out.push_back(' ');
        else if (c > 0x7f) out.push_back('?');
        else out.push_back(ch);
    }
    std::size_t b = out.find_first_not_of(' ');
    if (b == std::string::npos) return {};
    std::size_t e = out.find_last_not_of(' ');
    return out.substr(b, e - b + 1);
}

std::string fold_field(std::string_view name, std::string_view value) {
    return wrap(value, std::string(name) + ": ", " ", kFoldWidth);
}

std::string rfc5322_date(std::int64_t unix_seconds) {
    static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::time_t t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    if (!gmtime_r(&t, &tm)) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday % 7], tm.tm_mday,
                  kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

std::string pick_boundary(std::string_view content, const std::function<std::string()>& token) {
    for (int i = 0; i < kBoundaryTries; ++i) {
        std::string b = token();
        if (!b.empty() && content.find(b) == std::string_view::npos) return b;
    }
    return {};
}

std::string build_dsn(const Report& report, const std::vector<RecipientReport>& rcpts, std::string_view original,
                      std::string_view message_id_domain) {
    Part returned = returned_part(report, original);
    std::string text = human_part(report, rcpts, returned.full, returned.too_large);
    std::string status = status_part(report, rcpts);

    std::string all = text + status + returned.body;
    std::string boundary = pick_boundary(all, random_boundary);
    if (boundary.empty()) boundary = random_boundary();  // only with a broken random source

    std::string out = top_headers(report, message_id_domain, boundary, has_8bit(returned.body));
    out += "\nThis is a MIME-encapsulated delivery status notification.\n\n";
    out += "--" + boundary + "\n";
    out += "Content-Type: text/plain; charset=us-ascii\nContent-Description: Notification\n"
           "Content-Transfer-Encoding: 7bit\n\n";
    out += text;
    out += "\n--" + boundary + "\n";
    out += "Content-Type: message/delivery-status\nContent-Description: Delivery report\n\n";
    out += status;
    out += "\n--" + boundary + "\n";
    out += returned.headers + "\n";
    out += returned.body;
    out += "\n--" + boundary + "--\n";
    return out;
}

}  // namespace postern::bounce
