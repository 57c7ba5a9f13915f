// filterhost/processes.cpp — see processes.hpp.
#include "filterhost/processes.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstring>

#include "util/log.hpp"

namespace postern::filterhost {
namespace {

// Longest stderr line logged as one; longer ones are cut into pieces.
constexpr std::size_t kMaxErrLine = 1024;

std::string printable(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
        if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
        else if (c != '\r') out += '?';
    }
    return out;
}

std::string exit_text(int status) {
    if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
    return "ended";
}

// The stderr pipe of one process: libuv owns it until its close callback.
struct ErrPipe {
    uv_pipe_t pipe{};
    std::string name;
    std::string line;
};

void log_stderr(const ErrPipe& p, std::string_view text) {
    log::warn(log::Line("filter stderr").kv("filter", p.name).kv("line", printable(text)));
}

void on_stderr(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
    auto* p = static_cast<ErrPipe*>(s->data);
    if (n < 0) {
        if (!p->line.empty()) log_stderr(*p, p->line);
        uv_close(reinterpret_cast<uv_handle_t*>(s), [](uv_handle_t* h) {
            delete static_cast<ErrPipe*>(h->data);  // NOLINT(cppcoreguidelines-owning-memory)
        });
        return;
    }
    p->line.append(buf->base, static_cast<std::size_t>(n));
    std::size_t nl;
    while ((nl = p->line.find('\n')) != std::string::npos) {
        log_stderr(*p, std::string_view(p->line).substr(0, nl));
        p->line.erase(0, nl + 1);
    }
    while (p->line.size() > kMaxErrLine) {
        log_stderr(*p, std::string_view(p->line).substr(0, kMaxErrLine));
        p->line.erase(0, kMaxErrLine);
    }
}

}  // namespace

Processes::Processes(uv_loop_t* loop, std::vector<ProcSpec> specs) : loop_(loop) {
    for (auto& s : specs) procs_.push_back({std::move(s), -1});
    uv_signal_init(loop_, &sigchld_);
    sigchld_.data = this;
    uv_signal_start(
        &sigchld_, [](uv_signal_t* h, int) { static_cast<Processes*>(h->data)->reap(); }, SIGCHLD);
    uv_unref(reinterpret_cast<uv_handle_t*>(&sigchld_));
    uv_timer_init(loop_, &kill_timer_);
    kill_timer_.data = this;
}

Processes::~Processes() { stop_all(); }

util::Fd Processes::start(std::size_t index, pid_t* pid, std::string* error) {
    Proc& p = procs_.at(index);
    if (p.pid > 0) stop(index, p.pid);
    auto spawned = spawn_filter(p.spec, error);
    if (!spawned) return {};
    p.pid = spawned->pid;
    *pid = p.pid;
    log::info(log::Line("filter started").kv("filter", p.spec.name).kv("pid", p.pid));
    watch_stderr(p.spec.name, std::move(spawned->err));
    return std::move(spawned->io);
}

// Each line the filter writes to stderr is logged under its name.
void Processes::watch_stderr(const std::string& name, util::Fd err) {
    auto* p = new ErrPipe{};  // NOLINT(cppcoreguidelines-owning-memory): freed in its close callback
    p->name = name;
    uv_pipe_init(loop_, &p->pipe, 0);
    p->pipe.data = p;
    if (uv_pipe_open(&p->pipe, err.release()) != 0) {
        on_stderr(reinterpret_cast<uv_stream_t*>(&p->pipe), UV_EBADF, nullptr);
        return;
    }
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&p->pipe),
        [](uv_handle_t*, size_t, uv_buf_t* b) {
            static char buf[4096];
            *b = uv_buf_init(buf, sizeof buf);
        },
        on_stderr);
}

void Processes::stop(std::size_t index, pid_t pid) {
    if (index >= procs_.size() || pid <= 0 || procs_[index].pid != pid) return;
    procs_[index].pid = -1;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {  // it has ended already: say how
        log::warn(log::Line("filter exited")
                      .kv("filter", procs_[index].spec.name)
                      .kv("pid", pid)
                      .kv("status", exit_text(status)));
        return;
    }
    kill(pid, SIGTERM);
    ending_.push_back({pid, uv_now(loop_) + kKillGraceMs, procs_[index].spec.name});
    if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&kill_timer_)))
        uv_timer_start(
            &kill_timer_, [](uv_timer_t* t) { static_cast<Processes*>(t->data)->kill_late(); }, 1000, 1000);
}

void Processes::kill_late() {
    reap();
    for (const auto& e : ending_)
        if (uv_now(loop_) >= e.deadline) kill(e.pid, SIGKILL);
    if (ending_.empty()) uv_timer_stop(&kill_timer_);
}

// Only our own pids are waited for: waitpid(-1) would take libuv's
// children (the delivery agents) from under it.
void Processes::reap() {
    int status = 0;
    for (auto& p : procs_) {
        if (p.pid <= 0 || waitpid(p.pid, &status, WNOHANG) != p.pid) continue;
        log::warn(
            log::Line("filter exited").kv("filter", p.spec.name).kv("pid", p.pid).kv("status", exit_text(status)));
        p.pid = -1;
    }
    ending_.erase(
        std::remove_if(
            ending_.begin(), ending_.end(),
            [](const Ending& e) {
                int st = 0;
                const pid_t r = waitpid(e.pid, &st, WNOHANG);
                if (r == e.pid)
                    log::warn(
                        log::Line("filter exited").kv("filter", e.name).kv("pid", e.pid).kv("status", exit_text(st)));
                return r != 0;
            }),
        ending_.end());
}

void Processes::stop_all() {
    if (closed_) return;
    closed_ = true;
    for (auto& p : procs_)
        if (p.pid > 0) kill(p.pid, SIGTERM);
    uv_close(reinterpret_cast<uv_handle_t*>(&sigchld_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&kill_timer_), nullptr);
}

}  // namespace postern::filterhost
