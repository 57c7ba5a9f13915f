// proc and filter: the filter processes, the process, chain and built-in
// filters, and the filter a listener names.
//
// OpenSMTPD's grammar (parse.y, 6.4 to 7.x) plus three proc options of
// postern's own: `protocol`, `timeout` and `on-failure`. As with tables, a
// proc or filter is declared before a line uses it. The parser only fills the
// model; starting the processes and running the chains is the filter host's.
#include "config/parser_impl.hpp"

namespace postern::config::detail {

namespace {

using filter::Phase;

// A filter that does not answer stalls the SMTP session: an hour is already
// far past any client's patience (RFC 5321 has clients wait 5 to 10 minutes
// for a reply).
constexpr std::uint64_t kMaxFilterTimeoutSeconds = 3600;

// The phases a built-in filter may run at (OpenSMTPD's grammar also has
// rset, quit, noop and data-line, but commented out).
constexpr std::string_view kBuiltinPhases[] = {"connect",   "helo",    "ehlo", "auth",
                                               "mail-from", "rcpt-to", "data", "commit"};

constexpr std::uint32_t bit(Phase p) { return 1u << static_cast<unsigned>(p); }
constexpr std::uint32_t kFromMailFrom = bit(Phase::MailFrom) | bit(Phase::RcptTo) | bit(Phase::Data) |
                                        bit(Phase::Commit);
constexpr std::uint32_t kFromAuth = bit(Phase::Auth) | kFromMailFrom;
constexpr std::uint32_t kFromHelo = bit(Phase::Helo) | bit(Phase::Ehlo) | kFromAuth;
constexpr std::uint32_t kAnyPhase = bit(Phase::Connect) | kFromHelo;

// One condition word: its kind, whether it takes a table, and the phases at
// which what it tests is known (a HELO name only once the client sent one).
struct ConditionRule {
    std::string_view word;
    FilterCondition::Kind kind;
    enum class Table { None, Optional, Required } table;
    std::uint32_t phases;
};
constexpr ConditionRule kConditions[] = {
    {"fcrdns", FilterCondition::Kind::Fcrdns, ConditionRule::Table::None, kAnyPhase},
    {"rdns", FilterCondition::Kind::Rdns, ConditionRule::Table::Optional, kAnyPhase},
    {"src", FilterCondition::Kind::Src, ConditionRule::Table::Required, kAnyPhase},
    {"helo", FilterCondition::Kind::Helo, ConditionRule::Table::Required, kFromHelo},
    {"auth", FilterCondition::Kind::Auth, ConditionRule::Table::Optional, kFromAuth},
    {"mail-from", FilterCondition::Kind::MailFrom, ConditionRule::Table::Required, kFromMailFrom},
    {"rcpt-to", FilterCondition::Kind::RcptTo, ConditionRule::Table::Required, bit(Phase::RcptTo)},
};

const ConditionRule* find_condition(const Token* t) {
    if (!t || t->kind != Token::Kind::Word) return nullptr;
    for (const ConditionRule& r : kConditions)
        if (r.word == t->text) return &r;
    return nullptr;
}

struct DecisionWord {
    std::string_view word;
    BuiltinFilter::Decision decision;
};
constexpr DecisionWord kDecisions[] = {
    {"reject", BuiltinFilter::Decision::Reject},   {"disconnect", BuiltinFilter::Decision::Disconnect},
    {"rewrite", BuiltinFilter::Decision::Rewrite}, {"junk", BuiltinFilter::Decision::Junk},
    {"report", BuiltinFilter::Decision::Report},   {"bypass", BuiltinFilter::Decision::Bypass},
};

// "phase rcpt-to" or "phases helo, ehlo and auth": where a condition can be used.
std::string phase_list(std::uint32_t phases) {
    std::vector<std::string_view> names;
    for (std::string_view p : kBuiltinPhases)
        if (phases & bit(*filter::phase_from_name(p))) names.push_back(p);
    std::string out = names.size() == 1 ? "phase " : "phases ";
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (i > 0) out += i + 1 == names.size() ? " and " : ", ";
        out += names[i];
    }
    return out;
}

// The reply is sent to the client as written, so it must be a whole SMTP
// reply line: a 4xx or 5xx code, a space, then the text.
bool valid_filter_reply(std::string_view s) {
    auto digit = [](char ch) { return ch >= '0' && ch <= '9'; };
    return s.size() >= 4 && (s[0] == '4' || s[0] == '5') && digit(s[1]) && digit(s[2]) && s[3] == ' ';
}

std::string not_declared(std::string_view what, const std::string& name, const std::string& how) {
    return std::string(what) + " " + quote(name) + " is not declared: declare it with '" + std::string(what) + " " +
           name + " " + how + "' before this line";
}

}  // namespace

