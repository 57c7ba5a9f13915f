// filterhost/spawn.cpp — see spawn.hpp.
#include "filterhost/spawn.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/privileges.hpp"

#ifndef POSTERN_LIBEXEC_DIR
#define POSTERN_LIBEXEC_DIR "/usr/libexec/postern"
#endif

namespace postern::filterhost {
namespace {

// Writes a message to fd 2 without allocating: the child between fork and
// exec may only make async-signal-safe calls.
void say(const char* a, const char* b) {
    auto put = [](const char* s) {
        if (write(2, s, strlen(s)) < 0) return;
    };
    put("postern: cannot start filter: ");
    put(a);
    put(b);
    put("\n");
}

[[noreturn]] void child(const ProcSpec& spec, int io, int err) {
    if (dup2(io, 0) < 0 || dup2(io, 1) < 0 || dup2(err, 2) < 0) _exit(127);
    // The spool hidden (still root): a mount namespace of the filter's own,
    // in which an empty read-only folder nobody may enter lies over it.
    // Where that cannot be done (no CAP_SYS_ADMIN in a container) the
    // filter starts all the same, and says so.
    if (!spec.hide.empty() &&
        (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
         mount("postern-hidden", spec.hide.c_str(), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
               "size=4k,mode=000") != 0))
        say("cannot hide the spool: ", strerror(errno));
    if (!spec.chroot.empty() && (chroot(spec.chroot.c_str()) != 0 || chdir("/") != 0)) {
        say("chroot: ", strerror(errno));
        _exit(127);
    }
    if (spec.chroot.empty() && chdir("/") != 0) _exit(127);
    if (spec.switch_user) {
        if (setgroups(spec.groups.size(), spec.groups.data()) != 0 || setresgid(spec.gid, spec.gid, spec.gid) != 0 ||
            setresuid(spec.uid, spec.uid, spec.uid) != 0) {
            say("cannot change user: ", strerror(errno));
            _exit(127);
        }
        if (spec.uid != 0 && setuid(0) == 0) _exit(127);  // root must be gone for good
    }
    setsid();
    // The daemon holds its stop signals blocked and ignores SIGPIPE; the
    // filter starts with the defaults.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int n : {SIGPIPE, SIGINT, SIGTERM, SIGCHLD, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2}) sigaction(n, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
        for (int fd = 3; fd < 65536; ++fd) close(fd);
    execl("/bin/sh", "sh", "-c", spec.command.c_str(), static_cast<char*>(nullptr));
    say("exec /bin/sh: ", strerror(errno));
    _exit(127);
}

bool executable_file(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

}  // namespace

std::vector<std::string> command_folders() { return {"/usr/libexec/opensmtpd", POSTERN_LIBEXEC_DIR}; }

std::optional<std::string> resolve_command(const std::string& command, const std::vector<std::string>& folders,
                                           const std::string& chroot, std::string* error) {
    std::size_t start = command.find_first_not_of(" \t");
    if (start == std::string::npos) {
        *error = "the command is empty";
        return std::nullopt;
    }
    std::string rest = command.substr(start);
    std::string word = rest.substr(0, rest.find_first_of(" \t"));
    if (word.front() == '/') {
        if (executable_file(chroot + word)) return "exec " + rest;
        *error = "\"" + chroot + word + "\" is not an executable file";
        return std::nullopt;
    }
    std::string tried;
    for (const auto& dir : folders) {
        if (executable_file(chroot + dir + "/" + word)) return "exec " + dir + "/" + rest;
        tried += (tried.empty() ? "" : ", ") + chroot + dir;
    }
    *error = "no executable \"" + word + "\" in " + tried;
    return std::nullopt;
}

std::vector<ProcSpec> proc_specs(const config::Config& cfg, const std::string& default_user, bool root,
                                 std::vector<std::string>* problems, const std::string& spool) {
    std::vector<ProcSpec> out;
    const struct passwd* owner = root ? getpwnam(default_user.c_str()) : nullptr;
    const uid_t owner_uid = owner ? owner->pw_uid : 0;
    for (const auto& p : cfg.procs) {
        auto problem = [&](const std::string& what) {
            problems->push_back(config::format({p.where, "proc " + p.name + ": " + what}));
        };
        ProcSpec spec;
        spec.name = p.name;
        spec.chroot = p.chroot;
        std::string error;
        if (auto cmd = resolve_command(p.command, command_folders(), p.chroot, &error)) spec.command = *cmd;
        else problem(error);
        if (root) {
            const std::string& user = p.user.empty() ? default_user : p.user;
            if (struct passwd* pw = getpwnam(user.c_str())) {
                spec.switch_user = true;
                spec.uid = pw->pw_uid;
                spec.gid = pw->pw_gid;
                if (!p.group.empty()) {
                    if (struct group* gr = getgrnam(p.group.c_str())) spec.gid = gr->gr_gid;
                    else problem("no group \"" + p.group + "\"");
                }
                spec.groups = util::groups_of(pw->pw_name, spec.gid);
                if (owner && spec.uid == owner_uid && p.chroot.empty()) spec.hide = spool;
            } else {
                problem("no user \"" + user + "\"");
            }
        } else if (!p.user.empty() || !p.group.empty() || !p.chroot.empty()) {
            problem("user, group and chroot need posternd to be started as root");
        }
        out.push_back(std::move(spec));
    }
    return out;
}

std::optional<Spawned> spawn_filter(const ProcSpec& spec, std::string* error) {
    int io[2], err[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, io) != 0) {
        *error = std::string("socketpair: ") + strerror(errno);
        return std::nullopt;
    }
    util::Fd ours(io[0]), theirs(io[1]);
    if (pipe2(err, O_CLOEXEC) != 0) {
        *error = std::string("pipe: ") + strerror(errno);
        return std::nullopt;
    }
    util::Fd err_read(err[0]), err_write(err[1]);
    pid_t pid = fork();
    if (pid < 0) {
        *error = std::string("fork: ") + strerror(errno);
        return std::nullopt;
    }
    if (pid == 0) child(spec, theirs.get(), err_write.get());
    Spawned s;
    s.pid = pid;
    s.io = std::move(ours);
    s.err = std::move(err_read);
    return s;
}

}  // namespace postern::filterhost
