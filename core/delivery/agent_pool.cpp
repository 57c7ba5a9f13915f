// The pool of living agents; see agent_pool.hpp.
#include "delivery/agent_pool.hpp"

#include <algorithm>

namespace postern::delivery {

void AgentPool::run(Batch batch, BatchDone done) {
    const std::string identity = batch.identity();
    // First an idle agent whose last batch went the same way (a relay's
    // connection to that route may still be open in it), then any idle one.
    for (bool same_route : {true, false}) {
        for (std::size_t k = 0; k < agents_.size(); ++k) {
            LivingAgent& a = *agents_[k];
            if (!a.idle() || a.identity() != identity || (same_route && a.last_route() != route_of(batch))) continue;
            // give() may end an agent whose channel failed, never remove it here.
            if (a.give(batch, done)) return;
        }
    }
    LivingAgent::Hooks hooks{[this](LivingAgent& a) { became_idle(a); }, [this](LivingAgent& a) { ended(a); }};
    agents_.push_back(std::make_unique<LivingAgent>(loop_, options_, identity, std::move(hooks)));
    agents_.back()->start(std::move(batch), std::move(done));  // may end (and remove) it at once
}

void AgentPool::retire() {
    retired_ = true;
    for (auto& a : agents_)
        if (a->idle()) a->end();
}

std::size_t AgentPool::idle_agents() const {
    return static_cast<std::size_t>(
        std::count_if(agents_.begin(), agents_.end(), [](const auto& a) { return a->idle(); }));
}

void AgentPool::became_idle(LivingAgent& agent) {
    if (retired_ || agent.batches() >= kMaxAgentBatches) return agent.end();
    while (idle_agents() > kMaxIdleAgents) {
        auto oldest = std::min_element(agents_.begin(), agents_.end(), [](const auto& a, const auto& b) {
            if (a->idle() != b->idle()) return a->idle();
            return a->idle_since() < b->idle_since();
        });
        (*oldest)->end();
    }
}

void AgentPool::ended(LivingAgent& agent) {
    auto it = std::find_if(agents_.begin(), agents_.end(), [&](const auto& a) { return a.get() == &agent; });
    if (it != agents_.end()) agents_.erase(it);
}

}  // namespace postern::delivery
