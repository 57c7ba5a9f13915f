// dkim/verify_filter.cpp — see verify_filter.hpp.
#include "dkim/verify_filter.hpp"

#include <limits.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <variant>

#include "dkim/auth_results.hpp"
#include "postern/support/ascii.hpp"

namespace postern::dkim {

namespace {

constexpr std::string_view kResultsField = "Authentication-Results";
constexpr std::size_t kMaxAuthservId = 255;

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

// RFC 2045's token: printable ASCII but SP and tspecials.
bool is_token_char(char c) {
    return c > ' ' && c < 0x7f && std::string_view("()<>@,;:\\\"/[]?=").find(c) == std::string_view::npos;
}

// `s` past any CFWS (RFC 5322 3.2.2): white space, line ends, and
// comments, which nest and may hold quoted-pairs.
std::string_view skip_cfws(std::string_view s) {
    for (;;) {
        while (!s.empty() && (is_wsp(s.front()) || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
        if (s.empty() || s.front() != '(') return s;
        int depth = 0;
        std::size_t i = 0;
        for (; i < s.size(); ++i) {
            if (s[i] == '\\') ++i;
            else if (s[i] == '(') ++depth;
            else if (s[i] == ')' && --depth == 0) break;
        }
        if (i >= s.size()) return {};  // an unterminated comment: nothing after it
        s.remove_prefix(i + 1);
    }
}

// A quoted-string's content, `s` starting at its opening quote.
std::optional<std::string> unquote(std::string_view s) {
    std::string out;
    for (std::size_t i = 1; i < s.size(); ++i) {
        if (s[i] == '"') return out;
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        out += s[i];
    }
    return std::nullopt;  // no closing quote
}

std::string host_name() {
    char buf[HOST_NAME_MAX + 1] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
    return buf;
}

// A header line that continues the field before it.
bool is_continuation(std::string_view line) { return !line.empty() && is_wsp(line.front()); }

// What the lookup of one key name gave, as the verifier takes it.
KeyAnswer key_answer(std::string_view name, const TxtResult& r) {
    if (const auto* found = std::get_if<TxtFound>(&r)) {
        // Several TXT records at a selector give "undefined results" (RFC
        // 6376 3.6.2.2): the first is used, as dkimpy does.
        return KeyAnswer{KeyAnswer::Status::Found, found->records.front()};
    }
    if (const auto* fail = std::get_if<TxtTempFail>(&r)) {
        std::fprintf(stderr, "filter-dkim: key lookup %.*s failed: %s\n", static_cast<int>(name.size()), name.data(),
                     fail->text.c_str());
        return KeyAnswer{KeyAnswer::Status::TempFail, {}};
    }
    return KeyAnswer{KeyAnswer::Status::NotFound, {}};
}

}  // namespace

bool is_authserv_id(std::string_view id) {
    if (id.empty() || id.size() > kMaxAuthservId) return false;
    for (char c : id)
        if (!is_token_char(c)) return false;
    return true;
}

std::optional<std::string> authserv_id_of(std::string_view value) {
    std::string_view s = skip_cfws(value);
    if (s.empty()) return std::nullopt;
    if (s.front() == '"') return unquote(s);
    std::size_t n = 0;
    while (n < s.size() && is_token_char(s[n])) ++n;
    if (n == 0) return std::nullopt;
    return std::string(s.substr(0, n));
}

// One message of one session, from its first data line to its end.
struct VerifyFilter::Message {
    bool in_headers = true;
    std::vector<std::string> header_lines;  // as written, for writing back
    HeaderCollector fields;
    std::optional<MessageVerifier> verifier;  // made when the header section ends
    std::string body;                         // lines joined with '\n'
    std::map<std::string, KeyAnswer> keys;    // by lowercased key name
    std::size_t waiting = 0;                  // lookups not yet answered
    bool ended = false;                       // its last line came; the next line starts another
    bool abandoned = false;                   // the session went while its keys were looked up
};

VerifyFilter::VerifyFilter(std::unique_ptr<TxtResolver> resolver, VerifyConfig config)
    : config_(std::move(config)), host_name_(host_name()), resolver_(std::move(resolver)) {}

void VerifyFilter::on_config(std::string_view key, std::string_view value) {
    if (key != "admd") return;
    if (is_authserv_id(value)) {
        admd_ = std::string(value);
        return;
    }
    std::fprintf(stderr, "filter-dkim: the daemon's admd \"%.*s\" cannot be an authserv-id: using %s\n",
                 static_cast<int>(value.size()), value.data(), authserv_id().c_str());
}

const std::string& VerifyFilter::authserv_id() const {
    if (!config_.authserv_id.empty()) return config_.authserv_id;
    return admd_.empty() ? host_name_ : admd_;
}

VerifyFilter::Message& VerifyFilter::message(filterlib::Session& s) {
    if (!s.data.has_value() || std::any_cast<std::shared_ptr<Message>&>(s.data)->ended)
        s.data = std::make_shared<Message>();
    return *std::any_cast<std::shared_ptr<Message>&>(s.data);
}

void VerifyFilter::on_data_line(filterlib::Session& s, std::string_view line, filterlib::DataStream&) {
    Message& m = message(s);
    if (m.in_headers) {
        if (!line.empty()) {
            m.header_lines.emplace_back(line);
            m.fields.line(line);
            return;
        }
        // The blank line belongs to the body's text, not its hash.
        m.in_headers = false;
        m.verifier.emplace(m.fields.take(), config_.verify);
        return;
    }
    m.verifier->body_line(line);
    m.body.append(line);
    m.body += '\n';
}

void VerifyFilter::on_data_end(filterlib::Session& s, filterlib::DataStream& out) {
    message(s);  // an empty message is an unsigned one too
    auto m = std::any_cast<std::shared_ptr<Message>>(s.data);
    // Kept in the session until the next message replaces it, for
    // on_session_end to find.
    m->ended = true;
    if (!m->verifier) m->verifier.emplace(m->fields.take(), config_.verify);  // no body at all
    look_up_keys(std::move(m), out);
}

// Every key name at once; the message is written back when the last answer
// is in (unless its session has ended meanwhile).
void VerifyFilter::look_up_keys(std::shared_ptr<Message> m, filterlib::DataStream out) {
    std::vector<std::string> names = m->verifier->key_names();
    if (names.empty()) return write_back(*m, out);
    m->waiting = names.size();
    for (const std::string& name : names) {
        resolver_->lookup_txt(name, [this, m, name, out](TxtResult r) mutable {
            m->keys[util::lowercase(name)] = key_answer(name, r);
            if (--m->waiting == 0) write_back(*m, out);
        });
    }
}

// The daemon has forgotten a session that ended: nothing more to tell it.
void VerifyFilter::on_session_end(filterlib::Session& s) {
    if (s.data.has_value()) std::any_cast<std::shared_ptr<Message>&>(s.data)->abandoned = true;
}

void VerifyFilter::write_back(Message& m, filterlib::DataStream& out) const {
    if (m.abandoned) return;
    std::vector<Verdict> verdicts = m.verifier->finish([&m](std::string_view name) {
        auto it = m.keys.find(util::lowercase(name));
        return it == m.keys.end() ? KeyAnswer{KeyAnswer::Status::TempFail, {}} : it->second;
    });
    for (const std::string& l : authentication_results(authserv_id(), verdicts)) out.line(l);
    write_headers(m, out);
    if (!m.in_headers) out.line("");
    std::string_view body = m.body;
    for (std::size_t pos = 0; pos < body.size();) {
        std::size_t nl = body.find('\n', pos);
        out.line(body.substr(pos, nl - pos));
        pos = nl + 1;
    }
    out.end();
    // The message stays in its session until the next one: not its text.
    m.header_lines = {};
    m.body = {};
    m.verifier.reset();
}

// The header section as it came, less the Authentication-Results fields
// that claim our authserv-id (each with its continuation lines).
void VerifyFilter::write_headers(const Message& m, filterlib::DataStream& out) const {
    const std::vector<std::string>& lines = m.header_lines;
    for (std::size_t start = 0, end; start < lines.size(); start = end) {
        end = start + 1;
        std::string field = lines[start];
        for (; end < lines.size() && is_continuation(lines[end]); ++end) field += "\r\n" + lines[end];
        std::string_view f = field;
        std::size_t colon = f.find(':');
        std::string_view name = f.substr(0, colon);
        while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
        if (colon != std::string_view::npos && util::iequals(name, kResultsField)) {
            auto id = authserv_id_of(f.substr(colon + 1));
            if (id && util::iequals(*id, authserv_id())) {
                std::fprintf(stderr, "filter-dkim: removed an Authentication-Results field claiming to be ours (%s)\n",
                             authserv_id().c_str());
                continue;
            }
        }
        for (std::size_t i = start; i < end; ++i) out.line(lines[i]);
    }
}

}  // namespace postern::dkim
