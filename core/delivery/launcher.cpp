// SpawnLauncher and path expansion; see launcher.hpp.
#include "delivery/launcher.hpp"

#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "delivery/format.hpp"
#include "delivery/kind.hpp"
#include "util/fd.hpp"
#include "util/frame.hpp"

namespace postern::delivery {
namespace {

constexpr int kAgentTempFail = 75;        // EX_TEMPFAIL, as sendmail's MDAs
constexpr size_t kMaxSecret = 60 * 1024;  // under a pipe's 64 KiB buffer: the write never blocks (a pki chain fits)

struct Account {
    uid_t uid;
    gid_t gid;
    std::string home;
};

bool parse_account(std::string_view text, Account* out) {
    auto c1 = text.find(':');
    auto c2 = c1 == std::string_view::npos ? c1 : text.find(':', c1 + 1);
    if (c2 == std::string_view::npos) return false;
    auto number = [](std::string_view t, unsigned* v) {
        if (t.empty() || t.size() > 10 || t.find_first_not_of("0123456789") != std::string_view::npos) return false;
        unsigned long n = std::stoul(std::string(t));
        if (n > 0x7fffffffUL) return false;
        *v = static_cast<unsigned>(n);
        return true;
    };
    unsigned uid = 0, gid = 0;
    std::string_view home = text.substr(c2 + 1);
    if (!number(text.substr(0, c1), &uid) || !number(text.substr(c1 + 1, c2 - c1 - 1), &gid) || home.empty() ||
        home[0] != '/')
        return false;
    *out = {uid, gid, std::string(home)};
    return true;
}

bool find_account(const std::string& user, Account* out) {
    if (user.empty()) return false;
    struct passwd pw, *res = nullptr;
    std::vector<char> buf(16384);
    if (getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &res) != 0 || !res) return false;
    *out = {pw.pw_uid, pw.pw_gid, pw.pw_dir ? pw.pw_dir : "/"};
    return true;
}

// maildir and mbox (alias `/file` lines) take path templates, filled here;
// mda (`mda` actions and alias `|command` lines) takes a command template,
// filled by the plugin as shell parameters (command_template).
FormatResult expand_item_path(const Job& job, const Item& item, const std::string& home, char delim, FormatUse use) {
    FormatValues v;
    v.sender = item.sender;
    v.rcpt = item.rcpt;
    v.dest = item.dest;
    v.user = job.user;
    v.home = home;
    v.subaddr_delim = delim;
    return expand_format(item.path, v, use);
}

// A wrong template is the config's mistake: the mail waits for the fix. A
// value the template cannot take (a slice past its end, a path too long)
// will never do better: that delivery fails for good and bounces.
Result format_failure(const std::string& method, const std::string& tmpl, const FormatError& e) {
    bool value = e.kind == FormatError::Kind::Value;
    std::string what = kind_of(method) == Kind::Command ? method + " command" : method + " path";
    return Result{value ? Result::Status::PermFail : Result::Status::TempFail,
                  "cannot expand the " + what + " \"" + tmpl + "\" at byte " + std::to_string(e.offset) + ": " +
                      e.text};
}

// An mda item's command as the agent gets it: still a template (the plugin
// fills it as the recipient, each value a shell parameter: plugins/mda),
// inside the action's wrapper if it has one.
FormatResult command_template(const Job& job, const Item& item) {
    if (job.wrapper.empty()) return {item.path, {}};
    return wrap_command(job.wrapper, item.path);
}

// The agent's options: the job's, and for a command the sub-address
// delimiter its %{...:strip} needs.
std::string agent_options(const Job& job, Kind kind, char delim) {
    if (kind != Kind::Command || delim == '+') return job.options;
    return job.options + (job.options.empty() ? "" : " ") + "subaddr-delim=" + std::string(1, delim);
}

}  // namespace

std::string default_agent_path() {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        std::string dir(self, static_cast<size_t>(n));
        dir.resize(dir.rfind('/'));
        std::string beside = dir + "/postern-local";
        if (access(beside.c_str(), X_OK) == 0) return beside;
    }
    return std::string(POSTERN_LIBEXEC_DIR) + "/postern-local";
}

