// filters/lib/link.cpp — see link.hpp and filter.hpp.
#include "link.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <variant>

namespace postern::filterlib {
namespace {

// The events the library reads for Session, whatever the filter registered.
constexpr Event kBookkeeping[] = {Event::LinkConnect, Event::LinkDisconnect, Event::LinkIdentify,
                                  Event::LinkTls,     Event::LinkAuth,       Event::TxBegin,
                                  Event::TxMail,      Event::TxRcpt,         Event::TxReset};

// How many '|'-separated parameters each event has (the last takes the rest).
std::size_t param_count(Event e) {
    switch (e) {
    case Event::LinkConnect: return 4;
    case Event::LinkIdentify:
    case Event::LinkAuth:
    case Event::TxEnvelope:
    case Event::TxData:
    case Event::TxCommit: return 2;
    case Event::TxMail:
    case Event::TxRcpt:
    case Event::FilterReport:
    case Event::FilterResponse: return 3;
    case Event::LinkDisconnect:
    case Event::Timeout: return 0;
    default: return 1;
    }
}

std::uint32_t msgid_of(std::string_view s) {
    std::uint32_t v = 0;
    for (char c : s) {
        v <<= 4;
        if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
        else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
    }
    return v;
}

}  // namespace

struct Link::Pipe {
    uv_pipe_t handle{};
    Link* owner = nullptr;
    uv_write_t write{};
    std::string pending;
    char buf[64 * 1024];
};

Link::Link(uv_loop_t* loop, Filter& filter, RunOptions options)
    : loop_(loop), filter_(filter), options_(std::move(options)), registration_(filter.registration()) {}

Link::~Link() { finish(); }

bool Link::start() {
    auto open = [this](int fd, int named) -> Pipe* {
        // libuv polls the descriptor with epoll, which refuses regular files
        // and /dev/null: say so rather than abort in libuv.
        struct stat st {};
        if (fstat(fd, &st) != 0 || !(S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode))) {
            std::fprintf(stderr, "%s: descriptor %d is not a pipe or socket (run me from posternd or smtpd)\n",
                         options_.name.c_str(), named);
            if (fd != options_.in_fd && fd >= 0) ::close(fd);
            return nullptr;
        }
        auto* p = new Pipe{};  // NOLINT(cppcoreguidelines-owning-memory): freed by finish()'s close callback
        p->owner = this;
        p->handle.data = p;
        uv_pipe_init(loop_, &p->handle, 0);
        if (uv_pipe_open(&p->handle, fd) != 0) {
            std::fprintf(stderr, "%s: descriptor %d is not a pipe or socket\n", options_.name.c_str(), named);
            uv_close(reinterpret_cast<uv_handle_t*>(&p->handle),
                     [](uv_handle_t* h) { delete static_cast<Pipe*>(h->data); });  // NOLINT
            return nullptr;
        }
        return p;
    };
    // stdin and stdout are usually one socket: libuv must not see one
    // descriptor in two handles, so the output gets a duplicate.
    in_ = open(options_.in_fd, options_.in_fd);
    out_ = in_ ? open(dup(options_.out_fd), options_.out_fd) : nullptr;
    if (!in_ || !out_) {
        status_ = 1;
        finish();
        return false;
    }
    // Registrations go out at once, as libopensmtpd filters do: a daemon
    // reads them before, during or after its config lines.
    std::set<Event> events = registration_.events;
    events.insert(std::begin(kBookkeeping), std::end(kBookkeeping));
    filter::EncodeError err{};
    for (Event e : events)
        write_line(*filter::encode_filter_line(filter::RegisterReport{filter::Subsystem::SmtpIn, e}, &err));
    for (Phase p : registration_.phases) write_line(*filter::encode_filter_line(filter::RegisterFilter{p}, &err));
    write_line(*filter::encode_filter_line(filter::RegisterReady{}, &err));
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&in_->handle),
        [](uv_handle_t* h, size_t, uv_buf_t* b) {
            auto* p = static_cast<Pipe*>(h->data);
            *b = uv_buf_init(p->buf, sizeof p->buf);
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
            auto* p = static_cast<Pipe*>(s->data);
            if (p->owner) p->owner->on_read(n, b);
        });
    return true;
}

void Link::finish() {
    if (finished_) return;
    finished_ = true;
    for (Pipe* p : {in_, out_}) {
        if (!p) continue;
        p->owner = nullptr;
        uv_close(reinterpret_cast<uv_handle_t*>(&p->handle),
                 [](uv_handle_t* h) { delete static_cast<Pipe*>(h->data); });  // NOLINT
    }
    in_ = out_ = nullptr;
}

