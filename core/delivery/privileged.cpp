// The privileged delivery channel; see privileged.hpp.
#include "delivery/privileged.hpp"

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <memory>
#include <optional>

#include "delivery/rederive.hpp"
#include "queue/store.hpp"
#include "util/frame.hpp"
#include "util/log.hpp"

namespace postern::delivery {
namespace {

// Requests: "deliver", id, action, method, user, account, options, secret,
// then per item: sender, rcpt, dest, "action" or "expansion", path, msgid,
// mail params, rcpt params; or "auth", id, user, password. What the parent
// can derive from its configuration (rederive.hpp) it does, and drops the
// request's: an own item's path, the options, the wrapper, the secret of
// anything but a relay.
enum { kKind, kId, kAction, kMethod, kUser, kAccount, kOptions, kSecret, kHeadFields };
enum { kSender, kRcpt, kDest, kOrigin, kPath, kMsgid, kMailParams, kRcptParams, kItemFields };
// A batch is at most 32 deliveries (delivery/kind.hpp); the reply to the
// largest request must fit one frame, whatever each result holds.
constexpr size_t kMaxItems = 128;
static_assert(kMaxItems * (kMaxResultText + kMaxRemoteHost + kMaxRemoteAddr + kMaxRemoteReply + 256) < util::kMaxFrame);

bool is_name(std::string_view s) {
    return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    });
}
bool is_hex8(std::string_view s) {
    return s.size() == 8 &&
           std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
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

// ---- the deliver request ----

std::vector<std::string> deliver_request(unsigned long id, const Job& job) {
    std::vector<std::string> fields = {"deliver", std::to_string(id), job.action,  job.method,
                                       job.user,  job.account,        job.options, job.secret};
    for (const auto& item : job.items)
        fields.insert(fields.end(), {item.sender, item.rcpt, item.dest, item.expanded ? "expansion" : "action",
                                     item.path, item.msgid, item.mail_params, item.rcpt_params});
    return fields;
}

std::optional<DeliverRequest> read_deliver_request(const std::vector<std::string>& f, const config::Config& config,
                                                   const std::string& spool_dir) {
    if (f.size() < kHeadFields || f[kKind] != "deliver") return std::nullopt;
    DeliverRequest req;
    req.id = f[kId];
    req.items = (f.size() - kHeadFields) / kItemFields;
    auto refuse = [&](const std::string& why) {
        req.refused = why;
        return req;
    };
    if ((f.size() - kHeadFields) % kItemFields != 0 || req.items == 0 || req.items > kMaxItems)
        return refuse("malformed delivery request");
    if (!is_name(f[kMethod])) return refuse("bad method name");
    Job& job = req.job;
    job.action = f[kAction];
    job.method = f[kMethod];
    job.user = f[kUser];
    job.account = f[kAccount];
    job.options = f[kOptions];
    job.secret = f[kSecret];
    queue::Store store(spool_dir);
    for (size_t i = 0; i < req.items; ++i) {
        const std::string* item = &f[kHeadFields + i * kItemFields];
        if (!is_hex8(item[kMsgid])) return refuse("bad message id");
        if (item[kOrigin] != "action" && item[kOrigin] != "expansion") return refuse("bad item origin");
        // The message path comes from our own spool folder and a checked id,
        // never from the request.
        job.items.push_back({item[kSender], item[kRcpt], item[kDest], item[kPath], item[kMsgid],
                             store.message_path(item[kMsgid]), item[kMailParams], item[kRcptParams],
                             item[kOrigin] == "expansion"});
    }
    // The action, its paths, options and wrapper: the parent's own.
    if (std::string why = rederive(config, &job); !why.empty()) return refuse(why);
    return req;
}

// ---- the channel ----

void FrameChannel::open(uv_loop_t* loop, int fd) {
    uv_pipe_init(loop, &pipe_, 0);
    uv_pipe_open(&pipe_, fd);
    pipe_.data = this;
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&pipe_),
        [](uv_handle_t* h, size_t, uv_buf_t* b) {
            auto* c = static_cast<FrameChannel*>(h->data);
            *b = uv_buf_init(c->buf_, sizeof c->buf_);
        },
        [](uv_stream_t* st, ssize_t n, const uv_buf_t* b) {
            auto* c = static_cast<FrameChannel*>(st->data);
            if (n < 0) {
                uv_read_stop(st);
                c->on_lost(false);
                return;
            }
            c->inbuf_.append(b->base, static_cast<size_t>(n));
            std::vector<std::string> fields;
            bool bad = false;
            while (util::decode_frame(c->inbuf_, &fields, &bad)) c->on_frame(fields);
            if (bad) {
                uv_read_stop(st);
                c->on_lost(true);
            }
        });
}