namespace {

// How long the pipes of an agent that has exited may stay open.
constexpr uint64_t kPipeGraceMs = 5000;

// The agent's last words become the reason of every delivery it did not
// report: one short line, so that the reply to the other process fits its
// frame whatever the agent wrote.
std::string one_line(std::string text) {
    if (text.size() > 512) text.resize(512);
    for (char& c : text)
        if (c == '\r' || c == '\0' || c == '\n') c = ' ';
    return text;
}

// The message an agent reads. A root parent opens it in a spool that
// belongs to the unprivileged user: a link planted there (to /etc/shadow,
// say) must not be followed, nor a file of someone else's be read, so the
// path must stay beneath the spool without symbolic links, and the file must
// be a regular one with one name, owned by the spool's owner.
util::Fd open_message(const std::string& spool, const std::string& path, std::string* why) {
    auto fail = [&](const std::string& what) {
        *why = "cannot open " + path + ": " + what;
        return util::Fd();
    };
    if (spool.empty()) {  // one process: it opens only what its own user may
        util::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        return fd ? std::move(fd) : fail(strerror(errno));
    }
    if (path.compare(0, spool.size() + 1, spool + "/") != 0) return fail("not in the spool " + spool);
    util::Fd dir(::open(spool.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    struct stat dir_st {};
    if (!dir || ::fstat(dir.get(), &dir_st) != 0) return fail(strerror(errno));
    open_how how{};
    how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    std::string rel = path.substr(spool.size() + 1);
    util::Fd fd(static_cast<int>(::syscall(SYS_openat2, dir.get(), rel.c_str(), &how, sizeof how)));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0) return fail(strerror(errno));
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != dir_st.st_uid)
        return fail("not a spooled message (a regular file with one name, owned by the spool's owner)");
    return fd;
}

// One running agent; owns its libuv handles and frees itself when all are closed.
struct AgentRun {
    uv_process_t process{};
    uv_pipe_t out_pipe{}, err_pipe{};  // the agent's result pipe (--result-fd, not its stdout) and its stderr
    uv_timer_t timer{};
    int open_handles = 0;
    int open_pipes = 2;
    bool exited = false, timed_out = false, garbled = false, finished = false;
    int64_t exit_status = 0;
    int term_signal = 0;
    std::string out, err;  // what came on each pipe
    char buf[4096];
    std::vector<std::optional<Result>> results;  // preset for items that never reached the agent
    Done done;

    void close_one(uv_handle_t* h) {
        ++open_handles;
        uv_close(h, [](uv_handle_t* handle) {
            auto* self = static_cast<AgentRun*>(handle->data);
            if (--self->open_handles == 0)
                std::unique_ptr<AgentRun> reclaim(self);  // owned by the callbacks since launch
        });
    }

    // Why the deliveries without a result failed.
    std::string agent_failure() {
        while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) err.pop_back();
        if (auto nl = err.rfind('\n'); nl != std::string::npos) err = err.substr(nl + 1);
        if (timed_out) return "delivery agent timed out";
        if (term_signal != 0) return "delivery agent killed by signal " + std::to_string(term_signal);
        if (garbled) return "delivery agent sent garbled results";
        if (!err.empty()) return one_line(err);
        return "delivery agent exited " + std::to_string(exit_status) + " without a result";
    }

    // The agent's frames: a delivery's index, then its result's fields
    // (delivery/result.hpp). The agent runs as the recipient: a field it may
    // not send fails that delivery (temporarily: it may have been made), and
    // bytes that are no such frame, or a second result for one delivery, end
    // the reading. postern-local itself never sends either.
    void parse_results() {
        std::vector<std::string> f;
        bool bad = false;
        while (util::decode_frame(out, &f, &bad)) {
            unsigned long index = 0;
            if (f.size() != 1 + kResultFields || f[0].empty() || f[0].size() > 6 ||
                f[0].find_first_not_of("0123456789") != std::string::npos ||
                (index = std::stoul(f[0])) >= results.size() || results[index]) {
                garbled = true;
                return;
            }
            Result r;
            std::string why;
            if (!parse_result(&f[1], &r, &why))
                r = {Result::Status::TempFail, "delivery agent sent an invalid result (" + why + ")"};
            results[index] = std::move(r);
        }
        garbled = bad;
    }