void Link::fail(const std::string& why) {
    std::fprintf(stderr, "%s: %s\n", options_.name.c_str(), why.c_str());
    status_ = 1;
    finish();
    uv_stop(loop_);
}

// ---- output: one write in flight, the rest gathered ----

void Link::write_line(std::string_view line) {
    if (finished_) return;
    outbuf_.append(line);
    outbuf_ += '\n';
    flush();
}

void Link::flush() {
    if (writing_ || outbuf_.empty() || !out_) return;
    out_->pending.swap(outbuf_);
    outbuf_.clear();
    out_->write.data = out_;
    uv_buf_t b = uv_buf_init(out_->pending.data(), static_cast<unsigned>(out_->pending.size()));
    writing_ = true;
    int rc = uv_write(&out_->write, reinterpret_cast<uv_stream_t*>(&out_->handle), &b, 1, [](uv_write_t* w, int st) {
        auto* p = static_cast<Pipe*>(w->data);
        if (!p->owner) return;
        Link* self = p->owner;
        self->writing_ = false;
        if (st < 0) return self->fail(std::string("cannot write to the daemon: ") + uv_strerror(st));
        self->flush();
    });
    if (rc != 0) {
        writing_ = false;
        fail(std::string("cannot write to the daemon: ") + uv_strerror(rc));
    }
}

// ---- input ----

void Link::on_read(ssize_t n, const uv_buf_t* buf) {
    if (n < 0) {
        // The daemon closed our input: the normal end.
        finish();
        uv_stop(loop_);
        return;
    }
    inbuf_.append(buf->base, static_cast<std::size_t>(n));
    std::size_t start = 0, nl;
    auto keep = shared_from_this();
    while (!finished_ && (nl = inbuf_.find('\n', start)) != std::string::npos) {
        take(std::string_view(inbuf_).substr(start, nl - start));
        start = nl + 1;
    }
    inbuf_.erase(0, start);
    if (inbuf_.size() > filter::kMaxLine) fail("a line from the daemon is too long");
}

void Link::take(std::string_view line) {
    auto parsed = filter::parse_daemon_line(line);
    if (auto* e = std::get_if<filter::ParseError>(&parsed)) {
        const std::string why = *e == filter::ParseError::UnknownLine
                                    ? "unknown line (config, report or filter expected)"
                                    : std::string(filter::describe(*e));
        return fail("cannot read \"" + std::string(line.substr(0, 80)) + "\": " + why);
    }
    auto& dl = std::get<filter::DaemonLine>(parsed);
    if (auto* c = std::get_if<filter::ConfigLine>(&dl)) {
        if (!c->ready()) return filter_.on_config(c->key, c->value);
        if (!ready_) {
            ready_ = true;
            filter_.on_ready();
        }
        return;
    }
    if (auto* r = std::get_if<filter::DaemonReport>(&dl)) return take_report(*r);
    take_request(std::get<filter::DaemonRequest>(dl));
}

Link::SessionRecord& Link::record(std::uint64_t id) {
    auto [it, fresh] = sessions_.try_emplace(id);
    if (fresh) it->second.session.id = id;
    return it->second;
}

void Link::take_report(const filter::DaemonReport& r) {
    if (r.subsystem != filter::Subsystem::SmtpIn) return;
    auto params = filter::split_params(r.params, param_count(r.event));
    Session& s = record(r.session).session;
    book(s, r, params);
    if (registration_.events.count(r.event)) filter_.on_report(s, r.event, params);
    if (r.event == Event::LinkDisconnect) {
        filter_.on_session_end(s);
        sessions_.erase(r.session);
    }
}