// A name, user or command: quoted, or bare when it is not a reserved word
// (OpenSMTPD's STRING), and never empty.
bool Parser::parse_name_value(Cursor& c, const std::string& what, std::string& out) {
    if (c.value() && c.peek()->kind == Token::Kind::Word && is_keyword(c.peek()->text))
        return fail(c.where(),
                    "expected " + what + ", found " + c.found() + ", a reserved word (quote it to use it here)");
    if (!c.value() || c.peek()->text.empty()) return expected(c, what);
    out = c.take().text;
    return true;
}

// proc NAME "COMMAND" [options]
bool Parser::parse_proc(Cursor& c) {
    FilterProc p;
    p.where = c.take().where;
    const Location name_at = c.where();
    if (!parse_name_value(c, "a proc name after 'proc'", p.name)) return false;
    const std::size_t errors_before = errors_.size();
    bool ok = true;
    if (const FilterProc* prev = cfg_.find_proc(p.name)) {
        const Filter* exec = cfg_.find_filter(p.name);
        const bool by_exec = exec && exec->where.file == prev->where.file && exec->where.line == prev->where.line &&
                             exec->where.column == prev->where.column;
        ok = fail(name_at, "proc " + quote(p.name) + " is declared twice (first at " + where_text(prev->where) +
                               (by_exec ? ", as the process of 'filter " + p.name + " proc-exec'" : "") + ")");
    } else if (broken_procs_.count(p.name)) {
        ok = fail(name_at, "proc " + quote(p.name) + " is declared twice");
    }
    if (ok) ok = parse_proc_command(c, "proc name " + quote(p.name), p) && parse_proc_options(c, p);
    if (!ok || errors_.size() != errors_before) {
        broken_procs_.insert(p.name);
        return false;
    }
    cfg_.procs.push_back(std::move(p));
    return true;
}

// The command line, kept as written: the filter host resolves a relative one
// and hands it to /bin/sh, as OpenSMTPD does.
bool Parser::parse_proc_command(Cursor& c, const std::string& after, FilterProc& p) {
    return parse_name_value(c, "a command after " + after + ", quoted as in \"filter-rspamd\"", p.command);
}

// [user U] [group G] [chroot DIR] [protocol 0.6|0.7] [timeout DELAY]
// [on-failure tempfail|pass], in any order, each at most once.
bool Parser::parse_proc_options(Cursor& c, FilterProc& p) {
    static constexpr std::string_view kOptions[] = {"user", "group", "chroot", "protocol", "timeout", "on-failure"};
    std::set<std::string, std::less<>> seen;
    while (!c.done()) {
        if (c.peek()->kind != Token::Kind::Word || !grammar::listed(kOptions, c.peek()->text))
            return expected(c, "a proc option (user, group, chroot, protocol, timeout or on-failure)");
        const Token& opt = c.take();
        const std::string& w = opt.text;
        if (!seen.insert(w).second) return fail(opt.where, quote(w) + " is given twice");
        bool ok = true;
        if (w == "user") ok = parse_name_value(c, "a user name after 'user'", p.user);
        else if (w == "group") ok = parse_name_value(c, "a group name after 'group'", p.group);
        else if (w == "chroot") ok = parse_path_value(c, "'chroot'", p.chroot);
        else if (w == "protocol") ok = parse_proc_protocol(c, p);
        else if (w == "timeout") ok = parse_proc_timeout(c, p);
        else ok = parse_proc_on_failure(c, p);
        if (!ok) return false;
    }
    return true;
}

