// delivery/batch.hpp — a batch made ready for a delivery agent: what the
// launcher (launcher.cpp) makes of a Job once the account is known, each
// message is open and each path is expanded, and what an agent is given,
// either in its argv when it starts (agent_spawn.hpp) or later on its
// channel (agent_channel.hpp, agent_pool.hpp).
//
// An agent runs as its recipient, so which batches it may take is a matter
// of security: only those whose identity (identity()) is exactly the one it
// was started with. The identity holds everything the agent was started
// with and keeps (plugin, user, home, uid/gid, options, secret) and the
// wrapper the launcher used for its commands.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "delivery/agent_channel.hpp"
#include "delivery/result.hpp"
#include "util/fd.hpp"
#include "util/frame.hpp"

namespace postern::delivery {

struct BatchItem {
    util::Fd message;  // opened by the launcher (under the spool's checks: launcher.cpp)
    channel::Item fields;
    bool create_mbox = false;  // a default mailbox, made by the agent while it is root
};

struct Batch {
    std::string method, user, home;
    std::string options;                        // as the agent gets them (with subaddr-delim= for a command)
    std::string secret;                         // more option words, passed on a pipe, never in argv
    std::string wrapper;                        // the mda wrapper the commands were put in (identity only)
    std::optional<std::pair<uid_t, gid_t>> as;  // a root daemon: the agent becomes this for good
    std::chrono::milliseconds time_limit{0};
    std::vector<BatchItem> items;
    // Each item's result (by its index in `items`) as soon as its agent
    // reports it, before the batch's BatchDone (launcher.hpp, Job::progress).
    std::function<void(std::size_t, const Result&)> progress;

    // Whether the agent must stay root for this batch's own sake: a mailbox
    // to make for it, which only root may (postern-local.cpp). An agent that
    // has served a batch is root no more.
    bool needs_root() const {
        for (const auto& item : items)
            if (item.create_mbox) return true;
        return false;
    }

    // Equal for two batches exactly when one agent may serve both.
    std::string identity() const {
        std::string ids = as ? std::to_string(as->first) + ":" + std::to_string(as->second) : std::string("-");
        return util::encode_frame({method, user, home, options, secret, wrapper, ids});
    }
};

// Where a batch goes, as far as an agent's kept connections go: the path of
// its first delivery (a relay's route; the scheduler batches one route's
// deliveries together). "" for an empty batch.
inline const std::string& route_of(const Batch& batch) {
    static const std::string none;
    return batch.items.empty() ? none : batch.items.front().fields.path;
}

// One result per item of the batch, in its order.
using BatchDone = std::function<void(std::vector<Result>)>;

}  // namespace postern::delivery
