// What posternctl's commands do inside the daemon.
//
// The control server (control/server.hpp) hands each request to this handler
// on the event loop; anything that touches the disk or a table runs on a
// worker thread and answers when done.
#pragma once

#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "control/server.hpp"
#include "event/loop_work.hpp"
#include "queue/store.hpp"
#include "scheduler/scheduler.hpp"
#include "smtpd/server.hpp"
#include "table/registry.hpp"

namespace postern::daemon {

class ControlHandler final : public control::Handler {
public:
    ControlHandler(uv_loop_t* loop, smtpd::SmtpServer& server, scheduler::Scheduler& scheduler, queue::Store& store,
                   table::Registry& tables);

    void handle(const control::Request& req, uid_t peer_uid, std::function<void(control::Reply)> done) override;

    // `reload`: asks whoever can reload (the root parent) and gets the
    // outcome: done(true, {}) or done(false, every problem). Unset: a daemon
    // that cannot reload says so.
    using ReloadDone = std::function<void(bool ok, std::vector<std::string> errors)>;
    void set_reload(std::function<void(ReloadDone)> fn) { reload_ = std::move(fn); }

    // Called with what is paused ("mda", "mta", "smtp") each time a pause
    // or resume changes it: the parent keeps it for a reloaded process.
    void on_paused(std::function<void(const std::vector<std::string>&)> fn) { paused_changed_ = std::move(fn); }
    // Pause what a process replaced by a reload had paused.
    void restore_paused(const std::vector<std::string>& names);
    // The daemon's start, for the uptime (a reload does not reset it).
    void set_started(std::time_t t) { started_ = t; }

private:
    control::Reply show_queue() const;
    control::Reply show_envelope(const std::string& id) const;
    control::Reply show_stats() const;
    control::Reply show_status() const;
    void append_queue_status(control::Record& rec) const;
    control::Reply pause_resume(const std::string& what, bool pause);
    std::vector<std::string> paused_names() const;
    void show_message(const std::string& id, std::function<void(control::Reply)> done);
    void show_quarantine(std::function<void(control::Reply)> done);
    void release(const std::string& msgid, std::function<void(control::Reply)> done);
    void update_table(const std::string& name, std::function<void(control::Reply)> done);
    void reload(std::function<void(control::Reply)> done);
    void table_lookup(const std::string& name, const std::string& service, const std::string& key,
                      std::function<void(control::Reply)> done);

    uv_loop_t* loop_;
    smtpd::SmtpServer& server_;
    scheduler::Scheduler& scheduler_;
    queue::Store& store_;
    table::Registry& tables_;
    std::time_t started_ = std::time(nullptr);
    std::function<void(ReloadDone)> reload_;
    std::function<void(const std::vector<std::string>&)> paused_changed_;
};

}  // namespace postern::daemon
