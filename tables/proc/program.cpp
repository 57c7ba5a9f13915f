// tables/proc/program.cpp — see program.hpp.
#include "program.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include "imsg_codec.hpp"
#include "line_codec.hpp"
#include "postern/table.h"

namespace postern::proctable {
namespace {

using namespace std::chrono_literals;

constexpr std::chrono::seconds kFirstBackoff{1};
constexpr std::chrono::seconds kMaxBackoff{60};
// OpenSMTPD lowercases a key into 1024 bytes and fails a longer one.
constexpr std::size_t kMaxKey = 1023;
// What we say we are in the line protocol's greeting.
constexpr std::string_view kSmtpdVersion = "7.8.0-postern";

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::clamp<long long>(left.count(), 0, 1000000));
}

}  // namespace

Program::Program(Config config)
    : config_(std::move(config)), services_(POSTERN_SERVICE_ALL), next_id_(std::random_device{}()) {}

Program::~Program() { shutdown(); }

void Program::shutdown() {
    std::lock_guard lock(mutex_);
    if (!child_) return;
    // An imsg program leaves its loop on CLOSE; a line program on EOF.
    if (config_.protocol == Protocol::Imsg) {
        std::string close = imsg::encode(imsg::Close, {});
        (void)::send(child_->fd(), close.data(), close.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    child_->stop(1000ms);
    child_.reset();
}

Outcome Program::request(Op op, uint32_t service, std::string_view key) {
    if (key.find_first_of("\r\n") != std::string_view::npos)
        return {POSTERN_TEMPFAIL, "table-proc: refused a key holding CR or LF"};
    if (key.size() > kMaxKey) return {POSTERN_TEMPFAIL, "table-proc: key longer than 1023 bytes"};
    if (key.find('\0') != std::string_view::npos) return {POSTERN_TEMPFAIL, "table-proc: key holds a NUL byte"};
    std::lock_guard lock(mutex_);
    return locked_request(op, service, key);
}

Outcome Program::update() {
    std::lock_guard lock(mutex_);
    if (!child_) return {POSTERN_OK, {}};
    return locked_request(Op::Update, 0, {});
}

Outcome Program::locked_request(Op op, uint32_t service, std::string_view key) {
    if (op != Op::Update && !(services_.load() & service))
        return {POSTERN_TEMPFAIL, "table program " + config_.program + " did not register the " +
                                      std::string(service_name(service)) + " service"};
    if (auto why = ensure_running()) return {POSTERN_TEMPFAIL, *why};
    // A service list learnt just now may not hold this one.
    if (op != Op::Update && !(services_.load() & service))
        return {POSTERN_TEMPFAIL, "table program " + config_.program + " did not register the " +
                                      std::string(service_name(service)) + " service"};

    auto result = exchange(op, service, key);
    if (auto* why = std::get_if<std::string>(&result)) return fail(*why);
    backoff_ = 0s;  // it answers: the next failure starts the backoff afresh
    const Reply& reply = std::get<Reply>(result);
    switch (reply.status) {
    case Reply::Status::Found: return {POSTERN_OK, op == Op::Check ? std::string(key) : reply.text};
    case Reply::Status::NotFound: return {POSTERN_NOTFOUND, {}};
    case Reply::Status::Error: break;
    }
    std::string what = op == Op::Update ? "update" : std::string(service_name(service)) + " lookup";
    return {POSTERN_TEMPFAIL,
            "table program " + config_.name + ": " + what + " failed" + (reply.text.empty() ? "" : ": " + reply.text)};
}

std::optional<std::string> Program::ensure_running() {
    if (child_) {
        auto why = idle_check();
        if (!why) return std::nullopt;
        if (*why != "eof") {
            fail(*why);
            return restarting();
        }
        child_->stop(200ms);  // it exited between requests: start a fresh one now
        child_.reset();
    }
    if (Clock::now() < retry_at_) return restarting();
    return start();
}

// Between requests the program must be silent: bytes now are garbage, EOF
// means it exited ("eof").
std::optional<std::string> Program::idle_check() {
    if (!in_.empty()) return "table program " + config_.name + " wrote more than one reply";
    pollfd p{child_->fd(), POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return std::nullopt;
    char byte;
    ssize_t n = ::recv(child_->fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return std::string("eof");
    if (n > 0) return "table program " + config_.name + " wrote between requests";
    return std::nullopt;
}

std::optional<std::string> Program::start() {
    in_.clear();
    auto spawned = Child::spawn(config_);
    if (auto* why = std::get_if<std::string>(&spawned)) return fail("cannot start table program " + *why).text;
    child_.emplace(std::move(std::get<Child>(spawned)));
    auto deadline = Clock::now() + std::chrono::seconds(config_.timeout_seconds);
    if (auto why = handshake(deadline)) return fail(*why).text;
    return std::nullopt;
}

std::optional<std::string> Program::handshake(Clock::time_point deadline) {
    if (config_.protocol == Protocol::Imsg) {
        if (auto why = send_all(imsg::encode_open(config_.name), deadline)) return why;
        Reply reply;
        return read_frame(deadline, &reply, Op::Open);
    }
    if (auto why = send_all(line::encode_handshake(kSmtpdVersion, config_.name), deadline)) return why;
    uint32_t services = 0;
    bool any = false;
    for (;;) {
        std::string text;
        if (auto why = read_line(deadline, &text)) return why;
        auto reg = line::decode_register(text);
        if (auto* g = std::get_if<Garbage>(&reg)) return "table program " + config_.name + " handshake: " + g->why;
        const auto& r = std::get<line::Registered>(reg);
        if (r.ready) break;
        services |= r.service;
        any = true;
    }
    if (!any) return "table program " + config_.name + " registered no service";
    services_.store(services & POSTERN_SERVICE_ALL);
    return std::nullopt;
}

std::variant<Reply, std::string> Program::exchange(Op op, uint32_t service, std::string_view key) {
    auto deadline = Clock::now() + std::chrono::seconds(config_.timeout_seconds);
    if (config_.protocol == Protocol::Imsg) {
        std::string message;
        if (op == Op::Update) message = imsg::encode(imsg::Update, {});
        else if (op == Op::Fetch) message = imsg::encode_fetch(service);
        else if (auto q = imsg::encode_query(op, service, key)) message = std::move(*q);
        else return Reply{Reply::Status::Error, "key too long for an imsg message"};
        if (auto why = send_all(message, deadline)) return *why;
        Reply reply;
        if (auto why = read_frame(deadline, &reply, op)) return *why;
        return reply;
    }
    std::string id = next_id();
    timeval now{};
    ::gettimeofday(&now, nullptr);
    if (auto why = send_all(line::encode_request(op, service, key, config_.name, id, now.tv_sec, now.tv_usec),
                            deadline))
        return *why;
    std::string text;
    if (auto why = read_line(deadline, &text)) return *why;
    Decoded decoded = line::decode_reply(text, op, id);
    if (auto* g = std::get_if<Garbage>(&decoded))
        return "table program " + config_.name + " answered garbage: " + g->why;
    return std::get<Reply>(decoded);
}

std::optional<std::string> Program::send_all(std::string_view bytes, Clock::time_point deadline) {
    while (!bytes.empty()) {
        ssize_t n = ::send(child_->fd(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            bytes.remove_prefix(static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN)
            return "table program " + config_.name + " closed its input (" + std::strerror(errno) + ")";
        pollfd p{child_->fd(), POLLOUT, 0};
        if (::poll(&p, 1, remaining_ms(deadline)) == 0)
            return "table program " + config_.name + " took no request within " +
                   std::to_string(config_.timeout_seconds) + " s";
    }
    return std::nullopt;
}

std::optional<std::string> Program::read_more(Clock::time_point deadline) {
    for (;;) {
        pollfd p{child_->fd(), POLLIN, 0};
        int ready = ::poll(&p, 1, remaining_ms(deadline));
        if (ready < 0 && errno == EINTR) continue;
        if (ready == 0)
            return "table program " + config_.name + ": no reply within " + std::to_string(config_.timeout_seconds) +
                   " s";
        char buf[16384];
        ssize_t n = ::recv(child_->fd(), buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            in_.append(buf, static_cast<std::size_t>(n));
            return std::nullopt;
        }
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        return "table program " + config_.name + " closed its output" +
               (n < 0 ? std::string(" (") + std::strerror(errno) + ")" : std::string());
    }
}

std::optional<std::string> Program::read_line(Clock::time_point deadline, std::string* line) {
    for (;;) {
        line::Cut cut = line::cut_line(in_);
        if (cut.state == line::Cut::State::Line) {
            line->assign(in_, 0, cut.length);
            in_.erase(0, cut.consumed);
            return std::nullopt;
        }
        if (cut.state == line::Cut::State::TooLong)
            return "table program " + config_.name + " answered garbage: a line longer than " +
                   std::to_string(line::kMaxLine) + " bytes";
        if (auto why = read_more(deadline)) return why;
    }
}

std::optional<std::string> Program::read_frame(Clock::time_point deadline, Reply* reply, Op op) {
    for (;;) {
        auto frame = imsg::decode_frame(in_);
        if (auto* g = std::get_if<Garbage>(&frame))
            return "table program " + config_.name + " answered garbage: " + g->why;
        if (auto* f = std::get_if<imsg::Frame>(&frame)) {
            Decoded decoded = imsg::decode_reply(op, *f);
            std::size_t size = f->size;
            if (auto* g = std::get_if<Garbage>(&decoded))
                return "table program " + config_.name + " answered garbage: " + g->why;
            *reply = std::get<Reply>(decoded);
            in_.erase(0, size);
            return std::nullopt;
        }
        if (auto why = read_more(deadline)) return why;
    }
}

Outcome Program::fail(const std::string& why) {
    std::string how;
    if (child_) {
        // A program that closed its output is most likely exiting: give it a
        // moment so that its own exit status is what we report.
        how = child_->stop(why.find("closed") != std::string::npos ? 200ms : 0ms);
        child_.reset();
    }
    in_.clear();
    backoff_ = backoff_ == 0s ? kFirstBackoff : std::min(backoff_ * 2, kMaxBackoff);
    retry_at_ = Clock::now() + backoff_;
    last_failure_ = why + (how.empty() ? "" : "; " + how);
    return {POSTERN_TEMPFAIL, last_failure_ + "; restart in " + std::to_string(backoff_.count()) + " s"};
}

std::string Program::restarting() const {
    auto left = std::chrono::duration_cast<std::chrono::seconds>(retry_at_ - Clock::now()).count() + 1;
    return "table program " + config_.name + " restarting in " + std::to_string(left) + " s (" + last_failure_ + ")";
}

std::string Program::next_id() {
    char id[9];
    std::snprintf(id, sizeof id, "%08x", next_id_++);
    return id;
}

}  // namespace postern::proctable
