// The serving process; see serve.hpp.
#include "daemon/serve.hpp"

#include <malloc.h>
#include <uv.h>

#include <algorithm>
#include <csignal>
#include <functional>
#include <memory>

#include "control/server.hpp"
#include "daemon/control_handler.hpp"
#include "daemon/forward_channel.hpp"
#include "daemon/signals.hpp"
#include "daemon/spool_lock.hpp"
#include "delivery/privileged.hpp"
#include "event/loop_work.hpp"
#include "filterhost/host.hpp"
#include "filterhost/starter.hpp"
#include "metrics/http_server.hpp"
#include "queue/store.hpp"
#include "rules/ruleset.hpp"
#include "scheduler/bouncer.hpp"
#include "scheduler/scheduler.hpp"
#include "smtpd/server.hpp"
#include "util/log.hpp"

namespace postern::daemon {
namespace {

// How long a stopping process waits for the agents under way to report.
constexpr uint64_t kDrainMs = 30 * 1000;
// How long a process replaced by a reload lets its sessions go on.
constexpr uint64_t kSessionDrainMs = 5 * 60 * 1000;

}  // namespace

int serve(const config::Config& cfg, const Paths& paths, Prepared prep) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    // Destroyed last: the lock is given up once everything this process
    // wrote to the spool is written (spool_lock.hpp).
    SpoolLock spool_lock(&loop);

    queue::Store store(prep.store_dir);
    store.set_at_rest(prep.at_rest);
    std::string err;
    // Store::open() also clears incoming/ of messages a crash left half
    // written. A process started by a reload must not: the process it
    // replaces may be writing there (its sessions finish), and the folders
    // exist already.
    if (!prep.after_reload && !store.open(&err)) {
        log::error(log::Line("cannot open the queue").kv("path", paths.spool).kv("error", err));
        return 1;
    }
    table::Registry& tables = *prep.tables;
    rules::Ruleset rules(cfg, tables, localnames(cfg, paths));

    // Its thread starts here, after the fork, in the unprivileged process.
    metrics::HttpServer metrics_server(metrics::process());
    if (!cfg.metrics_address.empty()) {
        if (!metrics_server.start(cfg.metrics_address, static_cast<unsigned>(cfg.metrics_port), &err)) {
            log::error(log::Line("cannot serve metrics").kv("error", err));
            return 1;
        }
        log::info(log::Line("metrics listening")
                      .kv("address", cfg.metrics_address)
                      .kv("port", static_cast<long long>(cfg.metrics_port)));
    }

    event::LoopPost post(&loop);
    event::SerialWorker worker;
    delivery::PrivClient priv(&loop, prep.priv_fd);
    scheduler::Bouncer bouncer(cfg, rules, tables, store, paths.hostname);
    scheduler::RelayRouter router(cfg, tables, *prep.relay_pkis);
    scheduler::Scheduler scheduler(&loop, cfg, store, priv, worker, post, bouncer, router);
    queue::Committer committer(store);

    smtpd::SmtpContext ctx{&cfg,    &rules, &tables,        &store,  &committer,
                           nullptr, &post,  paths.hostname, nullptr, prep.tls_contexts};
    ctx.local_socket = paths.local_socket;
    ForwardClient forward_client(std::move(prep.forward_channel));
    expand::ForwardReader read_forward = [&forward_client](const expand::UserInfo& u) {
        return forward_client.read(u);
    };
    ctx.forward = &read_forward;
    // Until this process holds the spool lock, the queue is not loaded and
    // nothing is delivered: what sessions queue meanwhile waits here, and
    // is handed over with the loaded queue (enqueue() skips envelopes it
    // knows, so one found both ways is queued once).
    struct QueueState {
        bool loaded = false, closed = false;
        std::vector<queue::Envelope> early;
    } qstate;
    ctx.queued = [&scheduler, &qstate](const std::vector<queue::Envelope>& e) {
        if (qstate.closed) return;  // stopping or draining: in the spool for the next process
        if (!qstate.loaded) qstate.early.insert(qstate.early.end(), e.begin(), e.end());
        else scheduler.enqueue(e);
    };
    ctx.system_auth = [&priv](const std::string& user, const std::string& password, auto done) {
        priv.check_system_account(user, password, std::move(done));
    };
    // Filters run as their configured user: the parent starts them.
    filterhost::StarterClient starter(&loop, std::move(prep.filter_channel));
    filterhost::Host filters(&loop, cfg, starter, paths.hostname);
    ctx.filters = &filters;
    smtpd::SmtpServer server(&loop, ctx);
    ControlHandler control_handler(&loop, server, scheduler, store, tables);
    control_handler.set_reload([&priv](ControlHandler::ReloadDone done) { priv.request_reload(std::move(done)); });
    control_handler.set_started(prep.started);
    control_handler.on_paused([&priv](const std::vector<std::string>& names) { priv.report_paused(names); });
    control_handler.restore_paused(prep.paused);
    control::Server control(&loop, control_handler);
    // The socket file is the parent's: a reload hands the same socket to
    // the next process, which must find the file still there.
    if (!control.listen_on(std::move(prep.control), paths.control, &err, true)) {
        log::error(log::Line("cannot open the control socket").kv("path", paths.control).kv("error", err));
        return 1;
    }

