// The DATA phase of a session: reading the message, refusing what must be
// refused (smuggling attempts, too big, routing loops), and committing it to
// the queue before the 250; see session.hpp.
//
// The message is never held whole: it goes on as it arrives, to the
// data-line filters or, without them, into a MessageBuffer (a temporary
// file in the spool beyond 64 KiB), from which the queue commits it. Only
// its header section is held until its end, for the checks and additions
// that read it (loop count, masquerade, Date:/Message-ID:), and at most
// kMaxHeldHeader of it.
#include <ctime>

#include "queue/envelope.hpp"
#include "smtpd/meters.hpp"
#include "smtpd/session.hpp"
#include "smtpd/session_submission.hpp"
#include "table/table.hpp"
#include "util/log.hpp"

namespace postern::smtpd {
namespace {

constexpr size_t kMaxDataLine = 65536;  // longer text lines refuse the message
constexpr int kMaxReceived = 100;       // loop detection
// A header section longer than this goes on unread from there: the loop
// count, masquerade and the added fields see its first 256 KiB (Postfix
// keeps 100 KiB of it, header_size_limit), and a client cannot make the
// session hold a message in memory by sending it without an empty line.
constexpr size_t kMaxHeldHeader = 256 * 1024;

// `senders <t> masquerade`: the From: header shows the address the user
// was allowed to send as. The display name stays; the address is replaced;
// a From: spread over continuation lines becomes one line.
void masquerade_from(std::string& message, const std::string& sender) {
    for (size_t pos = 0; pos < message.size();) {
        size_t nl = message.find('\n', pos);
        if (nl == std::string::npos || nl == pos) return;  // end of the header section
        if (nl - pos >= 5 && table::lowercase(std::string_view(message).substr(pos, 5)) == "from:") {
            size_t end = nl + 1;
            while (end < message.size() && (message[end] == ' ' || message[end] == '\t')) {
                size_t next = message.find('\n', end);
                end = next == std::string::npos ? message.size() : next + 1;
            }
            std::string value = message.substr(pos + 5, end - pos - 5);
            auto lt = value.find('<');
            std::string display = lt == std::string::npos ? "" : value.substr(0, lt);
            while (!display.empty() && (display.back() == ' ' || display.back() == '\t' || display.back() == '\n'))
                display.pop_back();
            std::string field = "From:" + (display.empty() ? std::string(" ") : display + " ") + "<" + sender + ">\n";
            message.replace(pos, end - pos, field);
            return;
        }
        pos = nl + 1;
    }
}

// Received: headers in the header section (up to the first empty line).
int count_received(std::string_view message) {
    int received = 0;
    for (size_t pos = 0; pos < message.size();) {
        size_t nl = message.find('\n', pos);
        std::string_view line = message.substr(pos, (nl == std::string::npos ? message.size() : nl) - pos);
        if (line.empty()) break;
        if (line.size() >= 9 && table::lowercase(line.substr(0, 9)) == "received:") ++received;
        if (nl == std::string::npos) break;
        pos = nl + 1;
    }
    return received;
}

constexpr const char* kLoopText = "5.4.6 Routing loop detected: too many Received headers";

}  // namespace

void SmtpSession::cmd_data(const smtp::Command& c) {
    if (!c.args.empty()) {
        reply(501, "5.5.4 Syntax error: DATA takes no arguments");
        return;
    }
    if (state_ != State::Mail) {
        reply(503, "5.5.1 Bad sequence of commands: send MAIL first");
        return;
    }
    if (tx_.rcpts.empty()) {
        reply(503, "5.5.1 Bad sequence of commands: no valid recipients");
        return;
    }
    data_ = std::make_unique<smtp::DataReader>(server_.ctx().config->max_message_size, kMaxDataLine);
    state_ = State::Data;
    reply(354, "End data with <CR><LF>.<CR><LF>");
    if (chain_)
        filter_report(
            filter::TxData{static_cast<std::uint32_t>(std::stoul(tx_.msgid, nullptr, 16)), filter::TxResult::Ok});
    stream_begin(chain_ && chain_->data_filtered());
}

void SmtpSession::data_fed() {
    if (stream_ && !stream_->sent_end) stream_lines();
    if (state_ == State::Data && data_->done()) finish_data();
}

void SmtpSession::finish_data() {
    smtp::DataReader reader = std::move(*data_);
    data_.reset();
    state_ = State::Ready;
    if (stream_) stream_end(reader);
}

// The session acts as a submission server (MSA) on the local socket and
// for an authenticated client: it may complete their messages
// (session_submission.hpp). Any other session may be relaying, and leaves
// the message as it came.
bool SmtpSession::submission() const { return listener_.socket || authenticated_; }

// `text`: the message, or its lines before the empty line (the filters'
// stream holds them until then), with the fields this server adds when
// missing, before any filter sees the message.
void SmtpSession::complete_header(std::string& text) {
    AddedFields fields{rfc5322_date(std::time(nullptr)), new_message_id_value(tx_.msgid, hostname())};
    std::vector<std::string_view> added = add_missing_fields(text, fields);
    if (added.empty() || !log::verbose()) return;
    std::string names;
    for (auto name : added) names += (names.empty() ? "" : ",") + std::string(name);
    log::debug(log::Line(id_ + " smtp added-fields").kv("msgid", tx_.msgid).kv("fields", names));
}

std::string SmtpSession::received_header(const std::string& msgid) const {
    std::string h = "Received: ";
    if (listener_.mask_src) {
    } else if (listener_.socket) {
        // No address to show: who submitted, from the socket's credentials.
        h += "from " + helo_ + " (local user " + local_user_ + ", uid " + std::to_string(local_uid_) + ")\n\t";
    } else {
        h += "from " + helo_ + " (" + (rdns_.empty() ? "" : rdns_ + " ") + "[" + client_ip_ + "])\n\t";
    }
    // RFC 3848: ESMTP, then S for TLS and A for an authenticated client.
    std::string with = std::string(esmtp_ ? "ESMTP" : "SMTP") + (tls_active_ ? "S" : "") + (authenticated_ ? "A" : "");
    h += "by " + hostname() + " (postern) with " + with + " id " + msgid;
    if (tls_active_) h += "\n\t(" + tls_->version() + ":" + tls_->cipher() + ":" + std::to_string(tls_->bits()) + ")";
    if (listener_.received_auth && authenticated_) h += "\n\t(authenticated as " + auth_user_ + ")";
    if (tx_.rcpts.size() == 1) h += "\n\tfor <" + tx_.rcpts.front().rcpt + ">";
    h += ";\n\t" + rfc5322_date(std::time(nullptr)) + "\n";
    return h;
}

void SmtpSession::commit_message(std::string message, std::shared_ptr<util::Fd> file, std::uint64_t file_size) {
    const SmtpContext& ctx = server_.ctx();
    queue::Store::Message msg;
    msg.msgid = tx_.msgid.empty() ? queue::new_message_id() : tx_.msgid;
    msg.file = file;
    msg.data = std::move(message);
    std::int64_t now = std::time(nullptr);
    for (const auto& r : tx_.rcpts) {
        for (const auto& d : r.deliveries) {
            queue::Envelope e = rules::new_envelope(*ctx.config, d, msg.msgid, now);
            e.sender = tx_.sender;
            e.rcpt = r.rcpt;
            e.helo = helo_;
            e.client = client_ip_;
            e.hostname = hostname();
            e.tag = listener_.tag;
            e.dsn_notify = r.dsn.notify;
            e.dsn_orcpt = r.dsn.orcpt;
            e.dsn_envid = tx_.dsn.envid;
            e.dsn_ret = tx_.dsn.ret == smtp::DsnRet::Full ? "full" : tx_.dsn.ret == smtp::DsnRet::Headers ? "hdrs" : "";
            msg.envelopes.push_back(std::move(e));
        }
    }
    size_t size = msg.data.size() + file_size;
    std::string msgid = msg.msgid;
    auto envelopes = msg.envelopes;  // for ctx.queued once durable
    tx_ = {};
    ++messages_;
    busy_ = true;
    event::LoopPost* post = ctx.post;
    const auto* queued = &ctx.queued;
    std::string sid = id_;
    ctx.committer->submit(std::move(msg), [post, queued, weak = weak_from_this(), msgid, size, sid, file,
                                           envelopes = std::move(envelopes)](bool ok, const std::string& error) {
        // The store is done with the temporary file (copied, or the commit
        // failed), but the committer may keep its batch, and so this
        // descriptor and the unlinked file's blocks, until its next batch:
        // close it now. Here, on the committer's thread, which is the one
        // that drops the batch.
        if (file) file->reset();
        post->post([=] {
            if (ok) {
                log::info(log::Line(sid + " smtp message")
                              .kv("msgid", msgid)
                              .kv("size", static_cast<long long>(size))
                              .kv("nrcpt", static_cast<long long>(envelopes.size())));
                for (const auto& e : envelopes)
                    log::info(
                        log::Line(sid + " smtp envelope").kv("evpid", e.id).kv("from", e.sender).kv("to", e.rcpt));
                (*queued)(envelopes);
            } else {
                log::error(log::Line(sid + " queue commit-failed").kv("msgid", msgid).kv("error", error));
            }
            auto self = weak.lock();
            if (!self || self->state_ == State::Closing) return;
            self->busy_ = false;
            if (ok) self->reply(250, "2.0.0 " + msgid + " Message accepted for delivery");
            else self->reply(451, "4.3.0 Temporary queue failure, try again later");
            if (ok) meters::message_accepted();
            else meters::message_refused(451);
            if (self->chain_) {
                const auto id = static_cast<std::uint32_t>(std::stoul(msgid, nullptr, 16));
                if (ok) {
                    for (const auto& e : envelopes)
                        self->filter_report(filter::TxEnvelope{id, std::stoull(e.id, nullptr, 16)});
                    self->filter_report(filter::TxCommit{id, size});
                } else {
                    self->filter_report(filter::TxRollback{id});
                }
                self->filter_report(filter::TxReset{id});
            }
            self->process();
            self->flush();
            self->update_reading();
        });
    });
}

// ---- the message as it arrives ----
//
// What is stored, or what the data-line filters get (what OpenSMTPD gives
// them): X-Spam (if junked), our Received:, then the message as the client
// sends it (to the filters dot-stuffed, then "."). It goes on as it
// arrives; while a filter is behind, or the disk is behind with the
// message's file, the client is not read (update_reading). The header
// section is held until its end (an empty line, or a line that is not a
// field), for the loop count and `masquerade`. Through the filters, what
// the last one gives back is the message stored.

SmtpSession::FilterStream SmtpSession::new_stream() {
    FilterStream st;
    st.out = std::make_shared<MessageBuffer>(server_.loop(), server_.ctx().store->dir() + "/incoming");
    // A write done may let the session read its client again.
    st.out->on_written([weak = weak_from_this()] {
        if (auto self = weak.lock()) self->update_reading();
    });
    return st;
}

void SmtpSession::stream_begin(bool to_filters) {
    stream_ = std::make_unique<FilterStream>(new_stream());
    stream_->to_filters = to_filters;
    if (to_filters) chain_->data_begin();
    if (tx_.junk) stream_send("X-Spam: Yes");
    std::string received = received_header(tx_.msgid);
    for (size_t pos = 0; stream_ && pos < received.size();) {
        size_t nl = received.find('\n', pos);
        stream_send(std::string_view(received).substr(pos, nl - pos));
        pos = nl + 1;
    }
}

// Takes what the reader holds so far: complete lines to the filters, or,
// without filters, lines while in the header section and then everything.
void SmtpSession::stream_lines() {
    std::string& m = data_->message();
    size_t pos = 0;
    while (stream_ && (stream_->to_filters || stream_->in_headers)) {
        size_t nl = m.find('\n', pos);
        if (nl == std::string::npos) break;
        stream_line(std::string_view(m).substr(pos, nl - pos));
        pos = nl + 1;
    }
    if (!stream_) return;  // a filter failed the session
    FilterStream& st = *stream_;
    if (!st.to_filters && !st.in_headers) {
        m.erase(0, pos);
        if (st.out) st.out->take(m);  // the rest as it is, lines or not
        else m.clear();               // to be refused: dropped
        pos = 0;
    }
    m.erase(0, pos);
    if (!st.to_filters && st.out && (data_->too_big() || data_->line_too_long())) {
        // It will be refused at its end: nothing more of it is held or written.
        st.out.reset();
        st.in_headers = false;
        std::string().swap(st.headers);
        std::string().swap(m);
    }
}

void SmtpSession::stream_line(std::string_view line) {
    FilterStream& st = *stream_;
    if (!st.in_headers) return stream_send(line);
    if (line.empty()) {
        stream_headers();
        if (stream_) stream_send(line);
        return;
    }
    const bool first = st.headers.empty();
    st.headers.append(line);
    st.headers += '\n';
    // A line that is no field (nor a field's continuation) ends the header
    // section: it is the body's first line, and it goes with the section so
    // that add_missing_fields puts its empty line before it.
    const bool continuation = line[0] == ' ' || line[0] == '\t';
    if ((continuation ? first : !starts_field(line)) || st.headers.size() > kMaxHeldHeader) stream_headers();
}

void SmtpSession::stream_headers() {
    FilterStream& st = *stream_;
    st.in_headers = false;
    if (count_received(st.headers) >= kMaxReceived && !st.refusal_code) {
        st.refusal_code = 554;
        st.refusal = kLoopText;
    }
    if (listener_.masquerade && authenticated_ && !tx_.sender.empty()) masquerade_from(st.headers, tx_.sender);
    if (submission()) complete_header(st.headers);
    std::string headers = std::move(st.headers);
    for (size_t pos = 0; stream_ && pos < headers.size();) {
        size_t nl = headers.find('\n', pos);
        stream_send(std::string_view(headers).substr(pos, nl - pos));
        pos = nl + 1;
    }
}

void SmtpSession::stream_send(std::string_view line) {
    FilterStream& st = *stream_;
    if (st.to_filters) {
        if (chain_) chain_->data_line(filter::dot_stuff(line));
    } else if (st.out) {
        st.out->append(line);
        st.out->append("\n");
    }
}

// The client's "." has come: the session's own checks (what the reader
// found before the loop count), then the filters' ".", or the message's end.
void SmtpSession::stream_end(const smtp::DataReader& reader) {
    if (stream_->in_headers) stream_headers();
    if (!stream_) return;
    FilterStream& st = *stream_;
    if (reader.bare_newline()) {
        st.refusal_code = 550;
        st.refusal = "5.6.0 Message refused: bare CR or LF in message text (RFC 5321 section 2.3.8)";
    } else if (reader.too_big()) {
        st.refusal_code = 552;
        st.refusal = "5.3.4 Message too big for system";
    } else if (reader.line_too_long()) {
        st.refusal_code = 550;
        st.refusal = "5.6.0 Message refused: text line longer than 65536 octets";
    }
    busy_ = true;
    st.sent_end = true;
    if (st.to_filters) return chain_->data_line(filter::kDataEnd);  // the filters answer with the message, then "."
    stream_output_end(false);
}

}  // namespace postern::smtpd
