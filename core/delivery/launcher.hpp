// Local delivery: starting delivery agents for batches of envelopes.
//
// The daemon never delivers in its own process. For each Job it opens each
// message, expands each path and gives the batch to `postern-local` (see
// postern-local.cpp), which loads the action's plugin, with each message on
// a descriptor of its own. A root daemon starts the agent as root and it
// becomes the recipient's uid/gid itself (--as) once the plugin is loaded.
// The agent reports one Result per delivery (delivery/result.hpp) in frames
// on a descriptor of its own (--result-fd), never on its stdout, which it
// points at its stderr before the plugin loads: nothing a plugin prints can
// pass for a result. The agent runs as the recipient, so every field it
// reports is checked (agent_results.hpp). A delivery without a result (the
// agent crashed, timed out or could not load its plugin) is a temporary
// failure: mail is never lost because an agent died.
//
// Agents live on (agent_pool.hpp): one serves batch after batch of one
// identity (method, user, account, options, wrapper, secret), so that a
// busy queue does not pay a process start per batch, and a relay keeps its
// connections open between batches. Some batches still get an agent of
// their own that ends with them (agent_run.hpp): those whose agent must be
// root (a mailbox to make that is not there yet), and all of them with
// `keep_agents` off.
//
// Two launchers: SpawnLauncher starts agents itself (used by the parent
// process of the daemon, root or not); PrivClient asks that parent to do
// it (used by the serving process).
#pragma once

#include <uv.h>

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "delivery/result.hpp"
#include "queue/message_codec.hpp"

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
    // An alias's or a .forward's file or command (path), not the action's
    // own delivery: the root parent takes the path from the request only
    // for these (delivery/rederive.hpp).
    bool expanded = false;
};

// Deliveries that share a plugin and an account: one agent run.
struct Job {
    std::string action;   // the configuration's action, by name
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
    // Called with an item's index and its result as soon as the agent
    // reports it, before `Done` (which still gets every result): a result
    // handed on at once is one a crash of the daemon cannot throw away (the
    // delivery would be made again). May be empty. Never sent to the parent.
    std::function<void(std::size_t, const Result&)> progress;
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
    // Agents serve many batches each (agent_pool.hpp); false: a process per batch.
    bool keep_agents = true;
    // How the spool's messages are kept (`queue compression`/`encryption`):
    // an agent gets each message decoded (queue/message_codec.hpp).
    queue::AtRest at_rest{};
};

class AgentPool;
struct Batch;

class SpawnLauncher final : public Launcher {
public:
    SpawnLauncher(uv_loop_t* loop, SpawnOptions options);
    // The agents kept end: idle ones at once, busy ones after their batch,
    // whose results nobody takes any more.
    ~SpawnLauncher() override;
    SpawnLauncher(const SpawnLauncher&) = delete;
    SpawnLauncher& operator=(const SpawnLauncher&) = delete;

    void launch(const Job& job, Done done) override;
    // No more jobs will come (the serving process drains or has gone): the
    // agents kept end as soon as they are idle.
    void retire();
    // Agents alive now that serve many batches (tests).
    std::size_t living_agents() const;

private:
    void dispatch(Batch batch, std::function<void(std::vector<Result>)> done);

    uv_loop_t* loop_;
    SpawnOptions options_;
    std::unique_ptr<AgentPool> pool_;
    // Expires with the launcher: a look at the disk that ends after it finds no launcher.
    std::shared_ptr<char> alive_ = std::make_shared<char>();
};

// The agent beside the running executable (build tree) or the installed one.
std::string default_agent_path();

}  // namespace postern::delivery