// protocol 0.6|0.7: the line layout the filter was built for. There is no
// negotiation in 0.6 (Debian 12's filters never say which they speak), so
// the file says it.
bool Parser::parse_proc_protocol(Cursor& c, FilterProc& p) {
    if (c.value() && c.peek()->text == "0.6") p.version = filter::Version::V0_6;
    else if (c.value() && c.peek()->text == "0.7") p.version = filter::Version::V0_7;
    else return expected(c, "0.6 or 0.7 after 'protocol'");
    c.take();
    return true;
}

// timeout DELAY: 1s to 1h.
bool Parser::parse_proc_timeout(Cursor& c, FilterProc& p) {
    const std::string what = "a delay (a number followed by s, m or h, e.g. 30s) after 'timeout'";
    if (!c.value()) return expected(c, what);
    const Token& v = *c.peek();
    bool overflow = false;
    auto secs = parse_delay(v.text, overflow);
    if (!secs) return expected(c, what);
    if (overflow || *secs == 0 || *secs > kMaxFilterTimeoutSeconds)
        return fail(v.where, "timeout " + quote(v.text) + " is out of range (1s to 1h)");
    c.take();
    p.timeout = std::chrono::seconds(*secs);
    return true;
}

// on-failure tempfail|pass
bool Parser::parse_proc_on_failure(Cursor& c, FilterProc& p) {
    if (!c.word("tempfail") && !c.word("pass")) return expected(c, "tempfail or pass after 'on-failure'");
    p.fail_open = c.take().text == "pass";
    return true;
}

// filter NAME proc PROC | proc-exec "COMMAND" [options] | chain { ... } |
// phase PHASE match [!] CONDITION DECISION
bool Parser::parse_filter(Cursor& c) {
    Filter f;
    f.where = c.take().where;
    const Location name_at = c.where();
    if (!parse_name_value(c, "a filter name after 'filter'", f.name)) return false;
    const std::size_t errors_before = errors_.size();
    bool ok = true;
    if (const Filter* prev = cfg_.find_filter(f.name))
        ok = fail(name_at, "filter " + quote(f.name) + " is declared twice (first at " + where_text(prev->where) + ")");
    else if (broken_filters_.count(f.name)) ok = fail(name_at, "filter " + quote(f.name) + " is declared twice");
    std::optional<FilterProc> exec;  // proc-exec: the process it declares
    if (ok) {
        if (c.word("proc")) {
            ok = parse_filter_proc(c, f);
        } else if (c.word("proc-exec")) {
            exec.emplace();
            ok = parse_filter_exec(c, f, *exec);
        } else if (c.word("chain")) {
            ok = parse_filter_chain(c, f);
        } else if (c.word("phase")) {
            ok = parse_builtin_filter(c, f);
        } else {
            ok = expected(c, "proc, proc-exec, chain or phase after filter name " + quote(f.name));
        }
    }
    if (!ok || errors_.size() != errors_before) {
        broken_filters_.insert(f.name);
        if (exec) broken_procs_.insert(f.name);
        return false;
    }
    if (exec) cfg_.procs.push_back(std::move(*exec));
    cfg_.filters.push_back(std::move(f));
    return true;
}

// proc PROC: a filter on a process declared by `proc` (or by another
// filter's proc-exec).
bool Parser::parse_filter_proc(Cursor& c, Filter& f) {
    c.take();
    f.kind = Filter::Kind::Proc;
    const Location at = c.where();
    if (!parse_name_value(c, "a proc name after 'proc'", f.proc)) return false;
    if (!cfg_.find_proc(f.proc) && !broken_procs_.count(f.proc))
        error_at(at, not_declared("proc", f.proc, "\"COMMAND\""));
    return end_of_line(c, "the proc name");
}