// An answer that comes after the other side went away (an agent that
// outlived a child being replaced) has nobody to go to.
void FrameChannel::send(const std::vector<std::string>& fields) {
    if (!closed_) write_frame(&pipe_, util::encode_frame(fields));
}

void FrameChannel::close_channel() {
    closed_ = true;
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&pipe_)))
        uv_close(reinterpret_cast<uv_handle_t*>(&pipe_), nullptr);
}

// ---- client (unprivileged side) ----

PrivClient::PrivClient(uv_loop_t* loop, int fd) { open(loop, fd); }

void PrivClient::on_lost(bool garbled) {
    std::string why = garbled ? "garbled reply from the privileged parent" : "privileged parent went away";
    fail_all(why);
    close_channel();
    if (auto fn = std::move(parent_lost_)) fn(why);
}

void PrivClient::launch(const Job& job, Done done) {
    if (broken_) {
        done(std::vector<Result>(job.items.size(), Result{Result::Status::TempFail, "privileged parent unavailable"}));
        return;
    }
    unsigned long id = next_id_++;
    pending_.emplace(id, Pending{job.items.size(), std::move(done), nullptr, nullptr, job.progress});
    send(deliver_request(id, job));
}

void PrivClient::check_system_account(const std::string& user, const std::string& password, AuthDone done) {
    if (broken_) return done(auth::Check::TempFail, "privileged parent unavailable");
    unsigned long id = next_id_++;
    pending_.emplace(id, Pending{0, nullptr, std::move(done), nullptr, nullptr});
    send({"auth", std::to_string(id), user, password});
}

void PrivClient::request_reload(ReloadDone done) {
    if (broken_) return done(false, {"the privileged process is gone"});
    unsigned long id = next_id_++;
    pending_.emplace(id, Pending{0, nullptr, nullptr, std::move(done), nullptr});
    send({"reload", std::to_string(id)});
}

void PrivClient::report_paused(const std::vector<std::string>& names) {
    if (broken_) return;
    std::vector<std::string> fields = {"paused"};
    fields.insert(fields.end(), names.begin(), names.end());
    send(fields);
}

// Reply: id, then per item the result's fields (delivery/result.hpp); a
// password check: id, status word, text; a reload: id, "ok" or "error",
// then the problems. Or the parent's own "drain".
void PrivClient::on_frame(const std::vector<std::string>& f) {
    if (f.empty()) return fail_all("malformed reply from the privileged parent");
    if (f.size() == 1 && f[0] == "drain") {
        if (auto fn = std::move(drain_)) fn();
        return;
    }
    if (f.size() == 1 && f[0] == "queue-free") {
        if (auto fn = std::move(queue_free_)) fn();
        return;
    }
    if (f[0] == "progress") return on_progress(f);
    auto it = pending_.find(std::strtoul(f[0].c_str(), nullptr, 10));
    if (it == pending_.end()) return;
    if (!it->second.auth_done && !it->second.reload_done && (f.size() - 1) % kResultFields != 0)
        return fail_all("malformed reply from the privileged parent");
    Pending p = std::move(it->second);
    pending_.erase(it);
    if (p.reload_done) {
        bool ok = f.size() >= 2 && f[1] == "ok";
        std::vector<std::string> errors(f.begin() + std::min<std::ptrdiff_t>(2, std::ssize(f)), f.end());
        if (!ok && errors.empty()) errors.push_back("malformed reply from the privileged parent");
        return p.reload_done(ok, std::move(errors));
    }
    if (p.auth_done) {
        auth::Check c = f.size() == 3 && f[1] == "ok"     ? auth::Check::Ok
                        : f.size() == 3 && f[1] == "perm" ? auth::Check::Bad
                                                          : auth::Check::TempFail;
        return p.auth_done(c, f.size() == 3 ? f[2] : "malformed reply");
    }
    std::vector<Result> results;
    for (size_t i = 1; i < f.size(); i += kResultFields) {
        Result r;
        std::string why;
        if (!parse_result(&f[i], &r, &why))
            r = {Result::Status::TempFail, "malformed result from the privileged parent (" + why + ")"};
        results.push_back(std::move(r));
    }
    results.resize(p.items, Result{Result::Status::TempFail, "no result from the privileged parent"});
    p.done(std::move(results));
}

