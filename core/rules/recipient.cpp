// From one RCPT TO to its deliveries; see recipient.hpp.
#include "rules/recipient.hpp"

#include <algorithm>
#include <ctime>

#include "delivery/kind.hpp"
#include "expand/expand.hpp"
#include "relay/srs.hpp"

namespace postern::rules {
namespace {

std::string account_of(const expand::UserInfo& u) {
    return std::to_string(u.uid) + ":" + std::to_string(u.gid) + ":" + u.home;
}

Resolution refuse(int code, std::string text, std::string log = {}) {
    Resolution r;
    r.code = code;
    r.text = std::move(text);
    r.log = std::move(log);
    return r;
}

table::Table* table_named(table::Registry& tables, const std::string& name) {
    return name.empty() ? nullptr : tables.find(name);
}

bool same(const PlannedDelivery& a, const PlannedDelivery& b) {
    return a.action == b.action && a.dest == b.dest && a.user == b.user && a.method == b.method && a.path == b.path;
}

}  // namespace

queue::Envelope new_envelope(const config::Config& config, const PlannedDelivery& d, const std::string& msgid,
                             std::int64_t now) {
    queue::Envelope e;
    e.msgid = msgid;
    e.id = queue::new_envelope_id(msgid);
    e.action = d.action;
    e.dest = d.dest;
    e.user = d.user;
    e.method = d.method;
    e.path = d.path;
    e.account = d.account;
    e.extension = d.extension;
    e.ctime = now;
    const config::Action* a = config.find_action(d.action);
    e.expire = now + (a && a->ttl ? a->ttl->count() : config.queue_ttl.count());
    return e;
}

Resolution resolve_recipient(const config::Config& config, const rules::Ruleset& rules, table::Registry& tables,
                             const rules::Subject& subject, const std::string& local, int depth,
                             const expand::ForwardReader* forward) {
    const std::string& rcpt = subject.rcpt;
    if (!config.srs_key.empty() && rules.is_local_domain(subject.rcpt_domain)) {
        // A bounce to an address `relay srs` made: back to the original sender,
        // sent on as this host's own mail, since the hash proves we made it.
        std::string original;
        auto r = relay::srs_reverse(rcpt, {config.srs_key, config.srs_backup_key}, std::time(nullptr),
                                    static_cast<int>(config.srs_ttl.count() / 86400), &original);
        if (r == relay::SrsResult::Ok && depth > 1) {
            rules::Subject next = subject;
            next.from_local = true;
            next.from_socket = false;
            next.rcpt = original;
            auto at = original.rfind('@');
            next.rcpt_domain = at == std::string::npos ? "" : original.substr(at + 1);
            return resolve_recipient(config, rules, tables, next, original.substr(0, at), depth - 1, forward);
        }
        if (r != relay::SrsResult::NotSrs)
            return refuse(550, "5.7.1 <" + rcpt + ">: Invalid SRS address",
                          "srs " + std::string(relay::srs_result_name(r)));
    }
    rules::Decision d = rules.evaluate(subject);
    switch (d.kind) {
    case rules::Decision::Kind::TempFail: return refuse(451, "4.3.0 <" + rcpt + ">: Temporary lookup failure", d.error);
    case rules::Decision::Kind::Reject: return refuse(550, "5.7.1 <" + rcpt + ">: Recipient address rejected");
    case rules::Decision::Kind::NoMatch: return refuse(550, "5.7.1 <" + rcpt + ">: Relay access denied");
    case rules::Decision::Kind::Deliver: break;
    }
    const config::Action& action = *d.action;
    if (delivery::kind_of(action.method) == delivery::Kind::Relay) {
        // Mail for another server: nothing to expand; the relay runs unprivileged.
        Resolution out;
        out.deliveries.push_back(PlannedDelivery{action.name, rcpt, kRelayUser, "", "", "", ""});
        return out;
    }

    expand::Request req;
    req.local = local;
    req.domain = subject.rcpt_domain;
    req.alias = table_named(tables, action.alias_table);
    req.virtual_ = table_named(tables, action.virtual_table);
    req.userbase = table_named(tables, action.userbase_table);
    req.as_user = action.user;
    req.subaddr_delim = config.sub_addr_delim;
    req.max_depth = depth;
    if (forward) req.forward = *forward;
    req.forward_only = action.method == "forward-only";
    req.expand_only = action.method == "expand-only";
    expand::Result ex = expand::expand(req);
    if (ex.status != expand::Status::Ok) return refuse(ex.code, ex.error, ex.log);

    Resolution out;
    out.warnings = std::move(ex.warnings);
    for (const auto& dest : ex.dests) {
        if (dest.kind == expand::Destination::Kind::Address) {
            // An alias to an address: matched again as mail this host sends itself.
            if (depth <= 1)
                return refuse(550, "5.2.4 <" + rcpt + ">: Mailing list expansion problem", "expansion too deep");
            rules::Subject next = subject;
            next.from_local = true;
            next.from_socket = false;
            next.rcpt = dest.value;
            auto at = dest.value.rfind('@');
            next.rcpt_domain = at == std::string::npos ? "" : dest.value.substr(at + 1);
            Resolution inner = resolve_recipient(config, rules, tables, next,
                                                 at == std::string::npos ? dest.value : dest.value.substr(0, at),
                                                 depth - 1, forward);
            if (!inner.accepted()) {
                // The client asked for `rcpt`: its alias target's trouble is reported against it.
                if (inner.code / 100 == 4)
                    return refuse(451, "4.3.0 <" + rcpt + ">: Temporary lookup failure", inner.log);
                return refuse(550, "5.2.4 <" + rcpt + ">: Mailing list expansion problem",
                              "alias target " + dest.value + ": " + inner.text +
                                  (inner.log.empty() ? "" : " (" + inner.log + ")"));
            }
            for (auto& del : inner.deliveries) out.deliveries.push_back(std::move(del));
            for (auto& w : inner.warnings) out.warnings.push_back(std::move(w));
            continue;
        }
        PlannedDelivery del;
        del.action = action.name;
        del.dest = rcpt;
        del.user = dest.kind == expand::Destination::Kind::User ? dest.user.name : dest.run_as.name;
        del.account = account_of(dest.run_as);
        del.extension = dest.extension;
        if (dest.kind == expand::Destination::Kind::File) {
            del.method = delivery::method::kMbox;
            del.path = dest.value;
        } else if (dest.kind == expand::Destination::Kind::Command) {
            del.method = delivery::method::kMda;
            del.path = dest.value;
        }
        out.deliveries.push_back(std::move(del));
    }
    // Two aliases reaching the same place deliver once.
    std::vector<PlannedDelivery> unique;
    for (auto& del : out.deliveries)
        if (std::none_of(unique.begin(), unique.end(), [&](const PlannedDelivery& u) { return same(u, del); }))
            unique.push_back(std::move(del));
    out.deliveries = std::move(unique);
    if (out.deliveries.empty())
        return refuse(550, "5.2.4 <" + rcpt + ">: Mailing list expansion problem", "expansion left nothing");
    return out;
}

}  // namespace postern::rules
