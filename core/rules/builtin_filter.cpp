// rules/builtin_filter.cpp — see builtin_filter.hpp.
#include "rules/builtin_filter.hpp"

namespace postern::rules {

config::Criterion builtin_criterion(const config::FilterCondition& c) {
    using K = config::FilterCondition::Kind;
    using C = config::Criterion::Kind;
    config::Criterion out{};
    out.regex = c.regex;
    out.table = c.table;
    switch (c.kind) {
    case K::Fcrdns:
    case K::Rdns: out.kind = C::FromRdns; break;
    case K::Src: out.kind = C::FromSrc; break;
    case K::Helo: out.kind = C::Helo; break;
    case K::Auth: out.kind = C::Auth; break;
    case K::MailFrom: out.kind = C::MailFrom; break;
    case K::RcptTo: out.kind = C::RcptTo; break;
    }
    return out;
}

Subject builtin_subject(const config::BuiltinFilter& f, Subject s, const std::string& param) {
    switch (f.phase) {
    case filter::Phase::Helo:
    case filter::Phase::Ehlo: s.helo = param; break;
    case filter::Phase::MailFrom: s.sender = param; break;
    case filter::Phase::RcptTo: s.rcpt = param; break;
    default: break;
    }
    return s;
}

Ruleset::Verdict test_builtin(const Ruleset& rules, const config::BuiltinFilter& f, const Subject& s,
                              const std::string& param, std::string* error) {
    // fcrdns alone is not a match criterion: the session knows the answer.
    const Ruleset::Verdict v = f.condition.kind == config::FilterCondition::Kind::Fcrdns
                                   ? (s.fcrdns && !s.rdns.empty() ? Ruleset::Verdict::Yes : Ruleset::Verdict::No)
                                   : rules.test(builtin_criterion(f.condition), builtin_subject(f, s, param), error);
    if (v == Ruleset::Verdict::TempFail) return v;
    return (v == Ruleset::Verdict::Yes) != f.condition.negated ? Ruleset::Verdict::Yes : Ruleset::Verdict::No;
}

}  // namespace postern::rules