// What the library itself keeps of the reports.
void Link::book(Session& s, const filter::DaemonReport& r, const std::vector<std::string_view>& p) {
    auto at = [&](std::size_t i) { return i < p.size() ? p[i] : std::string_view(); };
    switch (r.event) {
    case Event::LinkConnect:
        s.rdns = std::string(at(0));
        s.fcrdns = at(1) == "pass";
        s.src = std::string(at(2));
        s.dest = std::string(at(3));
        break;
    case Event::LinkIdentify: s.helo = std::string(at(1)); break;
    case Event::LinkTls: s.tls = true; break;
    case Event::LinkAuth: {
        // 0.7: result|user; before: user|result (the user may hold '|').
        std::string_view all = r.params;
        std::size_t bar = r.minor >= 7 ? all.find('|') : all.rfind('|');
        if (bar == std::string_view::npos) break;
        std::string_view result = r.minor >= 7 ? all.substr(0, bar) : all.substr(bar + 1);
        std::string_view user = r.minor >= 7 ? all.substr(bar + 1) : all.substr(0, bar);
        if (result == "pass") s.user = std::string(user);
        break;
    }
    case Event::TxBegin:
        s.msgid = msgid_of(at(0));
        s.mail_from.clear();
        s.rcpt_to.clear();
        break;
    case Event::TxMail:
        if (at(1) == "ok") s.mail_from = std::string(at(2));
        break;
    case Event::TxRcpt:
        if (at(1) == "ok") s.rcpt_to.emplace_back(at(2));
        break;
    case Event::TxReset:
        s.msgid = 0;
        s.mail_from.clear();
        s.rcpt_to.clear();
        break;
    default: break;
    }
}

void Link::take_request(const filter::DaemonRequest& r) {
    SessionRecord& rec = record(r.session);
    if (r.phase != Phase::DataLine) {
        filter_.on_request(rec.session, r.phase, r.param, Answer(shared_from_this(), r.session, r.token));
        return;
    }
    if (!rec.stream || rec.stream->ended()) rec.stream = DataStream(shared_from_this(), r.session, r.token);
    if (filter::is_data_end(r.param)) filter_.on_data_end(rec.session, *rec.stream);
    else filter_.on_data_line(rec.session, filter::dot_unstuff(r.param), *rec.stream);
}

// ---- Answer and DataStream ----

Answer::Answer(std::shared_ptr<Link> link, std::uint64_t session, std::uint64_t token)
    : link_(link), session_(session), token_(token) {}

void Answer::send(filter::FilterResult r) {
    if (*done_) return;
    *done_ = true;
    auto link = link_.lock();
    if (!link) return;
    r.session = session_;
    r.token = token_;
    filter::EncodeError err{};
    auto line = filter::encode_filter_line(r, &err);
    if (!line) return link->fail("cannot answer: " + std::string(filter::describe(err)));
    link->write_line(*line);
}

void Answer::proceed() { send({0, 0, filter::Decision::Proceed, {}, {}}); }
void Answer::junk() { send({0, 0, filter::Decision::Junk, {}, {}}); }
void Answer::rewrite(std::string_view value) { send({0, 0, filter::Decision::Rewrite, {}, std::string(value)}); }
void Answer::report(std::string_view text) { send({0, 0, filter::Decision::Report, {}, std::string(text)}); }

namespace {
filter::Reply reply_of(std::string_view text) {
    int code = 0;
    for (std::size_t i = 0; i < 3 && i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i)
        code = code * 10 + (text[i] - '0');
    return {code, std::string(text.size() > 4 ? text.substr(4) : std::string_view())};
}
}  // namespace

void Answer::reject(std::string_view reply) { send({0, 0, filter::Decision::Reject, reply_of(reply), {}}); }
void Answer::disconnect(std::string_view reply) { send({0, 0, filter::Decision::Disconnect, reply_of(reply), {}}); }

DataStream::DataStream(std::shared_ptr<Link> link, std::uint64_t session, std::uint64_t token)
    : link_(link), session_(session), token_(token) {}

void DataStream::line(std::string_view text) {
    auto link = link_.lock();
    if (!link || *ended_) return;
    filter::EncodeError err{};
    auto l = filter::encode_filter_line(filter::FilterDataline{session_, token_, filter::dot_stuff(text)}, &err);
    if (!l) return link->fail("cannot write a data line: " + std::string(filter::describe(err)));
    link->write_line(*l);
}

void DataStream::end() {
    auto link = link_.lock();
    if (!link || *ended_) return;
    *ended_ = true;
    filter::EncodeError err{};
    link->write_line(
        *filter::encode_filter_line(filter::FilterDataline{session_, token_, std::string(filter::kDataEnd)}, &err));
}

// ---- run ----

int run(Filter& f, uv_loop_t* loop, const RunOptions& options) {
    if (!loop) loop = uv_default_loop();
    auto link = std::make_shared<Link>(loop, f, options);
    if (!link->start()) return 1;
    uv_run(loop, UV_RUN_DEFAULT);
    const int status = link->status();
    link.reset();
    uv_run(loop, UV_RUN_NOWAIT);  // let the closed handles go
    return status;
}

}  // namespace postern::filterlib
