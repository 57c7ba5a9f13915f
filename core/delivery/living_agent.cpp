// One agent, batch after batch; see living_agent.hpp.
#include "delivery/living_agent.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <string_view>
#include <vector>

#include "delivery/agent_spawn.hpp"
#include "util/log.hpp"

namespace postern::delivery {
namespace {

// How long an agent may take to exit once its channel is closed, and how
// long the stderr of one that has exited may stay open (a process it left
// behind may hold it): then it is killed, or we stop reading.
constexpr uint64_t kGraceMs = 5000;
// Of its stderr, what is kept: its last line is all that is used.
constexpr std::size_t kMaxErrTail = 4096;
// The largest packet read: a result frame is a few KiB (postern-local's
// fields come from fixed buffers); a bigger packet is no result.
constexpr std::size_t kMaxResultPacket = 64 * 1024;

uv_stdio_container_t inherit(int fd) {
    uv_stdio_container_t c{};
    c.flags = UV_INHERIT_FD;
    c.data.fd = fd;
    return c;
}

// The trampolines: libuv's callbacks reach the agent through the handle's
// data, which UvOwned clears when it closes a handle.
template <class H>
LivingAgent* agent_of(H* handle) {
    return static_cast<LivingAgent*>(handle->data);
}

}  // namespace

LivingAgent::LivingAgent(uv_loop_t* loop, const SpawnOptions& options, std::string identity, Hooks hooks)
    : loop_(loop), options_(options), identity_(std::move(identity)), hooks_(std::move(hooks)) {}

bool LivingAgent::open_channel(util::Fd* agent_end, std::string* why) {
    int sp[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0) {
        *why = std::string("cannot make a channel for the delivery agent: ") + std::strerror(errno);
        return false;
    }
    channel_.reset(sp[0]);
    agent_end->reset(sp[1]);
    return true;
}

void LivingAgent::start(Batch batch, BatchDone done) {
    std::string why;
    util::Fd agent_end, secret;
    auto fail_start = [&] {
        state_ = State::Ending;
        std::size_t n = batch.items.size();
        auto ended = hooks_.ended;
        ended(*this);  // destroys this agent
        done(std::vector<Result>(n, Result{Result::Status::TempFail, why}));
    };
    if (!open_channel(&agent_end, &why) || !secret_pipe(batch, &secret, &why)) return fail_start();
    err_.open(this, [&](uv_pipe_t* p) { return uv_pipe_init(loop_, p, 0); });
    timer_.open(this, [&](uv_timer_t* t) { return uv_timer_init(loop_, t); });
    auto on_exit = [](uv_process_t* p, int64_t status, int sig) {
        if (auto* self = agent_of(p)) {
            self->on_exit(status, sig);
            self->settle();
        }
    };
    int rc = process_.open(
        this,
        [&](uv_process_t* p) {
            return spawn_agent(loop_, options_, batch, secret, inherit(agent_end.get()), {p, err_.get(), on_exit},
                               &why);
        },
        true);
    if (rc != 0) return fail_start();
    pid_ = process_.get()->pid;
    log::debug(log::Line("delivery agent started")
                   .kv("pid", pid_)
                   .kv("method", batch.method)
                   .kv("user", batch.user)
                   .kv("deliveries", static_cast<long long>(batch.items.size())));
    batches_ = 1;
    last_route_ = route_of(batch);
    begin_batch(batch, std::move(done));
    read_err();
    if (poll_.open(this, [&](uv_poll_t* p) { return uv_poll_init(loop_, p, channel_.get()); }) != 0) {
        end_.cause = "cannot watch the delivery agent's channel";
        return fail();  // unheard, it must not deliver: it ends, its batch fails
    }
    uv_poll_start(poll_.get(), UV_READABLE | UV_DISCONNECT, [](uv_poll_t* p, int, int) {
        if (auto* self = agent_of(p)) {
            self->on_readable();
            self->settle();
        }
    });
}

// Its stderr, all its life: a full pipe would stop it.
void LivingAgent::read_err() {
    err_open_ = true;
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(err_.get()),
        [](uv_handle_t* h, size_t, uv_buf_t* b) {
            auto* self = static_cast<LivingAgent*>(h->data);
            *b = self ? uv_buf_init(self->err_buf_, sizeof self->err_buf_) : uv_buf_init(nullptr, 0);
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
            auto* self = static_cast<LivingAgent*>(s->data);
            if (!self) return;
            if (n > 0) self->keep_err(std::string_view(b->base, static_cast<size_t>(n)));
            else if (n < 0) self->stop_reading_err();
            self->settle();
        });
}

void LivingAgent::keep_err(std::string_view text) {
    std::string& err = end_.err;
    err.append(text);
    if (err.size() > 2 * kMaxErrTail) err.erase(0, err.size() - kMaxErrTail);
}

