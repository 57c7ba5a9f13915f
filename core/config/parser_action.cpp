// action: the local methods and their options, mda commands, lmtp
// destinations, and the relay options with their combinations.
#include "config/parser_impl.hpp"
#include "delivery/format.hpp"

namespace postern::config::detail {

namespace {

// Where byte `offset` of a token's value sits in the file: exact when the
// value was written as it reads, else the token's own start (escapes and
// `\`+newline splices move the bytes, a macro's value is not in the file).
Location location_in(const Token& t, std::size_t offset) {
    Location at = t.where;
    const std::size_t quotes = t.kind == Token::Kind::String ? 2 : 0;
    if (t.length > 0 && static_cast<std::size_t>(t.length) == t.text.size() + quotes)
        at.column += static_cast<int>(offset + quotes / 2);
    return at;
}

// A maildir path or mda command is a format template (delivery/format.hpp):
// an unknown %{name}, modifier or slice would fail every delivery through
// the action, so `posternd -n` says so instead.
std::optional<Diagnostic> template_error(const Token& t, delivery::FormatUse use) {
    auto e = delivery::check_format(t.text, use);
    if (!e) return std::nullopt;
    return Diagnostic{location_in(t, e->offset), e->text};
}

}  // namespace

bool Parser::parse_action(Cursor& c) {
    const Location at = c.take().where;
    if (!c.value()) return expected(c, "an action name after 'action'");
    const Token& name = c.take();
    Action a;
    a.name = name.text;
    a.where = at;
    bool ok = true;
    if (const Action* prev = cfg_.find_action(a.name)) {
        error_at(name.where,
                 "action " + quote(a.name) + " is declared twice (first at " + where_text(prev->where) + ")");
        ok = false;
    } else if (broken_actions_.count(a.name)) {
        error_at(name.where, "action " + quote(a.name) + " is declared twice");
        ok = false;
    }
    const std::size_t errors_before = errors_.size();
    if (ok) ok = parse_action_options(c, a) && errors_.size() == errors_before;
    if (!ok) {
        broken_actions_.insert(a.name);
        return false;
    }
    cfg_.actions.push_back(std::move(a));
    return true;
}

bool Parser::parse_action_options(Cursor& c, Action& a) {
    const std::string what =
        "an action method (mbox, maildir, mda, lmtp, forward-only, expand-only or relay) after action name " +
        quote(a.name);
    if (c.done() || c.peek()->kind != Token::Kind::Word) return expected(c, what);
    const Token& method = *c.peek();
    static constexpr std::string_view kMethods[] = {"mbox",         "maildir",     "mda",  "lmtp",
                                                    "forward-only", "expand-only", "relay"};
    if (!grammar::listed(kMethods, method.text)) return expected(c, what);
    a.method = c.take().text;
    if (a.method == "relay") return parse_relay_options(c, a);
    if (a.method == "mda" && !parse_mda_command(c, a)) return false;
    if (a.method == "lmtp" && !parse_lmtp_destination(c, a)) return false;

    static constexpr std::string_view kOptions[] = {"alias", "virtual", "userbase", "user", "wrapper", "ttl"};
    if (a.method == "maildir") {
        // maildir [PATH] [junk]: a quoted word is always a path, a bare one unless it is an option.
        if (c.value() && (c.peek()->kind == Token::Kind::String ||
                          (!c.word("junk") && !grammar::listed(kOptions, c.peek()->text) && !c.word("wrapper")))) {
            const Token& path = c.take();
            if (auto e = template_error(path, delivery::FormatUse::Path)) return fail(e->where, e->message);
            a.path = path.text;
        }
        if (c.word("junk")) {
            c.take();
            a.junk = true;
        }
    }

    std::set<std::string> seen;
    bool after_ttl = false;
    while (!c.done()) {
        const Token& opt = *c.peek();
        const std::string what_opt = "an action option (alias, virtual, userbase, user, wrapper, ttl)";
        if (opt.kind != Token::Kind::Word) return expected(c, what_opt);
        const std::string& w = opt.text;
        if (!grammar::listed(kOptions, w)) return expected(c, what_opt);
        if (!seen.insert(w).second) return fail(opt.where, quote(w) + " is given twice");
        if (after_ttl) return fail(opt.where, quote(w) + " must come before 'ttl'");
        c.take();
        if (w == "alias" || w == "virtual" || w == "userbase") {
            auto table = parse_table_ref(c, quote(w));
            if (!table) return false;
            (w == "alias" ? a.alias_table : w == "virtual" ? a.virtual_table : a.userbase_table) = *table;
            if (!a.alias_table.empty() && !a.virtual_table.empty())
                error_at(opt.where,
                         quote(w) + " cannot be used together with " + (w == "alias" ? "'virtual'" : "'alias'"));
        } else if (w == "user") {
            if (a.method == "mbox" || a.method == "forward-only" || a.method == "expand-only")
                return fail(opt.where, "'user' cannot be used with " + quote(a.method));
            if (!parse_value(c, "a user name after 'user'", a.user)) return false;
        } else if (w == "wrapper") {
            if (a.method == "forward-only" || a.method == "expand-only")
                return fail(opt.where, "'wrapper' cannot be used with " + quote(a.method));
            if (!c.value()) return expected(c, "an mda wrapper name after 'wrapper'");
            const Token& name = c.take();
            if (cfg_.mda_wrappers.find(name.text) == cfg_.mda_wrappers.end())
                return fail(name.where, "no mda wrapper named " + quote(name.text) +
                                            ": declare it first with mda wrapper " + quote(name.text) + " \"COMMAND\"");
            a.wrapper = name.text;
        } else {  // ttl
            std::chrono::seconds ttl{};
            if (!parse_delay_value(c, "'ttl'", ttl)) return false;
            a.ttl = ttl;
            after_ttl = true;
        }
    }
    return true;
}

// mda wrapper NAME "COMMAND": a command that runs every command of the
// actions naming it, where %{mda} stands for that command.
bool Parser::parse_mda_wrapper(Cursor& c) {
    c.take();
    if (c.word("limit")) return parse_mda_limit(c);
    if (!c.word("wrapper")) return expected(c, "'wrapper' or 'limit' after 'mda'");
    c.take();
    if (!c.value()) return expected(c, "a wrapper name after 'mda wrapper'");
    const Token& name = c.take();
    if (cfg_.mda_wrappers.count(name.text))
        return fail(name.where, "mda wrapper " + quote(name.text) + " is declared twice");
    if (!c.value())
        return expected(c, "a command after the wrapper name, quoted as in mda wrapper " + quote(name.text) +
                               " \"/usr/bin/env -i %{mda}\"");
    const Token& command = c.take();
    if (command.text.find_first_not_of(" \t") == std::string::npos)
        return fail(command.where, "the wrapper's command is empty");
    if (auto e = template_error(command, delivery::FormatUse::Wrapper)) return fail(e->where, e->message);
    cfg_.mda_wrappers.emplace(name.text, command.text);
    return end_of_line(c, "the wrapper's command");
}

// mda limit KEY N...: OpenSMTPD's local delivery limits (undocumented in
// smtpd.conf(5), read by its parser). postern's own bounds are fixed
// (scheduler.cpp: 32 local agent runs at once, 4 for one mailbox), so each
// key is read with a warning that says so.
bool Parser::parse_mda_limit(Cursor& c) {
    c.take();
    const std::string what = "max-session, max-session-per-user, task-hiwat, task-lowat or task-release";
    if (c.done()) return expected(c, what + " after 'mda limit'");
    while (!c.done()) {
        const Token& k = *c.peek();
        std::string instead;
        if (k.is_word("max-session"))
            instead = "postern runs at most 32 local delivery agents at once, each delivering up to 32 messages";
        else if (k.is_word("max-session-per-user"))
            instead = "postern runs at most 4 local delivery agents at once for one action and recipient account";
        else if (k.is_word("task-hiwat") || k.is_word("task-lowat") || k.is_word("task-release"))
            instead = "they pace OpenSMTPD's internal task queue, which postern does not have";
        else return expected(c, what);
        c.take();
        unsigned n = 0;
        if (!parse_limit_number(c, quote(k.text), n)) return false;
        warnings_.push_back(Diagnostic{k.where, "'mda limit " + k.text + "' has no effect in postern: " + instead});
    }
    return true;
}

// mda "COMMAND": the command line, run later by /bin/sh -c as the recipient.
// A bare reserved word (alias, ttl, ...) means the command was left out. The
// lexer has already refused control characters, so the text fits one argv.
bool Parser::parse_mda_command(Cursor& c, Action& a) {
    if (!c.value() || (c.peek()->kind == Token::Kind::Word && is_keyword(c.peek()->text)))
        return expected(c, "a command after 'mda', quoted as in mda \"/usr/bin/procmail -f -\"");
    const Token& command = c.take();
    if (command.text.find_first_not_of(" \t") == std::string::npos)
        return fail(command.where, "the 'mda' command is empty");
    if (auto e = template_error(command, delivery::FormatUse::Command)) return fail(e->where, e->message);
    a.path = command.text;
    return true;
}

// lmtp "HOST:PORT"|"/socket" [rcpt-to]
bool Parser::parse_lmtp_destination(Cursor& c, Action& a) {
    const std::string what = "an LMTP server after 'lmtp': a socket path or HOST:PORT, as in lmtp \"/var/run/lmtp\"";
    if (!c.value() || (c.peek()->kind == Token::Kind::Word && is_keyword(c.peek()->text))) return expected(c, what);
    const std::string& dest = c.peek()->text;
    if (dest.empty() || dest.front() != '/') {
        // HOST:PORT is a relay URL's host part: check it as lmtp://HOST:PORT.
        std::string why;
        if (dest.find("://") != std::string::npos || !parse_relay_url("lmtp://" + dest, why)) return expected(c, what);
    }
    a.path = c.take().text;
    if (c.word("rcpt-to")) {
        c.take();
        a.lmtp_rcpt_to = true;
    }
    return true;
}

// relay ... filter NAME | filter { a, b }: OpenSMTPD sends the report events
// of outgoing sessions to these filters (smtp-out, undocumented). postern's
// filters see incoming sessions only: the names are checked, then the option
// is dropped with a warning.
bool Parser::parse_relay_filter(Cursor& c, const Token& opt) {
    if (c.punct("{")) {
        std::vector<std::string> members;
        if (!parse_chain_members(c, members)) return false;
    } else {
        const Location at = c.where();
        std::string name;
        if (!parse_name_value(c, "a filter name or { ... } after 'filter'", name)) return false;
        if (!cfg_.find_filter(name) && !broken_filters_.count(name))
            return fail(at, "filter " + quote(name) + " is not declared: declare it with 'filter " + name +
                                " ...' before this line");
    }
    warnings_.push_back(Diagnostic{opt.where, "'filter' on a relay action has no effect in postern: OpenSMTPD sends "
                                              "the report events of outgoing sessions to it; postern logs each relay "
                                              "attempt instead ('mta delivery' lines with the host, TLS and reply)"});
    return true;
}

// relay [OPTION ...] [ttl DELAY]: each option at most once, in any order.
bool Parser::parse_relay_options(Cursor& c, Action& a) {
    static constexpr std::string_view kRelayOptions[] = {"host",    "domain",    "backup", "helo",  "helo-src",  "src",
                                                         "auth",    "tls",       "pki",    "ca",    "mail-from", "srs",
                                                         "ciphers", "protocols", "ttl",    "filter"};
    static constexpr std::string_view kLocalOptions[] = {"alias", "virtual", "userbase", "user", "wrapper"};
    const std::string what = "a relay option (host, domain, backup, helo, helo-src, src, auth, tls, pki, ca, "
                             "mail-from, srs, ciphers, protocols, ttl)";
    std::map<std::string, Location, std::less<>> seen;
    while (!c.done()) {
        const Token& opt = *c.peek();
        if (opt.kind != Token::Kind::Word) return expected(c, what);
        const std::string& w = opt.text;
        if (grammar::listed(kLocalOptions, w))
            return fail(opt.where, quote(w) + " is an option of local delivery and cannot be used with 'relay'");
        if (!grammar::listed(kRelayOptions, w)) return expected(c, what);
        if (seen.count(w)) return fail(opt.where, quote(w) + " is given twice");
        if (seen.count("ttl")) return fail(opt.where, quote(w) + " must come before 'ttl'");
        seen.emplace(w, opt.where);
        c.take();
        if (w == "filter") {
            if (!parse_relay_filter(c, opt)) return false;
        } else if (w == "ttl") {
            std::chrono::seconds ttl{};
            if (!parse_delay_value(c, "'ttl'", ttl)) return false;
            a.ttl = ttl;
        } else if (!parse_relay_option(c, opt, a.relay)) {
            return false;
        }
    }
    check_relay(a.relay, seen);
    return true;
}

// The value(s) of one relay option, `opt` already taken.
bool Parser::parse_relay_option(Cursor& c, const Token& opt, Relay& r) {
    const std::string& w = opt.text;
    const std::string after = quote(w);
    auto plain_value = [&]() {
        return c.value() && !(c.peek()->kind == Token::Kind::Word && is_keyword(c.peek()->text));
    };
    if (w == "host") {
        if (c.punct("<") || c.punct("{")) {
            auto table = parse_table_arg(c, after);
            if (!table) return false;
            r.host_table = *table;
            return true;
        }
        if (!plain_value())
            return expected(c, "a relay URL or <table> after 'host', as in host smtp+tls://mx.example.org");
        const Token& v = c.take();
        std::string why;
        r.url = parse_relay_url(v.text, why);
        if (!r.url) return fail(v.where, "invalid relay URL " + describe(v) + ": " + why);
        r.host = v.text;
        return true;
    }
    if (w == "domain" || w == "helo-src" || w == "auth") {
        auto table = parse_table_arg(c, after);
        if (!table) return false;
        (w == "domain" ? r.domain_table : w == "helo-src" ? r.helo_src_table : r.auth_table) = *table;
        return require_map_table(*table, opt.where, w);
    }
    if (w == "src") {
        if (c.punct("<") || c.punct("{")) {
            auto table = parse_table_arg(c, after);
            if (!table) return false;
            r.src_table = *table;
            return true;
        }
        in6_addr buf{};
        if (!c.value() || (inet_pton(AF_INET, c.peek()->text.c_str(), &buf) != 1 &&
                           inet_pton(AF_INET6, c.peek()->text.c_str(), &buf) != 1))
            return expected(c, "an IP address, <table> or { ... } after 'src'");
        r.src = c.take().text;
        return true;
    }
    if (w == "backup") {
        r.backup = true;
        if (!c.word("mx")) return true;
        c.take();
        return parse_value(c, "an MX host name after 'backup mx'", r.backup_mx);
    }
    if (w == "helo") {
        if (!plain_value()) return expected(c, "a host name after 'helo'");
        r.helo = c.take().text;
        return true;
    }
    if (w == "tls") {
        r.tls = true;
        if (c.word("no-verify")) {
            c.take();
            r.tls_no_verify = true;
        }
        return true;
    }
    if (w == "pki" || w == "ca") {
        if (!c.value()) return expected(c, "a " + w + " name after " + after);
        const Token& name = c.take();
        const std::string n = lowercase(name.text);
        if (w == "pki") require_pki(n, name.where);
        else require_ca(n, name.where);
        (w == "pki" ? r.pki : r.ca) = n;
        return true;
    }
    if (w == "mail-from") {
        const std::string what = "an address after 'mail-from' (user@domain, @domain or user)";
        if (!plain_value()) return expected(c, what);
        const std::string& v = c.peek()->text;
        const std::size_t at = v.find('@');
        const bool ok = !v.empty() && v.find_first_of(" \t<>\"") == std::string::npos &&
                        (at == std::string::npos || (v.find('@', at + 1) == std::string::npos && at + 1 < v.size()));
        if (!ok) return expected(c, what);
        r.mail_from = c.take().text;
        return true;
    }
    if (w == "srs") {
        r.srs = true;
        return true;
    }
    return parse_tls_list(c, w, w == "ciphers" ? r.ciphers : r.protocols);
}

// The combinations OpenSMTPD refuses once the relay line is read.
void Parser::check_relay(const Relay& r, const std::map<std::string, Location, std::less<>>& seen) {
    auto at = [&](std::string_view w) { return seen.find(w)->second; };
    const bool host = seen.count("host") != 0;
    if (seen.count("auth") && !host)
        error_at(at("auth"), "'auth' needs 'host' on the same relay: credentials are for one smarthost");
    if (r.backup && host) error_at(at("backup"), "'backup' cannot be used together with 'host'");
    if (r.backup && seen.count("domain")) error_at(at("backup"), "'backup' cannot be used together with 'domain'");
    if (host && seen.count("domain")) error_at(at("domain"), "'domain' cannot be used together with 'host'");
    if (r.srs && cfg_.srs_where.file.empty()) cfg_.srs_where = at("srs");  // checked once the file is read
}

}  // namespace postern::config::detail