    void maybe_finish() {
        if (finished || !exited || open_pipes > 0) return;
        finished = true;
        parse_results();
        std::vector<Result> final;
        // A plugin that reported nothing for a delivery (the agent died, or a
        // site error stopped it) leaves that mail queued: temporary failure.
        std::string why;
        for (auto& r : results) {
            if (!r) {
                if (why.empty()) why = agent_failure();
                r = Result{Result::Status::TempFail, why};
            }
            final.push_back(std::move(*r));
        }
        Done d = std::move(done);
        close_one(reinterpret_cast<uv_handle_t*>(&process));
        close_one(reinterpret_cast<uv_handle_t*>(&out_pipe));
        close_one(reinterpret_cast<uv_handle_t*>(&err_pipe));
        close_one(reinterpret_cast<uv_handle_t*>(&timer));
        d(std::move(final));
    }

    void start_reading(uv_pipe_t* pipe) {
        pipe->data = this;
        uv_read_start(
            reinterpret_cast<uv_stream_t*>(pipe),
            [](uv_handle_t* h, size_t, uv_buf_t* b) {
                auto* self = static_cast<AgentRun*>(h->data);
                *b = uv_buf_init(self->buf, sizeof self->buf);
            },
            [](uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
                auto* self = static_cast<AgentRun*>(s->data);
                std::string& sink = s == reinterpret_cast<uv_stream_t*>(&self->out_pipe) ? self->out : self->err;
                if (n > 0) {
                    if (sink.size() < (1u << 20)) sink.append(b->base, static_cast<size_t>(n));
                    return;
                }
                if (n < 0) {
                    uv_read_stop(s);
                    --self->open_pipes;
                    self->maybe_finish();
                }
            });
    }
};

}  // namespace

SpawnLauncher::SpawnLauncher(uv_loop_t* loop, SpawnOptions options) : loop_(loop), options_(std::move(options)) {}