    // The queue is read on the worker thread and handed to the scheduler a
    // slice per loop turn: with a million envelopes queued, the listeners
    // accept all along instead of waiting for the whole of it.
    struct Loaded {
        std::vector<queue::Packed> envelopes;
        std::size_t next = 0;
    };
    std::function<void(std::shared_ptr<Loaded>)> hand_over = [&](std::shared_ptr<Loaded> q) {
        if (qstate.closed) return;
        constexpr std::size_t kSlice = 5000;
        std::size_t end = std::min(q->envelopes.size(), q->next + kSlice);
        scheduler.enqueue(std::vector<queue::Packed>{
            std::make_move_iterator(q->envelopes.begin() + static_cast<std::ptrdiff_t>(q->next)),
            std::make_move_iterator(q->envelopes.begin() + static_cast<std::ptrdiff_t>(end))});
        q->next = end;
        if (end < q->envelopes.size()) {
            post.post([&hand_over, q] { hand_over(q); });
            return;
        }
        const auto count = static_cast<long long>(q->envelopes.size());
        q->envelopes = {};
        // What reading the queue took in passing (a million envelopes: a
        // few hundred megabytes) goes back to the system, not just to malloc.
        ::malloc_trim(0);
        if (count) log::info(log::Line("queue loaded").kv("envelopes", count));
        qstate.loaded = true;
        scheduler.enqueue(qstate.early);
        qstate.early.clear();
    };
    auto load_queue = [&] {
        worker.submit([&] {
            auto q = std::make_shared<Loaded>();
            std::vector<std::string> corrupt;
            q->envelopes = store.load_packed(&corrupt);
            for (const auto& c : corrupt) log::warn(log::Line("queue corrupt-envelope").kv("error", c));
            post.post([&hand_over, q] { hand_over(q); });
        });
    };
    struct Signals {
        uv_signal_t term{}, intr{}, hup{};
        uv_timer_t drain{}, sessions{};
        std::function<void(bool unavailable)> stop;
        std::function<void()> drain_check, begin_drain, sessions_check;
    } sig;
    int status = 0;
    bool stopping = false, draining = false;
    uint64_t stop_started = 0, drain_started = 0;
    // Deliveries under way report before the end (for up to kDrainMs), and
    // the spool forgets what they delivered, so that mail already delivered
    // is not tried again by the next process.
    sig.drain_check = [&] {
        bool busy = scheduler.running() > 0 || scheduler.removals_pending();
        if (!priv.broken() && busy && uv_now(&loop) - stop_started < kDrainMs) return;
        uv_close(reinterpret_cast<uv_handle_t*>(&sig.drain), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&sig.sessions), nullptr);
        post.close();
        priv.close();
    };
    sig.stop = [&](bool unavailable) {
        if (stopping) return;
        stopping = true;
        if (!unavailable) log::info("posternd stopping");
        qstate.closed = true;
        spool_lock.cancel();
        server.stop(unavailable);
        filters.stop();
        starter.close();
        control.close();
        scheduler.close();
        for (auto* h : {&sig.term, &sig.intr, &sig.hup}) uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
        // A second signal (the parent passes one on that a process group
        // also got) must not cut the orderly stop short.
        for (int n : {SIGTERM, SIGINT, SIGHUP}) signal(n, SIG_IGN);
        stop_started = uv_now(&loop);
        uv_timer_start(
            &sig.drain, [](uv_timer_t* t) { static_cast<Signals*>(t->data)->drain_check(); }, 0, 100);
    };
    // Replaced by a reloaded process: stop accepting (that process accepts
    // on the same sockets), let the sessions under way end under this
    // configuration (for up to kSessionDrainMs), start no more deliveries,
    // then stop as on SIGTERM, which waits for those under way.
    sig.sessions_check = [&] {
        if (stopping) return;
        if (server.session_count() > 0 && uv_now(&loop) - drain_started < kSessionDrainMs) return;
        if (server.session_count() > 0)
            log::warn(log::Line("posternd drain: sessions still open are closed")
                          .kv("sessions", static_cast<long long>(server.session_count())));
        sig.stop(false);
    };
    sig.begin_drain = [&] {
        if (stopping || draining) return;
        draining = true;
        log::info(log::Line("posternd draining: a reloaded process takes new connections")
                      .kv("sessions", static_cast<long long>(server.session_count())));
        server.stop_accepting();
        control.stop_listening();
        qstate.closed = true;
        spool_lock.cancel();
        scheduler.close();
        drain_started = uv_now(&loop);
        uv_timer_start(
            &sig.sessions, [](uv_timer_t* t) { static_cast<Signals*>(t->data)->sessions_check(); }, 0, 100);
    };
    priv.on_drain([&] { sig.begin_drain(); });
    // Started by a reload: the processes replaced may still commit mail to
    // the spool (their sessions finish) or deliver from it; the parent says
    // when they have all ended. The lock then guards against anything else.
    auto take_queue = [&] {
        if (spool_lock.acquire(prep.store_dir, load_queue, &err)) return true;
        log::error(log::Line("cannot lock the queue").kv("path", paths.spool).kv("error", err));
        return false;
    };
    if (prep.after_reload) {
        log::info("queue waits until the replaced process has ended");
        priv.on_queue_free([&] {
            if (stopping || draining || take_queue()) return;
            status = 1;
            sig.stop(true);
        });
    } else if (!take_queue()) {
        return 1;
    }

    // Without the parent nothing can be delivered: stop saying 250 at once
    // and end, so that a supervisor starts a whole daemon again.
    priv.on_parent_lost([&](const std::string& why) {
        log::error(
            log::Line("posternd stopping: the privileged process is gone; no more mail is accepted").kv("error", why));
        status = 1;
        sig.stop(true);
    });
    for (auto* s : {&sig.term, &sig.intr, &sig.hup}) {
        uv_signal_init(&loop, s);
        s->data = &sig;
    }
    uv_timer_init(&loop, &sig.drain);
    sig.drain.data = &sig;
    uv_timer_init(&loop, &sig.sessions);
    sig.sessions.data = &sig;
    auto on_stop = [](uv_signal_t* s, int) { static_cast<Signals*>(s->data)->stop(false); };
    uv_signal_start(&sig.term, on_stop, SIGTERM);
    uv_signal_start(&sig.intr, on_stop, SIGINT);
    // The parent reloads (it alone can open what a config needs); a HUP
    // that reaches this process too (sent to the group) is the parent's.
    uv_signal_start(
        &sig.hup, [](uv_signal_t*, int) {}, SIGHUP);
    hold_stop_signals(false);

    // libuv starts its thread pool at the first work queued (a session's
    // first lookup), and aborts if it cannot make the threads (a memory
    // limit too tight for their stacks): start it now, so that such a limit
    // stops posternd at start-up, not in the middle of its first session.
    event::run_blocking(
        &loop, [] {}, [] {});

    // The listeners open once every filter they use is ready (or has failed
    // its first start: its sessions are then refused until it is back).
    filters.start([&] {
        if (stopping || draining) return;
        if (!server.start(prep.sockets, &err)) {
            log::error(err);
            status = 1;
            sig.stop(true);
            return;
        }
        log::info(log::Line("posternd ready").kv("hostname", paths.hostname).kv("spool", paths.spool));
    });
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return status;
}

}  // namespace postern::daemon
