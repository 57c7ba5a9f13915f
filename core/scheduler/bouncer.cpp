// Delivery status reports; see bouncer.hpp.
#include "scheduler/bouncer.hpp"

#include <unistd.h>

#include <ctime>

#include "rules/recipient.hpp"
#include "smtp/dsn_params.hpp"
#include "util/fd.hpp"

namespace postern::scheduler {
namespace {

bool read_all(int fd, std::string* out) {
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out->append(buf, static_cast<size_t>(n));
    return n == 0;
}

}  // namespace

bounce::RecipientReport recipient_report(bounce::Kind kind, const Outcome& o) {
    bounce::RecipientReport rr;
    rr.final_recipient = o.envelope.dest;
    rr.original_recipient = o.envelope.dsn_orcpt;
    rr.status = o.status;
    const delivery::Result::Remote& remote = o.result.remote;
    if (remote.code != 0) {
        rr.remote_mta = remote.host;
        rr.diagnostic = std::to_string(remote.code) + (remote.reply.empty() ? "" : " " + remote.reply);
    } else {
        rr.diagnostic = o.result.text;  // a local reason (connection refused, mailbox full ...)
    }
    rr.relayed = o.relayed;
    rr.last_attempt = o.envelope.last_try ? o.envelope.last_try : std::time(nullptr);
    if (kind == bounce::Kind::Delayed) rr.will_retry_until = o.envelope.expire;
    return rr;
}

Bouncer::Bouncer(const config::Config& config, const rules::Ruleset& rules, table::Registry& tables,
                 queue::Store& store, std::string hostname)
    : config_(config), rules_(rules), tables_(tables), store_(store), hostname_(std::move(hostname)) {}

bool Bouncer::wanted(const queue::Envelope& e, bounce::Kind kind) {
    if (e.bounce >= 2) return false;                         // a report to the postmaster is the end of the line
    if (e.bounce == 1) return kind == bounce::Kind::Failed;  // a failed report goes to the postmaster
    if (e.sender.empty()) return false;                      // the client's null sender: nobody to tell
    unsigned n = e.dsn_notify;
    if (n & smtp::NotifyNever) return false;
    switch (kind) {
    case bounce::Kind::Failed: return n == 0 || (n & smtp::NotifyFailure);
    case bounce::Kind::Delayed: return n == 0 || (n & smtp::NotifyDelay);
    case bounce::Kind::Delivered: return n & smtp::NotifySuccess;
    }
    return false;
}

bool Bouncer::report(bounce::Kind kind, const std::vector<Outcome>& outcomes, std::vector<queue::Envelope>* queued,
                     std::string* log) {
    if (outcomes.empty()) return true;
    const queue::Envelope& first = outcomes.front().envelope;
    std::string to = first.bounce == 1 ? "postmaster@" + hostname_ : first.sender;

    std::string original, err;
    util::Fd fd(store_.open_message(first.msgid, &err));
    if (!fd || !read_all(fd.get(), &original)) {
        *log = "cannot read message " + first.msgid + " for its report: " + err;
        return false;
    }

    bounce::Report r;
    r.kind = kind;
    r.reporting_mta = hostname_;
    r.sender = to;
    r.envid = first.dsn_envid;
    r.arrival = first.ctime;
    r.return_full = first.dsn_ret == "full";
    std::vector<bounce::RecipientReport> rcpts;
    for (const auto& o : outcomes) rcpts.push_back(recipient_report(kind, o));
    std::string dsn = bounce::build_dsn(r, rcpts, original, hostname_);

    // Route the report like mail this host sends itself, from <>.
    rules::Subject s;
    s.from_local = true;
    s.rcpt = to;
    auto at = to.rfind('@');
    s.rcpt_domain = at == std::string::npos ? "" : table::lowercase(to.substr(at + 1));
    rules::Resolution route = rules::resolve_recipient(config_, rules_, tables_, s,
                                                       at == std::string::npos ? to : to.substr(0, at));
    if (!route.accepted()) {
        *log = "report for " + first.msgid + " to <" + to + "> cannot be routed: " + std::to_string(route.code) + " " +
               route.text;
        return true;
    }

    queue::Store::Message m;
    m.msgid = store_.unused_message_id();
    m.data = std::move(dsn);
    std::int64_t now = std::time(nullptr);
    for (const auto& d : route.deliveries) {
        queue::Envelope e = rules::new_envelope(config_, d, m.msgid, now);
        e.rcpt = to;
        e.client = "local";
        e.hostname = hostname_;
        e.bounce = first.bounce + 1;
        m.envelopes.push_back(std::move(e));
    }
    std::vector<bool> ok;
    store_.commit({&m}, ok, &err);
    if (ok.empty() || !ok.front()) {
        *log = "cannot queue the report for " + first.msgid + ": " + err;
        return false;
    }
    *log = "report " + m.msgid + " for " + first.msgid + " queued for <" + to + ">";
    *queued = std::move(m.envelopes);
    return true;
}

}  // namespace postern::scheduler
