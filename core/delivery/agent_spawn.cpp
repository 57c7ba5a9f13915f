// Starting an agent; see agent_spawn.hpp.
#include "delivery/agent_spawn.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vector>

#include "delivery/agent_batch.hpp"

namespace postern::delivery {
namespace {

// Under a pipe's 64 KiB buffer: the write never blocks (a pki chain fits).
constexpr size_t kMaxSecret = 60 * 1024;

// Descriptors the agent inherits: the messages from 3 on, then the batch,
// then the secret, then the result descriptor.
int batch_fd_number(const Batch& batch) { return static_cast<int>(3 + batch.items.size()); }
int secret_fd_number(const Batch& batch) { return batch_fd_number(batch) + 1; }
int result_fd_number(const Batch& batch, bool secret) { return secret_fd_number(batch) + (secret ? 1 : 0); }

// Nothing of the envelope: argv is public in /proc (agent_batch.hpp).
std::vector<std::string> agent_args(const SpawnOptions& options, const Batch& batch, bool secret) {
    std::vector<std::string> args = {options.agent, "--plugin-dir", options.plugin_dir, "--method",
                                     batch.method,  "--user",       batch.user,         "--home",
                                     batch.home,    "--options",    batch.options};
    if (batch.as)
        args.insert(args.end(), {"--as", std::to_string(batch.as->first) + ":" + std::to_string(batch.as->second)});
    args.insert(args.end(), {"--batch-fd", std::to_string(batch_fd_number(batch))});
    if (secret) args.insert(args.end(), {"--secret-fd", std::to_string(secret_fd_number(batch))});
    args.insert(args.end(), {"--result-fd", std::to_string(result_fd_number(batch, secret))});
    return args;
}

// The batch's envelopes in a sealed memory file, read from its start: no
// pipe buffer to fill, so writing it never blocks the loop, whatever its size.
util::Fd batch_file(const Batch& batch, std::string* why) {
    std::vector<first_batch::Item> items;
    for (size_t k = 0; k < batch.items.size(); ++k)
        items.push_back({static_cast<int>(3 + k), batch.items[k].create_mbox, batch.items[k].fields});
    std::string bytes = first_batch::encode(items);
    util::Fd fd(::memfd_create("postern-batch", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (bytes.size() > first_batch::kMaxBytes || !fd || !util::write_all(fd.get(), bytes) ||
        ::lseek(fd.get(), 0, SEEK_SET) != 0 ||
        ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
        *why = "cannot pass the batch to the agent";
        return {};
    }
    return fd;
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
    // Without its batch the agent cannot start; uv_spawn still runs (the
    // caller closes the handles it initialises) and refuses the descriptor -1.
    std::string no_batch;
    util::Fd envelopes = batch_file(batch, &no_batch);
    std::vector<std::string> args = agent_args(options, batch, secret.valid());
    std::vector<std::string> env = agent_env(batch);
    std::vector<char*> argv = pointers(args), envp = pointers(env);

    std::vector<uv_stdio_container_t> stdio(static_cast<size_t>(result_fd_number(batch, secret.valid())) + 1);
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_IGNORE;  // the agent points it at its stderr
    stdio[2].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio[2].data.stream = reinterpret_cast<uv_stream_t*>(handles.err);
    for (size_t k = 0; k < batch.items.size(); ++k) stdio[3 + k] = inherit(batch.items[k].message.get());
    stdio[static_cast<size_t>(batch_fd_number(batch))] = inherit(envelopes.get());
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
    if (rc != 0)
        *why = !no_batch.empty() ? no_batch : "cannot start delivery agent " + options.agent + ": " + uv_strerror(rc);
    return rc;
}

}  // namespace postern::delivery
