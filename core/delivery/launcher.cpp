// SpawnLauncher: a Job made a batch for an agent; see launcher.hpp.
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
#include <functional>
#include <memory>
#include <optional>
#include <variant>
#include <vector>

#include "delivery/agent_pool.hpp"
#include "delivery/agent_run.hpp"
#include "delivery/batch.hpp"
#include "delivery/format.hpp"
#include "delivery/kind.hpp"
#include "util/fd.hpp"
#include "util/frame.hpp"

namespace postern::delivery {
namespace {

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

// Whether one agent may serve several batches of a method: all of them.
// The relay and lmtp plugins keep what belongs to one batch (a time budget,
// a server found unreachable) in their deliver_batch call, and only their
// connections across batches (postern/delivery.h).
bool agent_may_live(Kind kind) {
    return kind == Kind::Local || kind == Kind::Command || kind == Kind::Relay || kind == Kind::Lmtp;
}

// A Job made ready for an agent: the account resolved, each message open,
// each path expanded. A delivery that cannot go to the agent gets its
// result here, in `preset`; the others are the batch's items, in order.
struct Prepared {
    Batch batch;
    std::vector<std::optional<Result>> preset;
};

// The account comes from expansion (a userbase may hold accounts the system
// does not know). Root is only ever taken from the system's own user
// database, never from a request. "" when it is good, else why not.
std::string resolve_account(const Job& job, Account* acct) {
    if (job.account.empty()) return find_account(job.user, acct) ? "" : "unknown user " + job.user;
    Account sys;
    if (!parse_account(job.account, acct)) return "malformed account '" + job.account + "' for " + job.user;
    if ((acct->uid == 0 || acct->gid == 0) && !(find_account(job.user, &sys) && sys.uid == acct->uid))
        return "refusing to deliver as uid/gid 0 for " + job.user;
    return "";
}

// The path an item's agent gets, or its failure.
std::variant<std::string, Result> item_path(const SpawnOptions& options, const Job& job, const Item& item,
                                            const Account& acct, const KindInfo& kind) {
    if (job.method == method::kMbox && item.path.empty()) return options.mbox_dir + "/" + sanitise_value(job.user);
    if (kind.kind == Kind::Command) {
        FormatResult r = command_template(job, item);
        if (!r) return format_failure(job.method, job.wrapper.empty() ? item.path : job.wrapper, r.error);
        return std::move(*r.text);
    }
    if (item.path.empty() || !kind.path_use) return item.path;
    // A template that cannot be filled fails this delivery with the reason;
    // it never becomes a guessed path.
    FormatResult r = expand_item_path(job, item, acct.home, options.subaddr_delim, *kind.path_use);
    if (!r) return format_failure(job.method, item.path, r.error);
    return std::move(*r.text);
}

Prepared prepare(const SpawnOptions& options, const Job& job, const Account& acct) {
    const KindInfo kind = info(job.method);
    Prepared p;
    Batch& b = p.batch;
    b.method = job.method;
    b.user = job.user;
    b.home = acct.home;
    b.options = agent_options(job, kind.kind, options.subaddr_delim);
    b.secret = job.secret;
    b.wrapper = job.wrapper;
    if (options.switch_user) b.as = std::make_pair(acct.uid, acct.gid);
    b.time_limit = kind.timeout;
    for (const Item& item : job.items) {
        std::string why;
        util::Fd fd = open_message(options.spool_dir, item.message_path, &why);
        if (!fd) {
            p.preset.emplace_back(Result{Result::Status::TempFail, why});
            continue;
        }
        if (!(fd = queue::open_plain(std::move(fd), options.at_rest, &why))) {
            Result unreadable{Result::Status::TempFail, item.message_path + ": " + why};
            unreadable.unreadable = true;
            p.preset.emplace_back(std::move(unreadable));
            continue;
        }
        auto path = item_path(options, job, item, acct, kind);
        if (auto* failed = std::get_if<Result>(&path)) {
            p.preset.emplace_back(std::move(*failed));
            continue;
        }
        // A default mailbox is made by the agent while it is still root (see
        // postern-local.cpp); only those, whose path we built ourselves.
        bool create = options.switch_user && job.method == method::kMbox && item.path.empty();
        b.items.push_back({std::move(fd),
                           {item.sender, item.rcpt, item.dest, std::get<std::string>(std::move(path)), item.msgid,
                            item.mail_params, item.rcpt_params},
                           create});
        p.preset.emplace_back(std::nullopt);
    }
    return p;
}

// The batch's results in the job's order: the agent's for the items it
// got, the preset ones for the others.
std::vector<Result> merge(std::vector<std::optional<Result>> preset, std::vector<Result> got) {
    std::vector<Result> out;
    size_t k = 0;
    for (auto& r : preset) {
        if (r) out.push_back(std::move(*r));
        else if (k < got.size())
            out.push_back(std::move(got[k++])), out.back().unreadable = false;  // not an agent's to say
        else out.emplace_back(Result::Status::TempFail, "no result");
    }
    return out;
}

// Whether the mailboxes a batch would make all exist, as regular files,
// looked at on libuv's threads (the mbox folder may be on NFS): then(batch,
// answer) on the loop. A batch's mailboxes are its user's one default
// mailbox; a batch that names several is answered "no".
void look_for_mailboxes(uv_loop_t* loop, Batch batch, std::function<void(Batch, bool)> then) {
    struct Look {
        uv_fs_t req{};
        Batch batch;
        std::function<void(Batch, bool)> then;
    };
    std::string path;
    for (const auto& item : batch.items) {
        if (!item.create_mbox) continue;
        if (!path.empty() && item.fields.path != path) return then(std::move(batch), false);
        path = item.fields.path;
    }
    auto look = std::make_unique<Look>();
    look->req.data = look.get();
    look->batch = std::move(batch);
    look->then = std::move(then);
    int rc = uv_fs_lstat(loop, &look->req, path.c_str(), [](uv_fs_t* req) {
        std::unique_ptr<Look> done(static_cast<Look*>(req->data));
        bool there = req->result == 0 && S_ISREG(req->statbuf.st_mode);
        uv_fs_req_cleanup(req);
        done->then(std::move(done->batch), there);
    });
    if (rc == 0) {
        (void)look.release();  // reclaimed in the callback
        return;
    }
    uv_fs_req_cleanup(&look->req);
    look->then(std::move(look->batch), false);
}

}  // namespace

SpawnLauncher::SpawnLauncher(uv_loop_t* loop, SpawnOptions options)
    : loop_(loop), options_(std::move(options)), pool_(std::make_unique<AgentPool>(loop_, options_)) {}

SpawnLauncher::~SpawnLauncher() = default;

void SpawnLauncher::launch(const Job& job, Done done) {
    Account acct;
    if (std::string why = resolve_account(job, &acct); !why.empty())
        return done(std::vector<Result>(job.items.size(), Result{Result::Status::PermFail, why}));
    Prepared p = prepare(options_, job, acct);
    if (p.batch.items.empty()) return done(merge(std::move(p.preset), {}));
    if (job.progress) {  // the batch's items are the job's without a preset result, in order
        std::vector<std::size_t> index;
        for (std::size_t j = 0; j < p.preset.size(); ++j)
            if (!p.preset[j]) index.push_back(j);
        p.batch.progress = [index = std::move(index), progress = job.progress](std::size_t k, const Result& r) {
            if (k >= index.size()) return;
            Result out = r;
            out.unreadable = false;  // not an agent's to say (merge)
            progress(index[k], out);
        };
    }
    BatchDone merged = [preset = std::move(p.preset), done = std::move(done)](std::vector<Result> got) mutable {
        done(merge(std::move(preset), std::move(got)));
    };
    dispatch(std::move(p.batch), std::move(merged));
}

// A batch with a default mailbox to make (mbox, as root) needs an agent
// that is still root, which only a new one is; but the mailbox is made
// once, and its later batches find it there: with every one of its
// mailboxes there, the batch needs no root and goes to the pool. (One that
// a mail reader removes just after the look fails its delivery
// temporarily, as it would in a new agent once root was gone; the retry
// makes it.)
void SpawnLauncher::dispatch(Batch batch, BatchDone done) {
    if (!options_.keep_agents || !agent_may_live(kind_of(batch.method)))
        return run_once(loop_, options_, std::move(batch), std::move(done));
    if (!batch.needs_root()) return pool_->run(std::move(batch), std::move(done));
    auto then = [this, alive = std::weak_ptr<char>(alive_), done = std::move(done)](Batch b, bool there) mutable {
        if (alive.expired()) return;  // the launcher has gone: nobody takes the results
        if (!there) return run_once(loop_, options_, std::move(b), std::move(done));
        for (auto& item : b.items) item.create_mbox = false;
        pool_->run(std::move(b), std::move(done));
    };
    look_for_mailboxes(loop_, std::move(batch), std::move(then));
}

void SpawnLauncher::retire() { pool_->retire(); }

std::size_t SpawnLauncher::living_agents() const { return pool_->agents(); }

}  // namespace postern::delivery
