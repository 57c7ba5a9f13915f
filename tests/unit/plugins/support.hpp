// tests/unit/plugins/support.hpp — helpers shared by the plugin tests:
// scratch folders, whole-file reads and writes, loading the built plugins,
// running a delivery, and running code in a child process (as another user,
// under a resource limit) whose result comes back through a pipe.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "../common/files.hpp"
#include "util/fd.hpp"
#include "util/frame.hpp"
#include "util/plugin.hpp"

namespace test {

inline const std::string kPluginDir = POSTERN_BUILD_DIR "/plugins";
inline const std::string kTestPluginDir = POSTERN_TEST_PLUGIN_DIR;

// A fresh folder under /tmp (common/files.hpp), and whole-file I/O.
class TempDir : public postern_test::TempDir {
public:
    TempDir() : postern_test::TempDir("plugins") {}
};
using postern_test::read_file;
using postern_test::write_file;

// Names in a folder, sorted; empty when the folder does not exist.
inline std::vector<std::string> list_dir(const std::string& dir) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

// The message as postern-local would pass it: a read-only fd at offset 0.
inline postern::util::Fd message_fd(const TempDir& dir, const std::string& message) {
    static int n = 0;
    std::string path = dir / ("message-" + std::to_string(++n));
    write_file(path, message);
    postern::util::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(fd);
    return fd;
}

inline postern::util::DeliveryPlugin load_delivery(const std::string& name) {
    std::string error;
    auto p = postern::util::load_delivery_plugin(kPluginDir, name, &error);
    INFO(error);
    REQUIRE(p);
    return std::move(*p);
}

struct Request {
    std::string sender = "alice@example.org";
    std::string rcpt = "bob@example.com";
    std::string dest = "bob@example.com";
    std::string user = "bob";
    std::string home = "/nonexistent";
    std::string path;
    std::string options;
    std::string msgid = "0123456789abcdef";
    std::string mail_params, rcpt_params;  // DSN parameters for a relay to pass on
};

struct Outcome {
    int status = -1;
    std::string error;
};

inline postern_delivery_request request_of(const Request& r, int fd) {
    postern_delivery_request req{};
    req.struct_size = sizeof req;
    req.message_fd = fd;
    req.sender = r.sender.c_str();
    req.rcpt = r.rcpt.c_str();
    req.dest = r.dest.c_str();
    req.user = r.user.c_str();
    req.home = r.home.c_str();
    req.path = r.path.c_str();
    req.options = r.options.c_str();
    req.msgid = r.msgid.c_str();
    req.mail_params = r.mail_params.c_str();
    req.rcpt_params = r.rcpt_params.c_str();
    return req;
}

inline Outcome deliver(const postern::util::DeliveryPlugin& plugin, const Request& r, int fd) {
    postern_delivery_request req = request_of(r, fd);
    char err[1024] = "";
    Outcome out;
    out.status = plugin->deliver(&req, err, sizeof err);
    out.error = err;
    return out;
}

// One request through deliver_many, for the typed fields of its result. A
// `struct_size` below the full struct is a caller built before some fields.
inline postern_delivery_result deliver_typed(const postern::util::DeliveryPlugin& plugin, const Request& r, int fd,
                                             uint32_t struct_size = sizeof(postern_delivery_result)) {
    auto many = postern::util::deliver_many_of(plugin);
    REQUIRE(many);
    postern_delivery_request req = request_of(r, fd);
    const postern_delivery_request* reqs[] = {&req};
    postern_delivery_result res{};
    res.struct_size = struct_size;
    postern_delivery_result* results[] = {&res};
    many(reqs, 1, results);
    return res;
}

// A delivery agent's result frames (--result-fd), each as its fields.
inline std::vector<std::vector<std::string>> result_frames(std::string bytes) {
    std::vector<std::vector<std::string>> out;
    std::vector<std::string> fields;
    bool bad = false;
    while (postern::util::decode_frame(bytes, &fields, &bad)) out.push_back(fields);
    if (bad || !bytes.empty()) out.push_back({"garbled"});
    return out;
}

// The same as lines "INDEX STATUS TEXT\n", as the tests compare them.
inline std::string result_lines(const std::string& bytes) {
    std::string out;
    for (const auto& f : result_frames(bytes))
        out += f.size() < 3 ? "garbled\n" : f[0] + " " + f[1] + " " + f[2] + "\n";
    return out;
}

// Run `fn` in a forked child (so it may change uid or limits) and bring its
// Outcome back through a pipe.
inline Outcome in_child(const std::function<Outcome()>& fn) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    postern::util::Fd rd(fds[0]), wr(fds[1]);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        rd.reset();
        Outcome o = fn();
        std::string msg = std::to_string(o.status) + " " + o.error;
        ssize_t ignored = ::write(wr.get(), msg.data(), msg.size());
        (void)ignored;
        ::_exit(0);
    }
    wr.reset();
    std::string text;
    char buf[1024];
    ssize_t n;
    while ((n = ::read(rd.get(), buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
    int wstatus = 0;
    REQUIRE(::waitpid(pid, &wstatus, 0) == pid);
    REQUIRE(WIFEXITED(wstatus));
    Outcome o;
    size_t sp = text.find(' ');
    REQUIRE(sp != std::string::npos);
    o.status = std::stoi(text.substr(0, sp));
    o.error = text.substr(sp + 1);
    return o;
}

// In a child: become an unprivileged user, so permission checks apply even
// when the tests run as root.
inline bool drop_privileges() {
    if (::geteuid() != 0) return true;
    const struct passwd* pw = ::getpwnam("nobody");
    uid_t uid = pw ? pw->pw_uid : 65534;
    gid_t gid = pw ? pw->pw_gid : 65534;
    return ::setgroups(0, nullptr) == 0 && ::setgid(gid) == 0 && ::setuid(uid) == 0;
}

}  // namespace test
