// rspamd/scan_filter.cpp — see scan_filter.hpp.
#include "rspamd/scan_filter.hpp"

#include <cstdio>
#include <variant>

namespace postern::rspamd {

// One message of one session, from its first data line to the commit phase.
struct ScanFilter::Message {
    explicit Message(MessageBuffer::Options o) : text(std::move(o)) {}
    bool in_headers = true;
    std::vector<std::string> headers;  // the header section's lines, for the edits
    MessageBuffer text;                // the whole message, CRLF, as rspamd gets it
    std::uint64_t body_offset = 0;     // where the body starts in `text` (after the blank line)
    std::optional<std::string> error;  // the message could not be held
    RspamdClient::ScanId scan = 0;
    // The verdict the commit phase answers with; "" accepts.
    std::string refusal;
};

ScanFilter::ScanFilter(uv_loop_t* loop, ScanConfig config)
    : config_(std::move(config)), client_(loop, config_.client) {}

void ScanFilter::on_config(std::string_view key, std::string_view value) {
    if (key == "admd") mta_name_ = std::string(value);
}

ScanFilter::Message& ScanFilter::message(filterlib::Session& s) {
    if (!s.data.has_value()) {
        MessageBuffer::Options o;
        o.temp_dir = config_.temp_dir;
        s.data = std::make_shared<Message>(std::move(o));
    }
    return *std::any_cast<std::shared_ptr<Message>&>(s.data);
}

void ScanFilter::on_data_line(filterlib::Session& s, std::string_view line, filterlib::DataStream&) {
    Message& m = message(s);
    if (m.error) return;
    if (m.in_headers) {
        if (line.empty()) m.in_headers = false;
        else m.headers.emplace_back(line);
    }
    if (auto err = m.text.append_line(line)) m.error = err;
    if (!m.in_headers && m.body_offset == 0) m.body_offset = m.text.size();
}

Envelope ScanFilter::envelope(const filterlib::Session& s) const {
    Envelope e;
    e.mail_from = s.mail_from;
    e.rcpts = s.rcpt_to;
    e.ip = client_ip(s.src).value_or("");
    e.hostname = s.rdns == "<unknown>" ? "" : s.rdns;
    e.helo = s.helo;
    e.user = s.user;
    char id[9];
    std::snprintf(id, sizeof id, "%08x", s.msgid);
    e.queue_id = id;
    e.mta_name = mta_name_;
    e.settings_id = config_.settings_id;
    return e;
}

void ScanFilter::on_data_end(filterlib::Session& s, filterlib::DataStream& out) {
    if (!s.data.has_value()) return out.end();  // an empty message
    auto m = std::any_cast<std::shared_ptr<Message>>(s.data);
    if (m->error) return scanned(m, Failure{Failure::Kind::Transfer, "cannot hold the message: " + *m->error}, out);
    m->scan = client_.scan({envelope(s), m->text.reader()},
                           [this, m, out](ScanResult r) mutable { scanned(m, std::move(r), out); });
}

// The message goes back (edited when rspamd accepts it), and the commit
// phase learns what to answer.
void ScanFilter::scanned(std::shared_ptr<Message> m, ScanResult result, filterlib::DataStream out) {
    if (auto* f = std::get_if<Failure>(&result)) {
        std::fprintf(stderr, "filter-rspamd: rspamd not asked (%s): %s\n", std::string(kind_name(f->kind)).c_str(),
                     f->text.c_str());
        if (!config_.accept_unscanned) m->refusal = "451 4.7.1 Message not scanned for spam, try again later";
        else std::fprintf(stderr, "filter-rspamd: message accepted unscanned (-accept-unscanned)\n");
        return write_back(*m, m->headers, out);
    }
    const Verdict v = decide(std::get<Reply>(result), config_.policy);
    if (v.disposition != Disposition::Accept) {
        m->refusal = v.reply;
        return write_back(*m, m->headers, out);
    }
    write_back(*m, apply_edits(v.edits, m->headers), out);
}

// The header lines given, then the body as it came.
void ScanFilter::write_back(Message& m, const std::vector<std::string>& headers, filterlib::DataStream& out) {
    for (const auto& h : headers) out.line(h);
    if (m.body_offset) out.line("");  // the blank line, then the body
    BodyReader r = m.text.reader();
    std::string buf(64 * 1024, '\0'), pending;
    std::uint64_t skip = m.body_offset ? m.body_offset : r.size();  // no blank line: no body
    for (long n; (n = r.read(buf.data(), buf.size())) > 0;) {
        std::string_view chunk(buf.data(), static_cast<std::size_t>(n));
        if (skip >= chunk.size()) {
            skip -= chunk.size();
            continue;
        }
        chunk.remove_prefix(static_cast<std::size_t>(skip));
        skip = 0;
        pending.append(chunk);
        std::size_t start = 0, crlf;
        while ((crlf = pending.find("\r\n", start)) != std::string::npos) {
            out.line(std::string_view(pending).substr(start, crlf - start));
            start = crlf + 2;
        }
        pending.erase(0, start);
    }
    out.end();
}

void ScanFilter::on_request(filterlib::Session& s, filterlib::Phase phase, std::string_view, filterlib::Answer answer) {
    if (phase != filterlib::Phase::Commit || !s.data.has_value()) return answer.proceed();
    auto m = std::any_cast<std::shared_ptr<Message>>(s.data);
    s.data.reset();  // the next message starts afresh
    if (m->refusal.empty()) return answer.proceed();
    answer.reject(m->refusal);
}

void ScanFilter::on_session_end(filterlib::Session& s) {
    if (!s.data.has_value()) return;
    auto m = std::any_cast<std::shared_ptr<Message>>(s.data);
    if (m->scan) client_.cancel(m->scan);
}

}  // namespace postern::rspamd
