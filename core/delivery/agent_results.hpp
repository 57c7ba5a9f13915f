// delivery/agent_results.hpp — reading one batch's results as its agent
// reports them, and the reason the deliveries it did not report fail with.
//
// The agent runs as the recipient, so nothing it sends is believed before
// it is checked: a frame holds a delivery's index within the batch, then the
// result's fields (delivery/result.hpp). A field it may not send fails that
// delivery (temporarily: it may have been made); bytes that are no such
// frame, an index outside the batch or a second result for one delivery make
// the agent garbled, and nothing more it sends is read. postern-local itself
// never sends either. A delivery without a result (the agent died, timed out
// or could not load its plugin) is a temporary failure: mail is never lost
// because an agent died.
//
// Shared by the agent run once per batch (agent_run.hpp) and the agents that
// live on (living_agent.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "delivery/result.hpp"

namespace postern::delivery {

class BatchResults {
public:
    explicit BatchResults(std::size_t deliveries) : got_(deliveries) {}

    // Takes every whole frame off the front of `in` (the index of each
    // result taken appended to `taken`, when given). False once the agent
    // has sent something that is no result of this batch: stop reading it.
    bool take(std::string& in, std::vector<std::size_t>* taken = nullptr);
    const Result& result(std::size_t index) const { return *got_[index]; }  // one that `take` reported
    bool complete() const { return have_ == got_.size(); }
    // The results in order; each delivery without one fails temporarily with `why`.
    std::vector<Result> finish(const std::string& why);

private:
    std::vector<std::optional<Result>> got_;
    std::size_t have_ = 0;
};

// How an agent ended.
struct AgentEnd {
    bool timed_out = false;  // we killed it: its batch took too long
    bool garbled = false;    // it sent what is no result
    std::string cause;       // else why we ended it, when it was for a reason of our own
    int64_t exit_status = 0;
    int term_signal = 0;
    std::string err;  // what it wrote on stderr: its last line is its last word
};

// The reason its deliveries without a result fail with: one short line, so
// that the reply to the other process fits its frame whatever the agent wrote.
std::string failure_reason(const AgentEnd& end);

}  // namespace postern::delivery
