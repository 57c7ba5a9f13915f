// The privileged delivery channel; see privileged.hpp.
#include "delivery/privileged.hpp"

#include <algorithm>
#include <memory>

#include "queue/store.hpp"
#include "util/log.hpp"

namespace postern::delivery {
namespace {

constexpr size_t kMaxFrame = 1 << 20;
enum { kId, kMethod, kSender, kRcpt, kDest, kUser, kAccount, kPath, kOptions, kMsgid, kRequestFields };

std::string netstring(std::string_view s) {
    return std::to_string(s.size()) + ":" + std::string(s) + ",";
}

// Parses one netstring at the front of `in`: 1 done, 0 need more, -1 malformed.
int take_netstring(std::string_view& in, std::string_view* out, size_t max) {
    size_t len = 0, i = 0;
    while (i < in.size() && in[i] >= '0' && in[i] <= '9') {
        if (i >= 8) return -1;
        len = len * 10 + static_cast<size_t>(in[i] - '0');
        ++i;
    }
    if (i == in.size()) return 0;
    if (i == 0 || in[i] != ':' || len > max) return -1;
    if (in.size() < i + 1 + len + 1) return 0;
    if (in[i + 1 + len] != ',') return -1;
    *out = in.substr(i + 1, len);
    in.remove_prefix(i + 1 + len + 1);
    return 1;
}

bool is_name(std::string_view s) {
    return !s.empty() && s.size() <= 64 &&
           std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}
bool is_hex8(std::string_view s) {
    return s.size() == 8 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

void write_frame(uv_pipe_t* pipe, std::string frame) {
    struct Write {
        uv_write_t req;
        std::string data;
    };
    auto w = std::make_unique<Write>();
    w->data = std::move(frame);
    uv_buf_t b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    w->req.data = w.get();
    if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(pipe), &b, 1,
                 [](uv_write_t* req, int) { std::unique_ptr<Write> done(static_cast<Write*>(req->data)); }) == 0)
        (void)w.release();
}

}  // namespace

std::string encode_frame(const std::vector<std::string>& fields) {
    std::string payload;
    for (const auto& f : fields) payload += netstring(f);
    return netstring(payload);
}

bool decode_frame(std::string& buffer, std::vector<std::string>* fields, bool* bad) {
    *bad = false;
    std::string_view in(buffer);
    std::string_view payload;
    int r = take_netstring(in, &payload, kMaxFrame);
    if (r <= 0) {
        *bad = r < 0;
        return false;
    }
    fields->clear();
    while (!payload.empty()) {
        std::string_view f;
        if (take_netstring(payload, &f, kMaxFrame) != 1) {
            *bad = true;
            return false;
        }
        fields->emplace_back(f);
    }
    buffer.erase(0, buffer.size() - in.size());
    return true;
}

// ---- client (unprivileged side) ----

PrivClient::PrivClient(uv_loop_t* loop, int fd) {
    uv_pipe_init(loop, &pipe_, 0);
    uv_pipe_open(&pipe_, fd);
    pipe_.data = this;
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&pipe_),
        [](uv_handle_t* h, size_t, uv_buf_t* b) {
            auto* c = static_cast<PrivClient*>(h->data);
            *b = uv_buf_init(c->buf_, sizeof c->buf_);
        },
        [](uv_stream_t* st, ssize_t n, const uv_buf_t* b) {
            auto* c = static_cast<PrivClient*>(st->data);
            if (n < 0) {
                uv_read_stop(st);
                c->fail_all("privileged parent went away");
                return;
            }
            c->inbuf_.append(b->base, static_cast<size_t>(n));
            std::vector<std::string> fields;
            bool bad = false;
            while (decode_frame(c->inbuf_, &fields, &bad)) c->on_frame(fields);
            if (bad) c->fail_all("garbled reply from the privileged parent");
        });
}

void PrivClient::launch(const Job& job, Done done) {
    if (broken_) {
        done({Result::Status::TempFail, "privileged parent unavailable"});
        return;
    }
    unsigned long id = next_id_++;
    pending_.emplace(id, std::move(done));
    write_frame(&pipe_, encode_frame({std::to_string(id), job.method, job.sender, job.rcpt, job.dest, job.user,
                                      job.account, job.path, job.options, job.msgid}));
}

void PrivClient::on_frame(const std::vector<std::string>& f) {
    if (f.size() != 3) return fail_all("malformed reply from the privileged parent");
    auto it = pending_.find(std::strtoul(f[0].c_str(), nullptr, 10));
    if (it == pending_.end()) return;
    Done done = std::move(it->second);
    pending_.erase(it);
    Result r;
    r.status = f[1] == "ok" ? Result::Status::Ok : f[1] == "perm" ? Result::Status::PermFail : Result::Status::TempFail;
    r.text = f[2];
    done(std::move(r));
}

void PrivClient::fail_all(const std::string& why) {
    broken_ = true;
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& [id, done] : pending) done({Result::Status::TempFail, why});
}

void PrivClient::close() {
    uv_close(reinterpret_cast<uv_handle_t*>(&pipe_), nullptr);
}

// ---- server (privileged side) ----

PrivServer::PrivServer(uv_loop_t* loop, int fd, std::string spool_dir, SpawnLauncher& launcher)
    : spool_dir_(std::move(spool_dir)), launcher_(launcher) {
    uv_pipe_init(loop, &pipe_, 0);
    uv_pipe_open(&pipe_, fd);
    pipe_.data = this;
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&pipe_),
        [](uv_handle_t* h, size_t, uv_buf_t* b) {
            auto* s = static_cast<PrivServer*>(h->data);
            *b = uv_buf_init(s->buf_, sizeof s->buf_);
        },
        [](uv_stream_t* st, ssize_t n, const uv_buf_t* b) {
            auto* s = static_cast<PrivServer*>(st->data);
            if (n < 0) {
                // The unprivileged side is gone: nothing left to serve.
                uv_read_stop(st);
                uv_close(reinterpret_cast<uv_handle_t*>(&s->pipe_), nullptr);
                return;
            }
            s->inbuf_.append(b->base, static_cast<size_t>(n));
            std::vector<std::string> fields;
            bool bad = false;
            while (decode_frame(s->inbuf_, &fields, &bad)) s->on_frame(fields);
            if (bad) {
                log::error("privileged parent: garbled request from the unprivileged process; closing the channel");
                uv_read_stop(st);
                uv_close(reinterpret_cast<uv_handle_t*>(&s->pipe_), nullptr);
            }
        });
}

void PrivServer::on_frame(const std::vector<std::string>& f) {
    if (f.size() != kRequestFields) return;  // cannot even answer it
    if (!is_name(f[kMethod]) || !is_hex8(f[kMsgid])) {
        reply(f[kId], {Result::Status::PermFail, "refused: malformed delivery request"});
        return;
    }
    Job job;
    job.method = f[kMethod];
    job.sender = f[kSender];
    job.rcpt = f[kRcpt];
    job.dest = f[kDest];
    job.user = f[kUser];
    job.account = f[kAccount];
    job.path = f[kPath];
    job.options = f[kOptions];
    job.msgid = f[kMsgid];
    job.message_path = queue::Store(spool_dir_).message_path(job.msgid);
    std::string id = f[kId];
    launcher_.launch(job, [this, id](Result r) { reply(id, r); });
}

void PrivServer::reply(const std::string& id, const Result& r) {
    const char* status = r.status == Result::Status::Ok ? "ok" : r.status == Result::Status::PermFail ? "perm" : "temp";
    write_frame(&pipe_, encode_frame({id, status, r.text}));
}

}  // namespace postern::delivery