bool LivingAgent::give(Batch& batch, BatchDone& done) {
    if (state_ != State::Idle || batch.items.size() > channel::kMaxItems) return false;
    std::vector<channel::Item> items;
    for (const auto& item : batch.items) items.push_back(item.fields);
    std::string packet = channel::encode_batch(items);
    if (packet.size() > channel::kMaxPacket) return false;

    std::vector<char> control(CMSG_SPACE(sizeof(int) * batch.items.size()));
    iovec iov{packet.data(), packet.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * batch.items.size());
    for (std::size_t k = 0; k < batch.items.size(); ++k) {
        int fd = batch.items[k].message.get();
        std::memcpy(CMSG_DATA(c) + k * sizeof(int), &fd, sizeof fd);
    }
    // An idle agent has read every packet it was sent: its socket has room,
    // and a send that would wait is an agent that does not read. Either
    // way it is done for; the batch goes to another.
    ssize_t sent;
    do {
        sent = ::sendmsg(channel_.get(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent != static_cast<ssize_t>(packet.size())) {
        log::debug(log::Line("delivery agent channel failed")
                       .kv("pid", pid_)
                       .kv("error", sent < 0 ? std::strerror(errno) : "short send"));
        end();
        return false;
    }
    ++batches_;
    last_route_ = route_of(batch);
    if (log::verbose())  // once per batch: not even the line is made without -v
        log::debug(log::Line("delivery agent batch")
                       .kv("pid", pid_)
                       .kv("batch", static_cast<long long>(batches_))
                       .kv("deliveries", static_cast<long long>(batch.items.size())));
    begin_batch(batch, std::move(done));
    return true;
}

void LivingAgent::begin_batch(const Batch& batch, BatchDone done) {
    state_ = State::Busy;
    results_.emplace(batch.items.size());
    done_ = std::move(done);
    progress_ = batch.progress;
    end_.err.clear();  // its last words are about this batch
    start_timer(static_cast<uint64_t>(batch.time_limit.count()));
}

// The timer says what is due in each state: the batch's time limit, the
// idle time, the grace after the channel closed or after the agent exited.
void LivingAgent::start_timer(uint64_t ms) {
    uv_timer_start(
        timer_.get(),
        [](uv_timer_t* t) {
            if (auto* self = agent_of(t)) {
                self->on_timer();
                self->settle();
            }
        },
        ms, 0);
}

void LivingAgent::on_readable() {
    while (channel_ && read_packet()) {
    }
}

// One packet off the channel; false when there is none now (or no channel).
bool LivingAgent::read_packet() {
    char buf[kMaxResultPacket];
    iovec iov{buf, sizeof buf};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ssize_t n = ::recvmsg(channel_.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) return true;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    if (n < 0) end_.cause = std::string("cannot read the delivery agent's results: ") + std::strerror(errno);
    // It spoke out of turn, sent a packet no result fills, or passed descriptors.
    bool garbled = n > 0 && (state_ != State::Busy || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0);
    if (n > 0 && !garbled) {
        inbuf_.append(buf, static_cast<std::size_t>(n));
        std::vector<std::size_t> taken;
        garbled = !results_->take(inbuf_, &taken) || (results_->complete() && !inbuf_.empty());
        // Each result handed on as it comes: one the batch's end would
        // carry is lost with the daemon if it crashes before then.
        if (progress_)
            for (std::size_t k : taken) progress_(k, results_->result(k));
    }
    if (garbled) end_.garbled = true;
    if (n <= 0 || garbled) {  // gone (n == 0: it closed its end), or not to be heard any more
        fail();
        return false;
    }
    if (results_->complete()) batch_done();
    return true;
}

// Every delivery of the batch has its result: the agent waits for the next.
void LivingAgent::batch_done() {
    std::vector<Result> results = results_->finish("no result");
    results_.reset();
    progress_ = nullptr;
    BatchDone done = std::move(done_);
    state_ = State::Idle;
    idle_since_ = uv_now(loop_);
    start_timer(static_cast<uint64_t>(kAgentIdleTime.count()));
    hooks_.idle(*this);  // may end it (too many idle), or give it a batch through `done` below
    done(std::move(results));
}

// It cannot be heard any more: it must not deliver on unheard.
void LivingAgent::fail() {
    close_channel();
    kill();
    if (state_ != State::Ending) {
        state_ = State::Ending;
        start_timer(kGraceMs);
    }
}

void LivingAgent::end() {
    if (state_ == State::Ending) return;
    close_channel();
    state_ = State::Ending;
    start_timer(kGraceMs);
}

// By its PID, which is its own until it is reaped (on_exit).
void LivingAgent::kill() {
    if (!exited_ && process_) uv_process_kill(process_.get(), SIGKILL);
}

void LivingAgent::close_channel() {
    poll_.close();
    channel_.reset();
}

void LivingAgent::on_exit(int64_t status, int term_signal) {
    exited_ = true;
    end_.exit_status = status;
    end_.term_signal = term_signal;
    // What it reported before it went still counts.
    on_readable();
    close_channel();
    state_ = State::Ending;
    start_timer(kGraceMs);
}

void LivingAgent::on_timer() {
    switch (state_) {
    case State::Busy:
        end_.timed_out = true;
        fail();
        break;
    case State::Idle: end(); break;
    case State::Ending:
        if (exited_) stop_reading_err();  // a process it left behind holds its stderr
        else kill();                      // it did not exit when its channel closed
        break;
    }
}

void LivingAgent::stop_reading_err() {
    if (err_open_) uv_read_stop(reinterpret_cast<uv_stream_t*>(err_.get()));
    err_open_ = false;
}

// Called last in every callback: an agent that has exited and been heard
// out ends here (and is destroyed).
void LivingAgent::settle() {
    if (state_ == State::Ending && exited_ && !err_open_) finish();
}

void LivingAgent::finish() {
    std::optional<std::vector<Result>> results;
    if (results_) results = results_->finish(failure_reason(end_));
    BatchDone done = std::move(done_);
    log::debug(log::Line("delivery agent ended")
                   .kv("pid", pid_)
                   .kv("batches", static_cast<long long>(batches_))
                   .kv("exit", end_.exit_status)
                   .kv("signal", end_.term_signal));
    auto ended = hooks_.ended;
    ended(*this);  // destroys this agent: only locals from here on
    if (results && done) done(std::move(*results));
}

}  // namespace postern::delivery