// proc-exec "COMMAND" [options]: a process of its own, named as the filter.
bool Parser::parse_filter_exec(Cursor& c, Filter& f, FilterProc& p) {
    const Token& kw = c.take();
    f.kind = Filter::Kind::Proc;
    f.proc = f.name;
    if (const FilterProc* prev = cfg_.find_proc(f.name))
        return fail(kw.where, "'proc-exec' names its process as the filter, and proc " + quote(f.name) +
                                  " is already declared at " + where_text(prev->where) +
                                  "; rename the filter or the proc");
    if (broken_procs_.count(f.name))
        return fail(kw.where, "'proc-exec' names its process as the filter, and proc " + quote(f.name) +
                                  " is already declared; rename the filter or the proc");
    p.name = f.name;
    p.where = f.where;
    return parse_proc_command(c, "'proc-exec'", p) && parse_proc_options(c, p);
}

// chain { a, b, ... }
bool Parser::parse_filter_chain(Cursor& c, Filter& f) {
    c.take();
    f.kind = Filter::Kind::Chain;
    if (!c.punct("{")) return expected(c, "'{' after 'chain', as in chain { f1, f2 }");
    return parse_chain_members(c, f.chain) && end_of_line(c, "the chain");
}

// { a, b, ... } (commas optional): declared process or built-in filters.
bool Parser::parse_chain_members(Cursor& c, std::vector<std::string>& members) {
    const Location open = c.take().where;
    while (!c.punct("}")) {
        if (c.done()) return fail(open, "missing '}' to close this '{'");
        if (c.punct(",")) {
            c.take();
            continue;
        }
        const Location at = c.where();
        std::string name;
        if (!parse_name_value(c, "a filter name or '}'", name)) return false;
        check_chain_member(name, at, members);
        members.push_back(std::move(name));
    }
    c.take();  // '}'
    if (members.empty()) return fail(open, "empty chain: expected at least one filter name inside { }");
    return true;
}

// OpenSMTPD's rules: no chain inside a chain, and each process at most once
// (a process registers for a phase once, so it holds one place in a chain).
void Parser::check_chain_member(const std::string& name, const Location& at, const std::vector<std::string>& before) {
    if (std::find(before.begin(), before.end(), name) != before.end()) {
        error_at(at, "filter " + quote(name) + " is given twice in the chain");
        return;
    }
    const Filter* f = cfg_.find_filter(name);
    if (!f) {
        if (!broken_filters_.count(name)) error_at(at, not_declared("filter", name, "..."));
        return;
    }
    if (f->kind == Filter::Kind::Chain) {
        error_at(at, "filter " + quote(name) + " is a chain, and chains cannot be nested: list its filters instead");
        return;
    }
    if (f->kind != Filter::Kind::Proc) return;
    for (const std::string& b : before) {
        const Filter* other = cfg_.find_filter(b);
        if (other && other->kind == Filter::Kind::Proc && other->proc == f->proc) {
            error_at(at, "filters " + quote(b) + " and " + quote(name) + " both run on proc " + quote(f->proc) +
                             ": a chain can use each proc once");
            return;
        }
    }
}

// phase PHASE match [!] CONDITION DECISION: exactly one condition, as in
// OpenSMTPD (a chain of built-in filters tests several).
bool Parser::parse_builtin_filter(Cursor& c, Filter& f) {
    c.take();
    f.kind = Filter::Kind::Builtin;
    const std::string what = "a phase (connect, helo, ehlo, auth, mail-from, rcpt-to, data or commit) after 'phase'";
    if (c.done() || c.peek()->kind != Token::Kind::Word || !grammar::listed(kBuiltinPhases, c.peek()->text))
        return expected(c, what);
    const Token& phase = c.take();
    // OpenSMTPD never stores `phase auth` (it runs such a filter at connect);
    // postern runs it at auth, as written.
    f.builtin.phase = *filter::phase_from_name(phase.text);
    if (!c.word("match")) return expected(c, "'match' after phase " + quote(phase.text));
    c.take();
    return parse_filter_condition(c, f.builtin) && parse_filter_decision(c, f.builtin);
}

