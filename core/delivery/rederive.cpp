// A child's delivery request made the parent's own; see rederive.hpp.
#include "delivery/rederive.hpp"

#include <algorithm>

#include "delivery/kind.hpp"

namespace postern::delivery {
namespace {

// "uid:gid:home" with uid or gid 0 (the format launcher.cpp reads).
bool names_root(const std::string& account) {
    auto c1 = account.find(':');
    if (c1 == std::string::npos) return false;
    auto c2 = account.find(':', c1 + 1);
    auto zero = [](std::string_view t) { return !t.empty() && t.find_first_not_of('0') == std::string_view::npos; };
    return zero(std::string_view(account).substr(0, c1)) ||
           (c2 != std::string::npos && zero(std::string_view(account).substr(c1 + 1, c2 - c1 - 1)));
}

}  // namespace

std::string rederive(const config::Config& config, Job* job) {
    const config::Action* action = config.find_action(job->action);
    if (!action) return "no action named \"" + job->action + "\" in the configuration";
    const Kind kind = kind_of(action->method);

    if (kind == Kind::Relay) {
        if (job->method != action->method) return "action " + action->name + " relays";
        if (std::any_of(job->items.begin(), job->items.end(), [](const Item& i) { return i.expanded; }))
            return "action " + action->name + " relays, it expands nothing";
        job->user = kRelayAgentUser;
        job->account.clear();
        job->wrapper.clear();
        return "";
    }

    bool own = false, expanded = false;
    for (const Item& i : job->items) (i.expanded ? expanded : own) = true;
    if (own && job->method != action->method)
        return "action " + action->name + " delivers by " + action->method + ", not " + job->method;
    if (expanded) {
        if (job->method != method::kMbox && job->method != method::kMda)
            return "an expansion makes files and commands only, not " + job->method;
        if (names_root(job->account)) return "refusing to run a file or command of an expansion as uid/gid 0";
        if (job->account.empty()) return "a file or command of an expansion needs its account";
    }
    job->options.clear();
    if (job->method == action->method) job->options = action->junk ? "junk" : action->lmtp_rcpt_to ? "rcpt-to" : "";
    job->secret.clear();
    job->wrapper.clear();
    if (!action->wrapper.empty()) {
        auto w = config.mda_wrappers.find(action->wrapper);
        if (w == config.mda_wrappers.end()) return "no mda wrapper named \"" + action->wrapper + "\"";
        job->wrapper = w->second;
    }
    for (Item& i : job->items) {
        if (!i.expanded) {
            i.path = action->path;
        } else if (i.path.empty() || (job->method == method::kMbox && i.path[0] != '/')) {
            return "an expansion's " + std::string(job->method == method::kMbox ? "file" : "command") +
                   " must be given" + (job->method == method::kMbox ? " as an absolute path" : "");
        }
    }
    return "";
}

}  // namespace postern::delivery
