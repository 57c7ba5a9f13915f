// Starting an agent; see agent_spawn.hpp.
#include "delivery/agent_spawn.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <vector>

namespace postern::delivery {
namespace {

// Under a pipe's 64 KiB buffer: the write never blocks (a pki chain fits).
constexpr size_t kMaxSecret = 60 * 1024;

// Descriptors the agent inherits: the messages from 3 on, then the secret,
// then the result descriptor.
int secret_fd_number(const Batch& batch) { return static_cast<int>(3 + batch.items.size()); }
int result_fd_number(const Batch& batch, bool secret) { return secret_fd_number(batch) + (secret ? 1 : 0); }

std::vector<std::string> agent_args(const SpawnOptions& options, const Batch& batch, bool secret) {
    std::vector<std::string> args = {options.agent, "--plugin-dir", options.plugin_dir, "--method",
                                     batch.method,  "--user",       batch.user,         "--home",
                                     batch.home,    "--options",    batch.options};
    for (size_t k = 0; k < batch.items.size(); ++k) {
        const channel::Item& i = batch.items[k].fields;
        args.insert(args.end(), {"--delivery", std::to_string(3 + k), i.sender, i.rcpt, i.dest, i.path, i.msgid});
        if (!i.mail_params.empty() || !i.rcpt_params.empty())
            args.insert(args.end(), {"--dsn", i.mail_params, i.rcpt_params});
        if (batch.items[k].create_mbox) args.push_back("--create-mbox");
    }
    if (batch.as)
        args.insert(args.end(), {"--as", std::to_string(batch.as->first) + ":" + std::to_string(batch.as->second)});
    if (secret) args.insert(args.end(), {"--secret-fd", std::to_string(secret_fd_number(batch))});
    args.insert(args.end(), {"--result-fd", std::to_string(result_fd_number(batch, secret))});
    return args;
}

// Exactly what a plugin may count on (postern/delivery.h): nothing from the daemon's own.
std::vector<std::string> agent_env(const Batch& batch) {
    return {"PATH=/usr/bin:/bin", "HOME=" + batch.home, "USER=" + batch.user, "LOGNAME=" + batch.user, "SHELL=/bin/sh"};
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
    std::vector<char*> out;
    for (auto& s : strings) out.push_back(s.data());
    out.push_back(nullptr);
    return out;
}

uv_stdio_container_t inherit(int fd) {
    uv_stdio_container_t c{};
    c.flags = UV_INHERIT_FD;
    c.data.fd = fd;
    return c;
}

}  // namespace

bool secret_pipe(const Batch& batch, util::Fd* out, std::string* why) {
    out->reset();
    if (batch.secret.empty()) return true;
    int p[2];
    // Non-blocking: a pipe shrunk by the kernel's per-user limit must fail
    // this batch, not block the event loop; F_SETPIPE_SZ asks for room first.
    if (batch.secret.size() > kMaxSecret || ::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
        *why = "cannot pass credentials to the agent";
        return false;
    }
    util::Fd reader(p[0]), writer(p[1]);
    ::fcntl(writer.get(), F_SETPIPE_SZ, static_cast<int>(kMaxSecret));
    if (!util::write_all(writer.get(), batch.secret)) {
        *why = "cannot pass credentials to the agent";
        return false;
    }
    *out = std::move(reader);
    return true;
}

int spawn_agent(uv_loop_t* loop, const SpawnOptions& options, const Batch& batch, const util::Fd& secret,
                uv_stdio_container_t result, const AgentHandles& handles, std::string* why) {
    std::vector<std::string> args = agent_args(options, batch, secret.valid());
    std::vector<std::string> env = agent_env(batch);
    std::vector<char*> argv = pointers(args), envp = pointers(env);

    std::vector<uv_stdio_container_t> stdio(static_cast<size_t>(result_fd_number(batch, secret.valid())) + 1);
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_IGNORE;  // the agent points it at its stderr
    stdio[2].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio[2].data.stream = reinterpret_cast<uv_stream_t*>(handles.err);
    for (size_t k = 0; k < batch.items.size(); ++k) stdio[3 + k] = inherit(batch.items[k].message.get());
    if (secret) stdio[static_cast<size_t>(secret_fd_number(batch))] = inherit(secret.get());
    stdio.back() = result;

    uv_process_options_t opts{};
    opts.file = options.agent.c_str();
    opts.args = argv.data();
    opts.env = envp.data();
    opts.cwd = "/";
    opts.stdio = stdio.data();
    opts.stdio_count = static_cast<int>(stdio.size());
    opts.flags = UV_PROCESS_DETACHED;
    opts.exit_cb = handles.on_exit;
    int rc = uv_spawn(loop, handles.process, &opts);
    if (rc != 0) *why = "cannot start delivery agent " + options.agent + ": " + uv_strerror(rc);
    return rc;
}

}  // namespace postern::delivery