// [!] fcrdns | rdns [[regex] TABLE] | src|helo|mail-from|rcpt-to [regex] TABLE
// | auth [[regex] TABLE], where TABLE is <name> or { ... }.
bool Parser::parse_filter_condition(Cursor& c, BuiltinFilter& b) {
    FilterCondition& cond = b.condition;
    if (c.punct("!")) {
        c.take();
        cond.negated = true;
    }
    const ConditionRule* rule = find_condition(c.peek());
    if (!rule)
        return expected(c, "a condition (fcrdns, rdns, src, helo, auth, mail-from or rcpt-to) after " +
                               std::string(cond.negated ? "'!'" : "'match'"));
    const Token& word = c.take();
    cond.kind = rule->kind;
    if (!(rule->phases & bit(b.phase)))
        error_at(word.where, "condition " + quote(word.text) + " cannot be used at phase " +
                                 quote(filter::phase_name(b.phase)) + ": only at " + phase_list(rule->phases));
    const bool has_table = c.word("regex") || c.punct("<") || c.punct("{");
    if (rule->table == ConditionRule::Table::None && has_table)
        return fail(c.where(), quote(word.text) + " takes no table");
    if (!has_table && rule->table != ConditionRule::Table::Required) return true;
    std::string after = quote(word.text);
    if (c.word("regex")) {
        c.take();
        cond.regex = true;
        after = "'regex'";
    }
    auto table = parse_table_arg(c, after);
    if (!table) return false;
    cond.table = *table;
    return true;
}

// reject "CODE TEXT" | disconnect "CODE TEXT" | rewrite VALUE | junk | report TEXT | bypass
bool Parser::parse_filter_decision(Cursor& c, BuiltinFilter& b) {
    if (find_condition(c.peek()))
        return fail(c.where(), "a built-in filter tests one condition, and " + quote(c.peek()->text) +
                                   " would be a second one: put one filter per condition in a chain");
    const DecisionWord* d = nullptr;
    for (const DecisionWord& dw : kDecisions)
        if (c.word(dw.word)) d = &dw;
    if (!d) return expected(c, "a decision (reject, disconnect, rewrite, junk, report or bypass)");
    const Token& word = c.take();
    b.decision = d->decision;
    using Decision = BuiltinFilter::Decision;
    std::string after = quote(word.text);
    if (b.decision == Decision::Reject || b.decision == Decision::Disconnect) {
        after = "the reply";
        const std::string example = " as in " + word.text + " \"550 5.7.1 rejected\"";
        if (!c.value()) return expected(c, "a reply after " + quote(word.text) + "," + example);
        const Token& v = c.take();
        if (!valid_filter_reply(v.text))
            return fail(v.where, "the reply after " + quote(word.text) +
                                     " must start with a 4xx or 5xx code and a space," + example + "; found " +
                                     describe(v));
        b.value = v.text;
    } else if (b.decision == Decision::Rewrite || b.decision == Decision::Report) {
        const bool rewrite = b.decision == Decision::Rewrite;
        after = rewrite ? "the value" : "the text";
        if (!c.value() || c.peek()->text.empty())
            return expected(c, rewrite ? "a value after 'rewrite'" : "a text after 'report'");
        b.value = c.take().text;
    } else if (b.decision == Decision::Junk && b.phase == Phase::Commit) {
        error_at(word.where, "'junk' cannot be used at phase 'commit': the message is complete by then and can no "
                             "longer be marked");
    }
    return end_of_line(c, after);
}

// listen ... filter NAME | filter { a, b }: the name of the filter, or of the
// anonymous chain made for { }.
std::optional<std::string> Parser::parse_listen_filter(Cursor& c) {
    if (!c.punct("{")) {
        const Location at = c.where();
        std::string name;
        if (!parse_name_value(c, "a filter name or { ... } after 'filter'", name)) return std::nullopt;
        if (!cfg_.find_filter(name) && !broken_filters_.count(name)) error_at(at, not_declared("filter", name, "..."));
        return name;
    }
    Filter f;
    f.kind = Filter::Kind::Chain;
    f.where = c.where();
    f.name = "<anon:" + std::to_string(f.where.line) + ":" + std::to_string(f.where.column) + ">";
    if (cfg_.find_filter(f.name))  // the same spot in another (included) file
        f.name = "<anon:" + f.where.file + ":" + std::to_string(f.where.line) + ":" + std::to_string(f.where.column) +
                 ">";
    if (!parse_chain_members(c, f.chain)) return std::nullopt;
    cfg_.filters.push_back(std::move(f));
    return cfg_.filters.back().name;
}

}  // namespace postern::config::detail
