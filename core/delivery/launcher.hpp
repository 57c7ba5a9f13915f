// Local delivery: starting the delivery agent for a batch of envelopes.
//
// The daemon never delivers in its own process. For each Job it starts
// `postern-local` (see postern-local.cpp), which loads the action's plugin,
// with each message on a descriptor of its own (3, 4, ...). A root daemon
// starts it as root and it becomes the recipient's uid/gid itself (--as)
// once the plugin is loaded. The agent reports one
// Result per delivery (delivery/result.hpp) in frames on a pipe of its own
// (--result-fd), never on its stdout, which it points at its stderr before
// the plugin loads: nothing a plugin prints can pass for a result. The
// agent runs as the recipient, so every field it reports is checked. A
// delivery without a result (the agent crashed, timed out or could not load
// its plugin) is a temporary failure: mail is never lost because an agent died.
//
// Two launchers: SpawnLauncher starts agents itself (used by an unprivileged
// daemon, and by the privileged parent of a root daemon); PrivClient asks the
// privileged parent to do it (used by the unprivileged SMTP process).
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "delivery/result.hpp"

namespace postern::delivery {

// One message to deliver, within a Job.
struct Item {
    std::string sender;  // "" for <>
    std::string rcpt;    // as given in RCPT TO
    std::string dest;    // final recipient
    std::string
        path;  // maildir/mbox path or mda command: a template (delivery/format.hpp); relay: the route; "" = default
    std::string msgid;
    std::string message_path;  // spooled message
    // DSN parameters for a relay to pass on (RFC 3461), as they go on the
    // wire: "RET=HDRS ENVID=xtext" and "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;xtext".
    std::string mail_params, rcpt_params;
};

// Deliveries that share a plugin and an account: one agent run.
struct Job {
    std::string method;   // plugin name: "maildir", "mbox", "mda"
    std::string user;     // local user to deliver as
    std::string account;  // "uid:gid:home" from expansion; "" = look `user` up in the system
    std::string options;  // "junk", ...
    // `mda wrapper NAME "COMMAND"`'s command, for an action with `wrapper
    // NAME`: each mda item's command is run inside it (delivery/format.hpp
    // wrap_command); "" = none. Other methods ignore it.
    std::string wrapper;
    // More option words the agent must not show in its argv (relay
    // credentials): written to a pipe the agent reads (--secret-fd).
    std::string secret;
    std::vector<Item> items;
};

// One result per item, in the items' order.
using Done = std::function<void(std::vector<Result>)>;

class Launcher {
public:
    virtual ~Launcher() = default;
    virtual void launch(const Job& job, Done done) = 0;
};

struct SpawnOptions {
    std::string agent;  // path of postern-local
    std::string plugin_dir;
    std::string mbox_dir;      // mbox path default folder ("/var/mail")
    bool switch_user = false;  // root: run the agent as the recipient
    char subaddr_delim = '+';  // `smtp sub-addr-delim`, for %{...:strip}
    // Set in a root parent: messages are opened only beneath this folder,
    // without following links (the spool belongs to the unprivileged user).
    std::string spool_dir;
};

class SpawnLauncher final : public Launcher {
public:
    SpawnLauncher(uv_loop_t* loop, SpawnOptions options);
    void launch(const Job& job, Done done) override;

private:
    uv_loop_t* loop_;
    SpawnOptions options_;
};

// The agent beside the running executable (build tree) or the installed one.
std::string default_agent_path();

}  // namespace postern::delivery
