// Delivery status reports (bounces) for envelopes whose fate is known.
//
// Runs on the scheduler's spool worker, in order with the removal of the
// envelopes it reports on: the report is committed to the queue before the
// original envelopes leave it, so a crash in between means a second report
// attempt, never a lost one. A report goes to the original sender with the
// null sender <>; a report that cannot be delivered itself goes once to the
// postmaster, and no report is ever sent about a report to the postmaster.
#pragma once

#include <string>
#include <vector>

#include "bounce/dsn.hpp"
#include "config/config.hpp"
#include "delivery/result.hpp"
#include "queue/envelope.hpp"
#include "queue/store.hpp"
#include "rules/ruleset.hpp"
#include "table/registry.hpp"

namespace postern::scheduler {

// What happened to one envelope, for its report.
struct Outcome {
    queue::Envelope envelope;
    std::string status;       // enhanced status code, "5.1.1"
    delivery::Result result;  // the delivery's result: its text, the remote server and its reply
    bool relayed = false;     // delivered to a server that does not report further (Action: relayed)
};

class Bouncer {
public:
    Bouncer(const config::Config& config, const rules::Ruleset& rules, table::Registry& tables, queue::Store& store,
            std::string hostname);

    // Build, route and commit one report about `outcomes` (one message, one
    // kind); the new envelopes to schedule go to `queued`. False when the
    // report could not be written (the caller keeps the originals queued so
    // it is tried again); true when it is queued or cannot be routed at all
    // (`log` says which). Blocking.
    bool report(bounce::Kind kind, const std::vector<Outcome>& outcomes, std::vector<queue::Envelope>* queued,
                std::string* log);

    // Whether the sender asked for (or, by default, gets) a report of this kind.
    static bool wanted(const queue::Envelope& e, bounce::Kind kind);

private:
    const config::Config& config_;
    const rules::Ruleset& rules_;
    table::Registry& tables_;
    queue::Store& store_;
    std::string hostname_;
};

// One recipient's part of a report, from its outcome: a reply from the
// remote server is quoted with its name (Remote-MTA, Diagnostic-Code "550
// 5.1.1 ..."); any other result gives its text.
bounce::RecipientReport recipient_report(bounce::Kind kind, const Outcome& o);

}  // namespace postern::scheduler