// "progress", id, item index, the result's fields: one delivery's result
// ahead of the reply that brings them all (Job::progress).
void PrivClient::on_progress(const std::vector<std::string>& f) {
    if (f.size() != 3 + kResultFields) return fail_all("malformed reply from the privileged parent");
    auto it = pending_.find(std::strtoul(f[1].c_str(), nullptr, 10));
    if (it == pending_.end() || !it->second.done) return;
    char* end = nullptr;
    unsigned long index = std::strtoul(f[2].c_str(), &end, 10);
    if (f[2].empty() || *end != '\0' || index >= it->second.items) return;
    Result r;
    std::string why;
    if (!parse_result(&f[3], &r, &why) || !it->second.progress) return;  // the whole reply still comes
    it->second.progress(index, r);
}

void PrivClient::fail_all(const std::string& why) {
    broken_ = true;
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& [id, p] : pending) {
        if (p.auth_done) p.auth_done(auth::Check::TempFail, why);
        else if (p.reload_done) p.reload_done(false, {why});
        else p.done(std::vector<Result>(p.items, Result{Result::Status::TempFail, why}));
    }
}

void PrivClient::close() { close_channel(); }

// ---- server (privileged side) ----

PrivServer::PrivServer(uv_loop_t* loop, int fd, const config::Config& config, std::string spool_dir,
                       SpawnLauncher& launcher, std::function<void()> lost)
    : loop_(loop), config_(config), spool_dir_(std::move(spool_dir)), launcher_(launcher), lost_(std::move(lost)) {
    open(loop, fd);
}

// The unprivileged side is gone (or talks nonsense): nothing left to serve.
void PrivServer::on_lost(bool garbled) {
    if (garbled) log::error("privileged parent: garbled request from the unprivileged process; closing the channel");
    close_channel();
    launcher_.retire();  // its agents serve nobody now
    if (auto fn = std::move(lost_)) fn();
}

void PrivServer::on_frame(const std::vector<std::string>& f) {
    if (f.size() == 4 && f[kKind] == "auth") return check_password(f[1], f[2], f[3]);
    if (f.size() == 2 && f[kKind] == "reload") {
        auto answer = [this, id = f[1]](bool ok, const std::vector<std::string>& errors) {
            std::vector<std::string> fields = {id, ok ? "ok" : "error"};
            fields.insert(fields.end(), errors.begin(), errors.end());
            send(fields);
        };
        if (!reload_) return answer(false, {"this process cannot reload"});
        return reload_(answer);
    }
    if (!f.empty() && f[kKind] == "paused") {
        if (paused_) paused_(std::vector<std::string>(f.begin() + 1, f.end()));
        return;
    }
    auto req = read_deliver_request(f, config_, spool_dir_);
    if (!req) return;  // cannot even answer it
    if (!req->refused.empty()) {
        log::warn(log::Line("privileged parent: delivery request refused")
                      .kv("action", req->job.action)
                      .kv("why", req->refused));
        return reply(req->id,
                     std::vector<Result>(req->items, Result{Result::Status::PermFail, "refused: " + req->refused}));
    }
    req->job.progress = [this, id = req->id](std::size_t index, const Result& r) {
        std::vector<std::string> fields = {"progress", id, std::to_string(index)};
        append_result_fields(r, &fields);
        send(fields);
    };
    launcher_.launch(req->job, [this, id = req->id](std::vector<Result> r) { reply(id, r); });
}

// A draining child starts no more deliveries: its agents end once idle.
void PrivServer::drain() {
    send({"drain"});
    launcher_.retire();
}

void PrivServer::queue_free() { send({"queue-free"}); }

void PrivServer::reply(const std::string& id, const std::vector<Result>& results) {
    std::vector<std::string> fields = {id};
    for (const auto& r : results) append_result_fields(r, &fields);
    send(fields);
}

// crypt(3) takes its time on purpose: off the parent's loop, on a worker.
void PrivServer::check_password(const std::string& id, const std::string& user, const std::string& password) {
    struct Work {
        uv_work_t req{};
        PrivServer* server;
        std::string id, user, password, error;
        auth::Check result = auth::Check::TempFail;
    };
    auto work = std::make_unique<Work>();
    work->req.data = work.get();
    work->server = this;
    work->id = id;
    work->user = user;
    work->password = password;
    int rc = uv_queue_work(
        loop_, &work->req,
        [](uv_work_t* req) {
            auto* w = static_cast<Work*>(req->data);
            w->result = auth::check_system_account(w->user, w->password, &w->error);
        },
        [](uv_work_t* req, int) {
            std::unique_ptr<Work> w(static_cast<Work*>(req->data));
            const char* word = w->result == auth::Check::Ok ? "ok" : w->result == auth::Check::Bad ? "perm" : "temp";
            w->server->send({w->id, word, w->error});
        });
    if (rc == 0) (void)work.release();  // reclaimed in the after-work callback
    else send({id, "temp", uv_strerror(rc)});
}

}  // namespace postern::delivery
