// One agent, one batch; see agent_run.hpp.
#include "delivery/agent_run.hpp"

#include <csignal>
#include <memory>

#include "delivery/agent_results.hpp"
#include "delivery/agent_spawn.hpp"

namespace postern::delivery {
namespace {

// How long the pipes of an agent that has exited may stay open.
constexpr uint64_t kPipeGraceMs = 5000;
// What is kept of each pipe: the results of a batch fit many times over.
constexpr size_t kMaxPipeBytes = size_t{1} << 20;

// One running agent; owns its libuv handles and frees itself when all are closed.
struct AgentRun {
    explicit AgentRun(size_t deliveries) : results(deliveries) {}

    uv_process_t process{};
    uv_pipe_t out_pipe{}, err_pipe{};  // the agent's result pipe (--result-fd, not its stdout) and its stderr
    uv_timer_t timer{};
    int open_handles = 0;
    int open_pipes = 2;
    bool exited = false, finished = false;
    AgentEnd end;
    std::string out;  // what came on the result pipe
    char buf[4096];
    BatchResults results;
    BatchDone done;

    void close_one(uv_handle_t* h) {
        ++open_handles;
        uv_close(h, [](uv_handle_t* handle) {
            auto* self = static_cast<AgentRun*>(handle->data);
            if (--self->open_handles == 0)
                std::unique_ptr<AgentRun> reclaim(self);  // owned by the callbacks since it started
        });
    }

    void close_all() {
        for (auto* h : {reinterpret_cast<uv_handle_t*>(&process), reinterpret_cast<uv_handle_t*>(&out_pipe),
                        reinterpret_cast<uv_handle_t*>(&err_pipe), reinterpret_cast<uv_handle_t*>(&timer)})
            close_one(h);
    }

    void maybe_finish() {
        if (finished || !exited || open_pipes > 0) return;
        finished = true;
        end.garbled = !results.take(out);
        BatchDone d = std::move(done);
        std::vector<Result> final = results.finish(failure_reason(end));
        close_all();
        d(std::move(final));
    }

    void start_reading(uv_pipe_t* pipe) {
        uv_read_start(
            reinterpret_cast<uv_stream_t*>(pipe),
            [](uv_handle_t* h, size_t, uv_buf_t* b) {
                auto* self = static_cast<AgentRun*>(h->data);
                *b = uv_buf_init(self->buf, sizeof self->buf);
            },
            [](uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
                auto* self = static_cast<AgentRun*>(s->data);
                std::string& sink = s == reinterpret_cast<uv_stream_t*>(&self->out_pipe) ? self->out : self->end.err;
                if (n > 0) {
                    if (sink.size() < kMaxPipeBytes) sink.append(b->base, static_cast<size_t>(n));
                    return;
                }
                if (n < 0) {
                    uv_read_stop(s);
                    --self->open_pipes;
                    self->maybe_finish();
                }
            });
    }

    static void on_exit(uv_process_t* p, int64_t status, int sig) {
        auto* self = static_cast<AgentRun*>(p->data);
        self->exited = true;
        self->end.exit_status = status;
        self->end.term_signal = sig;
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
    }
};

}  // namespace

void run_once(uv_loop_t* loop, const SpawnOptions& options, Batch batch, BatchDone done) {
    util::Fd secret;
    std::string why;
    if (!secret_pipe(batch, &secret, &why))
        return done(std::vector<Result>(batch.items.size(), Result{Result::Status::TempFail, why}));
    auto run = std::make_unique<AgentRun>(batch.items.size());
    run->done = std::move(done);
    uv_pipe_init(loop, &run->out_pipe, 0);
    uv_pipe_init(loop, &run->err_pipe, 0);
    uv_timer_init(loop, &run->timer);
    run->process.data = run->out_pipe.data = run->err_pipe.data = run->timer.data = run.get();

    uv_stdio_container_t result{};
    result.flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    result.data.stream = reinterpret_cast<uv_stream_t*>(&run->out_pipe);
    int rc = spawn_agent(loop, options, batch, secret, result, {&run->process, &run->err_pipe, AgentRun::on_exit},
                         &why);
    AgentRun* raw = run.release();  // freed by the last close callback
    if (rc != 0) {
        BatchDone d = std::move(raw->done);
        raw->close_all();  // libuv initialised the process handle even though spawning failed
        d(std::vector<Result>(batch.items.size(), Result{Result::Status::TempFail, why}));
        return;
    }
    uv_timer_start(
        &raw->timer,
        [](uv_timer_t* t) {
            auto* self = static_cast<AgentRun*>(t->data);
            self->end.timed_out = true;
            uv_process_kill(&self->process, SIGKILL);
        },
        static_cast<uint64_t>(batch.time_limit.count()), 0);
    raw->start_reading(&raw->out_pipe);
    raw->start_reading(&raw->err_pipe);
}

}  // namespace postern::delivery