void SpawnLauncher::launch(const Job& job, Done done) {
    auto fail_all = [&](Result::Status status, const std::string& why) {
        done(std::vector<Result>(job.items.size(), Result{status, why}));
    };
    // The account comes from expansion (a userbase may hold accounts the
    // system does not know). Root is only ever taken from the system's own
    // user database, never from a request.
    Account acct;
    if (!job.account.empty()) {
        Account sys;
        if (!parse_account(job.account, &acct))
            return fail_all(Result::Status::PermFail, "malformed account '" + job.account + "' for " + job.user);
        if ((acct.uid == 0 || acct.gid == 0) && !(find_account(job.user, &sys) && sys.uid == acct.uid))
            return fail_all(Result::Status::PermFail, "refusing to deliver as uid/gid 0 for " + job.user);
    } else if (!find_account(job.user, &acct)) {
        return fail_all(Result::Status::PermFail, "unknown user " + job.user);
    }

    const KindInfo kind = info(job.method);
    auto run = std::make_unique<AgentRun>();
    run->results.resize(job.items.size());
    std::vector<util::Fd> messages;
    std::vector<std::string> args = {options_.agent,
                                     "--plugin-dir",
                                     options_.plugin_dir,
                                     "--method",
                                     job.method,
                                     "--user",
                                     job.user,
                                     "--home",
                                     acct.home,
                                     "--options",
                                     agent_options(job, kind.kind, options_.subaddr_delim)};
    for (size_t i = 0; i < job.items.size(); ++i) {
        const Item& item = job.items[i];
        std::string why;
        util::Fd fd = open_message(options_.spool_dir, item.message_path, &why);
        if (!fd) {
            run->results[i] = Result{Result::Status::TempFail, why};
            continue;
        }
        std::string path = item.path;
        if (job.method == method::kMbox && item.path.empty()) {
            path = options_.mbox_dir + "/" + sanitise_value(job.user);
        } else if (kind.kind == Kind::Command) {
            FormatResult r = command_template(job, item);
            if (!r) {
                run->results[i] = format_failure(job.method, job.wrapper.empty() ? item.path : job.wrapper, r.error);
                continue;
            }
            path = std::move(*r.text);
        } else if (!item.path.empty() && kind.path_use) {
            // A template that cannot be filled fails this delivery with the
            // reason; it never becomes a guessed path.
            FormatResult r = expand_item_path(job, item, acct.home, options_.subaddr_delim, *kind.path_use);
            if (!r) {
                run->results[i] = format_failure(job.method, item.path, r.error);
                continue;
            }
            path = std::move(*r.text);
        }
        args.insert(args.end(), {"--delivery", std::to_string(3 + messages.size()), item.sender, item.rcpt, item.dest,
                                 path, item.msgid});
        if (!item.mail_params.empty() || !item.rcpt_params.empty())
            args.insert(args.end(), {"--dsn", item.mail_params, item.rcpt_params});
        // A default mailbox is made by the agent while it is still root (see
        // postern-local.cpp); only those, whose path we built ourselves.
        if (options_.switch_user && job.method == method::kMbox && item.path.empty()) args.push_back("--create-mbox");
        messages.push_back(std::move(fd));
    }
    if (options_.switch_user)
        args.insert(args.end(), {"--as", std::to_string(acct.uid) + ":" + std::to_string(acct.gid)});
    if (messages.empty()) {
        std::vector<Result> final;
        for (auto& r : run->results) final.push_back(std::move(*r));
        return done(std::move(final));
    }
    // Secrets travel in a pipe, whose contents no other user can see (argv
    // is public in /proc); the agent reads it before any delivery.
    util::Fd secret;
    if (!job.secret.empty()) {
        int p[2];
        // Non-blocking: a pipe shrunk by the kernel's per-user limit must fail
        // this job, not block the event loop; F_SETPIPE_SZ asks for room first.
        if (job.secret.size() > kMaxSecret || ::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
            return fail_all(Result::Status::TempFail, "cannot pass credentials to the agent");
        secret = util::Fd(p[0]);
        util::Fd writer(p[1]);
        ::fcntl(writer.get(), F_SETPIPE_SZ, static_cast<int>(kMaxSecret));
        if (!util::write_all(writer.get(), job.secret))
            return fail_all(Result::Status::TempFail, "cannot pass credentials to the agent");
        args.insert(args.end(), {"--secret-fd", std::to_string(3 + messages.size())});
    }
    // Results come on a pipe of their own, after the messages and the secret:
    // the agent's stdout is no channel (a plugin may print anything there).
    const size_t result_fd = 3 + messages.size() + (secret ? 1 : 0);
    args.insert(args.end(), {"--result-fd", std::to_string(result_fd)});
    // Results for the items the agent gets arrive by their index among those.
    std::vector<size_t> agent_index;
    for (size_t i = 0; i < run->results.size(); ++i)
        if (!run->results[i]) agent_index.push_back(i);

    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> envs = {"PATH=/usr/bin:/bin", "HOME=" + acct.home, "USER=" + job.user,
                                     "LOGNAME=" + job.user, "SHELL=/bin/sh"};
    std::vector<char*> envp;
    for (auto& e : envs) envp.push_back(e.data());
    envp.push_back(nullptr);

    // The agent sees its own deliveries only; map its answers back afterwards.
    std::vector<std::optional<Result>> preset = std::move(run->results);
    run->results.assign(messages.size(), std::nullopt);
    run->done = [preset = std::move(preset), agent_index, done = std::move(done)](std::vector<Result> got) mutable {
        for (size_t k = 0; k < agent_index.size() && k < got.size(); ++k) preset[agent_index[k]] = std::move(got[k]);
        std::vector<Result> final;
        for (auto& r : preset) final.push_back(r ? std::move(*r) : Result{Result::Status::TempFail, "no result"});
        done(std::move(final));
    };
    uv_pipe_init(loop_, &run->out_pipe, 0);
    uv_pipe_init(loop_, &run->err_pipe, 0);
    uv_timer_init(loop_, &run->timer);
    run->process.data = run->out_pipe.data = run->err_pipe.data = run->timer.data = run.get();

    std::vector<uv_stdio_container_t> stdio(result_fd + 1);
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_IGNORE;  // the agent points it at its stderr
    stdio[2].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio[2].data.stream = reinterpret_cast<uv_stream_t*>(&run->err_pipe);
    for (size_t k = 0; k < messages.size(); ++k) {
        stdio[3 + k].flags = UV_INHERIT_FD;
        stdio[3 + k].data.fd = messages[k].get();
    }
    if (secret) {
        stdio[3 + messages.size()].flags = UV_INHERIT_FD;
        stdio[3 + messages.size()].data.fd = secret.get();
    }
    stdio[result_fd].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio[result_fd].data.stream = reinterpret_cast<uv_stream_t*>(&run->out_pipe);

    uv_process_options_t opts{};
    opts.file = options_.agent.c_str();
    opts.args = argv.data();
    opts.env = envp.data();
    opts.cwd = "/";
    opts.stdio = stdio.data();
    opts.stdio_count = static_cast<int>(stdio.size());
    // A root daemon starts the agent as root and the agent drops to the
    // account itself (--as) once its plugin is loaded: the binaries and
    // plugins may sit where only root can reach them.
    // A session of its own: a stop signal sent to the daemon's process group
    // (Ctrl-C, kill -TERM -PGID) must not cut a delivery short, which the
    // daemon waits for before it ends.
    opts.flags = UV_PROCESS_DETACHED;
    opts.exit_cb = [](uv_process_t* p, int64_t status, int sig) {
        auto* self = static_cast<AgentRun*>(p->data);
        self->exited = true;
        self->exit_status = status;
        self->term_signal = sig;
        // The pipes normally end with the agent; a process it left behind
        // (an mda command's daemon) may hold them open: wait a little, then
        // take what came and stop waiting, or the batch would never end.
        uv_timer_start(
            &self->timer,
            [](uv_timer_t* t) {
                auto* run = static_cast<AgentRun*>(t->data);
                for (auto* pipe : {&run->out_pipe, &run->err_pipe}) uv_read_stop(reinterpret_cast<uv_stream_t*>(pipe));
                run->open_pipes = 0;
                run->maybe_finish();
            },
            kPipeGraceMs, 0);
        self->maybe_finish();
    };

    int rc = uv_spawn(loop_, &run->process, &opts);
    if (rc != 0) {
        Done d = std::move(run->done);
        AgentRun* raw = run.release();
        // libuv initialised the process handle even though spawning failed.
        raw->close_one(reinterpret_cast<uv_handle_t*>(&raw->process));
        raw->close_one(reinterpret_cast<uv_handle_t*>(&raw->out_pipe));
        raw->close_one(reinterpret_cast<uv_handle_t*>(&raw->err_pipe));
        raw->close_one(reinterpret_cast<uv_handle_t*>(&raw->timer));
        std::string why = std::string("cannot start delivery agent ") + options_.agent + ": " + uv_strerror(rc);
        d(std::vector<Result>(messages.size(), Result{Result::Status::TempFail, why}));
        return;
    }
    AgentRun* raw = run.release();  // freed by the last close callback
    uv_timer_start(
        &raw->timer,
        [](uv_timer_t* t) {
            auto* self = static_cast<AgentRun*>(t->data);
            self->timed_out = true;
            uv_process_kill(&self->process, SIGKILL);
        },
        static_cast<uint64_t>(kind.timeout.count()), 0);
    raw->start_reading(&raw->out_pipe);
    raw->start_reading(&raw->err_pipe);
}

}  // namespace postern::delivery
