// filterhost/host.cpp — see host.hpp.
#include "filterhost/host.hpp"

#include "metrics/registry.hpp"

#include <algorithm>

#include "util/log.hpp"

#ifndef POSTERN_VERSION
#define POSTERN_VERSION "0"
#endif

namespace postern::filterhost {

std::string smtpd_version() { return std::string("postern-") + POSTERN_VERSION; }

Host::Host(uv_loop_t* loop, const config::Config& cfg, Starter& starter, std::string admd)
    : loop_(loop), cfg_(cfg), starter_(starter) {
    handshake_.smtpd_version = smtpd_version();
    // `admd "authserv-id"` names what filters write into Authentication-Results;
    // without it, the server's name (`admd`), as in OpenSMTPD.
    handshake_.admd = cfg.admd.empty() ? std::move(admd) : cfg.admd;
    handshake_.smtp_in = true;
    // The chains of the listeners, and a slot for each proc they use.
    for (const auto& l : cfg_.listeners) {
        if (l.filter.empty()) continue;
        const config::Filter* f = cfg_.find_filter(l.filter);
        if (!f) continue;  // the parser guarantees it is declared
        std::vector<std::string> names = f->kind == config::Filter::Kind::Chain ? f->chain
                                                                                : std::vector<std::string>{f->name};
        std::vector<ChainMember> members;
        for (const auto& n : names) {
            const config::Filter* m = cfg_.find_filter(n);
            if (!m) continue;
            if (m->kind == config::Filter::Kind::Builtin) members.push_back({m->name, nullptr, &m->builtin});
            else if (m->kind == config::Filter::Kind::Proc) members.push_back({m->name, slot_of(m->proc), nullptr});
        }
        chains_[&l] = std::move(members);
    }
}

Host::~Host() { stop(); }

Host::Slot* Host::slot_of(const std::string& proc_name) {
    for (auto& s : slots_)
        if (s->proc->name == proc_name) return s.get();
    for (std::size_t i = 0; i < cfg_.procs.size(); ++i) {
        if (cfg_.procs[i].name != proc_name) continue;
        auto s = std::make_unique<Slot>();
        s->host = this;
        s->index = i;
        s->proc = &cfg_.procs[i];
        s->timer = new uv_timer_t{};  // NOLINT(cppcoreguidelines-owning-memory): freed in its close callback
        uv_timer_init(loop_, s->timer);
        s->timer->data = s.get();
        slots_.push_back(std::move(s));
        return slots_.back().get();
    }
    return nullptr;
}

void Host::start(std::function<void()> settled) {
    settled_ = std::move(settled);
    if (slots_.empty()) {
        auto done = std::move(settled_);
        settled_ = nullptr;
        if (done) done();
        return;
    }
    for (auto& s : slots_) launch(*s);
}

void Host::launch(Slot& s) {
    if (stopped_ || s.starting) return;
    s.starting = true;
    Slot* slot = &s;
    starter_.start(s.index, [this, slot](util::Fd io, pid_t pid, const std::string& error) {
        started(*slot, std::move(io), pid, error);
    });
}

void Host::started(Slot& s, util::Fd io, pid_t pid, const std::string& error) {
    s.starting = false;
    if (stopped_) return;
    if (!io) return failed(s, "cannot start: " + error);
    s.pid = pid;
    Slot* slot = &s;
    Connection::Events ev;
    ev.ready = [this, slot](Connection& c) {
        log::info(log::Line("filter ready").kv("filter", c.name()).kv("pid", c.pid()));
        slot->up_since = uv_now(loop_);
        settle(*slot);
    };
    ev.failed = [this, slot](Connection&, const std::string& why) { failed(*slot, why); };
    // The old connection, if any, failed earlier and is closed: replace it.
    filter::Handshake hs = handshake_;
    hs.version = s.proc->version;  // announced per filter (0.7 adds config|protocol|0.7)
    s.conn = std::make_unique<Connection>(loop_, *s.proc, s.index, hs, std::move(io), pid, std::move(ev));
}

void Host::failed(Slot& s, const std::string& why) {
    if (stopped_) return;
    if (s.up_since && uv_now(loop_) - s.up_since >= kStableMs) s.backoff = kFirstBackoffMs;
    s.up_since = 0;
    metrics::process()
        .counter("postern_filter_failures_total", "Filter processes that failed (died, hung, spoke garbage)",
                 {{"filter", s.proc->name}})
        .inc();
    log::error(log::Line("filter failed; restarting it")
                   .kv("filter", s.proc->name)
                   .kv("error", why)
                   .kv("restart_in", std::to_string(s.backoff / 1000) + "s"));
    if (s.pid > 0) starter_.stop(s.index, s.pid);
    s.pid = -1;
    uv_timer_start(
        s.timer,
        [](uv_timer_t* t) {
            auto* slot = static_cast<Slot*>(t->data);
            slot->conn.reset();  // the failed one, now outside its callbacks
            slot->host->launch(*slot);
        },
        s.backoff, 0);
    s.backoff = std::min(s.backoff * 2, kMaxBackoffMs);
    settle(s);
}

void Host::settle(Slot& s) {
    if (s.settled) return;
    s.settled = true;
    if (!settled_) return;
    if (std::all_of(slots_.begin(), slots_.end(), [](const auto& x) { return x->settled; })) {
        auto done = std::move(settled_);
        settled_ = nullptr;
        done();
    }
}

std::unique_ptr<SessionChain> Host::open(const config::Listener& l, std::uint64_t session, SessionEvents& events,
                                         std::string* why) {
    auto it = chains_.find(&l);
    if (it == chains_.end()) return nullptr;
    std::vector<Member> members;
    for (const auto& cm : it->second) {
        Member m;
        m.name = cm.name;
        m.builtin = cm.builtin;
        if (cm.slot) {
            m.fail_open = cm.slot->proc->fail_open;
            m.timeout_ms = static_cast<std::uint64_t>(cm.slot->proc->timeout.count());
            Connection* c = cm.slot->conn.get();
            if (c && c->ready()) {
                m.conn = c;
            } else if (!m.fail_open) {
                *why = "filter \"" + cm.name + "\" is not running";
                return nullptr;
            } else {
                log::warn(log::Line("filter not running; session goes on unfiltered by it (on-failure pass)")
                              .kv("filter", cm.name));
                continue;
            }
        }
        members.push_back(std::move(m));
    }
    return std::make_unique<SessionChain>(loop_, session, std::move(members), events);
}

Host::ProcStatus Host::proc_status(const std::string& proc_name) const {
    ProcStatus st;
    if (stopped_) return st;
    for (const auto& s : slots_) {
        if (s->proc->name != proc_name) continue;
        // A failed filter waits on its timer for the backoff, then starts again.
        if (uv_is_active(reinterpret_cast<const uv_handle_t*>(s->timer))) {
            st.state = ProcStatus::State::Restarting;
            st.restart_in_ms = uv_timer_get_due_in(s->timer);
        } else if (s->conn && s->conn->ready()) {
            st.state = ProcStatus::State::Running;
            st.pid = s->pid;
        } else if (s->starting || s->conn) {
            st.state = ProcStatus::State::Starting;  // being started, or in its handshake
            st.pid = s->pid;
        }
        break;
    }
    return st;
}

std::vector<std::string> Host::chain_names(const config::Listener& l) const {
    std::vector<std::string> names;
    if (auto it = chains_.find(&l); it != chains_.end())
        for (const auto& m : it->second) names.push_back(m.name);
    return names;
}

void Host::stop() {
    if (stopped_) return;
    stopped_ = true;
    for (auto& s : slots_) {
        if (s->conn) s->conn->close();
        uv_close(reinterpret_cast<uv_handle_t*>(s->timer), [](uv_handle_t* h) {
            delete reinterpret_cast<uv_timer_t*>(h);  // NOLINT(cppcoreguidelines-owning-memory)
        });
        s->timer = nullptr;
    }
}

}  // namespace postern::filterhost
