// Rule evaluation; see ruleset.hpp.
#include "rules/ruleset.hpp"

#include <regex.h>

#include <memory>

namespace postern::rules {

using config::Criterion;
using Kind = Criterion::Kind;

Ruleset::Ruleset(const config::Config& config, table::Registry& tables, std::vector<std::string> localnames)
    : config_(config), tables_(tables), localnames_(std::move(localnames)) {
    for (auto& n : localnames_) n = table::lowercase(n);
}

bool Ruleset::is_local_domain(std::string_view domain) const {
    std::string d = table::lowercase(domain);
    if (d.empty()) return true;  // an unqualified address is qualified with our name
    for (const auto& n : localnames_)
        if (n == d) return true;
    return false;
}

namespace {

// POSIX extended regex; "(?i)" at the start asks for case-insensitive matching.
bool regex_matches(std::string_view pattern, std::string_view subject) {
    int flags = REG_EXTENDED | REG_NOSUB;
    if (pattern.substr(0, 4) == "(?i)") {
        pattern.remove_prefix(4);
        flags |= REG_ICASE;
    }
    regex_t re;
    if (regcomp(&re, std::string(pattern).c_str(), flags) != 0) return false;
    std::unique_ptr<regex_t, decltype(&regfree)> guard(&re, regfree);
    return regexec(&re, std::string(subject).c_str(), 0, nullptr, 0) == 0;
}

}  // namespace

Ruleset::Verdict Ruleset::test_value(const Criterion& c, table::Service service, std::string_view subject,
                                     std::string* error) const {
    if (c.table.empty()) {
        bool m = c.regex ? regex_matches(c.value, subject) : table::entry_matches(service, c.value, subject);
        return m ? Verdict::Yes : Verdict::No;
    }
    table::Table* t = tables_.find(c.table);
    if (!t) {
        *error = "table '" + c.table + "' is not open";
        return Verdict::TempFail;
    }
    if (c.regex) {
        bool found = false;
        auto r = t->for_each(
            [&](std::string_view key, std::string_view) {
                found = regex_matches(key, subject);
                return !found;
            },
            error);
        if (r == table::Result::TempFail) return Verdict::TempFail;
        return found ? Verdict::Yes : Verdict::No;
    }
    switch (t->match(service, subject, error)) {
    case table::Result::Found: return Verdict::Yes;
    case table::Result::NotFound: return Verdict::No;
    case table::Result::TempFail: return Verdict::TempFail;
    }
    return Verdict::TempFail;
}

Ruleset::Verdict Ruleset::test(const Criterion& c, const Subject& s, std::string* error) const {
    switch (c.kind) {
    case Kind::FromAny: return Verdict::Yes;
    case Kind::FromLocal: return (s.from_socket || s.from_local) ? Verdict::Yes : Verdict::No;
    case Kind::FromSocket: return s.from_socket ? Verdict::Yes : Verdict::No;
    case Kind::FromSrc:
        // OpenSMTPD's source key for the socket is "local", which <localhost>
        // and <anyhost> hold: only an entry written "local" matches it.
        if (s.from_socket) return test_value(c, table::Service::String, "local", error);
        return test_value(c, table::Service::Netaddr, s.client_ip, error);
    case Kind::FromRdns:
        // No verified name matches nothing, not even a pattern like "*".
        if (s.rdns.empty()) return Verdict::No;
        if (c.value.empty() && c.table.empty()) return Verdict::Yes;  // bare `from rdns`
        return test_value(c, table::Service::Domain, table::lowercase(s.rdns), error);
    case Kind::Helo:
        if (s.helo.empty()) return Verdict::No;
        return test_value(c, table::Service::Domain, table::lowercase(s.helo), error);
    case Kind::Auth:
    case Kind::FromAuth:
        // `auth` and `from auth` test the same thing: an authenticated session
        // (the local enqueuer counts), whatever its address; with a value or a
        // table, authenticated as a user listed there.
        if (!s.authenticated && !s.from_socket) return Verdict::No;
        if (c.value.empty() && c.table.empty()) return Verdict::Yes;
        if (s.auth_user.empty()) return Verdict::No;
        return test_value(c, table::Service::String, s.auth_user, error);
    case Kind::ForAny: return Verdict::Yes;
    case Kind::ForLocal: return is_local_domain(s.rcpt_domain) ? Verdict::Yes : Verdict::No;
    case Kind::ForDomain: return test_value(c, table::Service::Domain, s.rcpt_domain, error);
    case Kind::ForRcptTo:
    case Kind::RcptTo: return test_value(c, table::Service::Mailaddr, s.rcpt, error);
    case Kind::MailFrom:
    case Kind::FromMailFrom: return test_value(c, table::Service::Mailaddr, s.sender, error);
    case Kind::Tls: return s.tls ? Verdict::Yes : Verdict::No;
    case Kind::Tag: return test_value(c, table::Service::String, s.tag, error);
    }
    return Verdict::No;
}

Decision Ruleset::evaluate(const Subject& s) const {
    Decision d;
    for (const auto& rule : config_.rules) {
        bool all = true;
        for (const auto& c : rule.criteria) {
            Verdict v = test(c, s, &d.error);
            if (v == Verdict::TempFail) {
                d.kind = Decision::Kind::TempFail;
                d.rule = &rule;
                return d;
            }
            bool yes = (v == Verdict::Yes) != c.negated;
            if (!yes) {
                all = false;
                break;
            }
        }
        if (!all) continue;
        d.rule = &rule;
        if (rule.reject) {
            d.kind = Decision::Kind::Reject;
        } else {
            d.kind = Decision::Kind::Deliver;
            d.action = config_.find_action(rule.action);
        }
        return d;
    }
    return d;
}

}  // namespace postern::rules
