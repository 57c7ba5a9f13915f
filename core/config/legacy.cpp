// The pre-6.4 grammar translator (see legacy.hpp): old rule and global lines
// to the tokens of the current lines, following the table of
// shared/reference/config-grammar.md §10.
//
// Only the shape of an old line is checked here (which words may follow
// which); everything the current grammar checks (tables declared, a relay
// URL's syntax, option combinations) is left to the parser reading the
// translation, so an old line and its current form are refused alike.
#include "config/legacy.hpp"

#include "config/parser.hpp"

namespace postern::config::legacy {

namespace {

constexpr std::string_view kRuleDirectives[] = {"accept", "reject"};
constexpr std::string_view kGlobalDirectives[] = {
    "max-message-size", "expire", "bounce-warn", "limit", "max-mta-deferred", "subaddressing-delimiter", "ciphers",
};

// Old words that are not reserved today: a bare one ends a value (a maildir
// path, a backup MX) instead of being taken as one.
constexpr std::string_view kOldWords[] = {
    "accept", "expire", "sender", "authenticated", "deliver", "via", "source", "as", "certificate",
};

// What an old rule may hold, and what of it makes no sense in a `reject` rule.
constexpr std::string_view kRuleOptions[] = {
    "tagged",  "authenticated", "from",         "sender",  "for",   "recipient", "alias",
    "virtual", "userbase",      "forward-only", "deliver", "relay", "expire",
};
constexpr std::string_view kAcceptOnly[] = {"alias",   "virtual", "userbase", "forward-only",
                                            "deliver", "relay",   "expire"};
constexpr std::string_view kRelayOptions[] = {
    "backup", "via", "auth", "as", "source", "hostname", "hostnames", "helo", "pki", "certificate", "tls", "verify",
};

constexpr std::string_view kHeader = "pre-6.4 grammar; the same in current syntax:";
constexpr std::string_view kNeverHeader =
    "pre-6.4 grammar; this rule never matched and is left out: it takes only authenticated sessions, "
    "whose source was \"local\" before 6.4, and its source excludes \"local\"";
constexpr std::string_view kIndent = "\n    ";
// Why a translation has a match line more, or an `auth` the old rule did not
// write: a comment, so that the lines stay ready to paste.
constexpr std::string_view kAuthNote =
    "# before 6.4 an authenticated session's source was \"local\", whatever its address";

bool reserved(const Token& t) {
    return t.kind == Token::Kind::Word && (grammar::is_keyword(t.text) || grammar::listed(kOldWords, t.text));
}

// A token of the translation, placed where the old text it stands for was.
Token made(const Token& from, std::string text, Token::Kind kind = Token::Kind::Word) {
    Token t = from;
    t.text = std::move(text);
    t.kind = kind;
    return t;
}

void append(Line& to, const Line& from) { to.insert(to.end(), from.begin(), from.end()); }

// Reads one old line; the first error abandons it.
class Reader {
public:
    Reader(const Line& line, std::vector<Diagnostic>& errors) : c(line), errors_(errors) {}

    bool expected(const std::string& what) {
        errors_.push_back(Diagnostic{c.where(), "expected " + what + ", found " + c.found()});
        return false;
    }
    bool fail(const Location& at, std::string message) {
        errors_.push_back(Diagnostic{at, std::move(message)});
        return false;
    }
    // `!` after an old keyword (`from ! source`): copied to `out` as the
    // current grammar's leading `!`.
    void negation(Line& out) {
        if (c.punct("!")) out.push_back(c.take());
    }
    // <name> or { ... }
    bool table(Line& out, const std::string& after) {
        if (c.punct("<")) {
            out.push_back(c.take());
            if (!c.value()) return expected("a table name after '<'");
            out.push_back(c.take());
            if (!c.punct(">")) return expected("'>' after table name " + quote(out.back().text));
            out.push_back(c.take());
            return true;
        }
        if (!c.punct("{")) return expected("a table <name> or { ... } after " + after);
        const Location open = c.where();
        while (!c.punct("}")) {
            if (c.done()) return fail(open, "missing '}' to close this '{'");
            out.push_back(c.take());
        }
        out.push_back(c.take());
        return true;
    }
    // <name>, { ... } or one value
    bool operand(Line& out, const std::string& after) {
        if (c.punct("<") || c.punct("{")) return table(out, after);
        if (!c.value() || reserved(*c.peek())) return expected("a value, <table> or { ... } after " + after);
        out.push_back(c.take());
        return true;
    }
    bool value(Line& out, const std::string& what) {
        if (!c.value() || reserved(*c.peek())) return expected(what);
        out.push_back(c.take());
        return true;
    }

    Cursor c;

private:
    std::vector<Diagnostic>& errors_;
};

// An old rule's source: `from [!] any | local | source <t> | <t>`, or none
// written (which meant `from local`).
struct OldSource {
    bool written = false;
    std::size_t begin = 0, end = 0;  // its tokens in OldRule::criteria, `!` included
    bool negated = false;
    bool any = false;
    // Whether it held the key "local" that stood for an authenticated session
    // (any and local did: <anyhost> and <localhost> list it; a table of
    // addresses does not).
    bool holds_local_key = true;
};

// An old rule taken apart into the pieces of its current lines.
struct OldRule {
    Line criteria;                  // the match options, in the order written
    Line method;                    // mbox | maildir [P] | mda C | lmtp D [rcpt-to] | relay ... | forward-only
    Line local;                     // alias / virtual / userbase <t>
    Line user;                      // user U (from `as U`)
    Line ttl;                       // ttl D (from `expire D`)
    const Token* clause = nullptr;  // `deliver`, `relay` or `forward-only` as written
    OldSource source;
    std::optional<std::size_t> auth_at;  // `authenticated` (now `auth`) in criteria
};

bool read_from(Reader& r, const Token& kw, Line& out) {
    Line neg;
    r.negation(neg);
    append(out, neg);
    out.push_back(kw);
    if (r.c.word("any") || r.c.word("local")) {
        out.push_back(r.c.take());
        return true;
    }
    if (r.c.word("source")) {
        out.push_back(made(r.c.take(), "src"));
        return r.operand(out, "'source'");
    }
    if (r.c.punct("<") || r.c.punct("{")) {  // 5.x: `from <t>`
        out.push_back(made(*r.c.peek(), "src"));
        return r.table(out, "'from'");
    }
    return r.expected("any, local, source <table> or <table> after 'from'");
}

bool read_for(Reader& r, const Token& kw, Line& out) {
    Line neg;
    r.negation(neg);
    append(out, neg);
    out.push_back(kw);
    if (r.c.word("any") || r.c.word("local")) {
        out.push_back(r.c.take());
        return true;
    }
    if (r.c.word("domain")) {
        out.push_back(r.c.take());
        return r.operand(out, "'domain'");
    }
    return r.expected("any, local or domain after 'for'");
}

// deliver to mbox | maildir [PATH] | mda "CMD" [as USER] | lmtp DEST [rcpt-to] [as USER]
bool read_deliver(Reader& r, OldRule& rule) {
    if (!r.c.word("to")) return r.expected("'to' after 'deliver'");
    r.c.take();
    const std::string what = "mbox, maildir, mda or lmtp after 'deliver to'";
    if (!r.c.word("mbox") && !r.c.word("maildir") && !r.c.word("mda") && !r.c.word("lmtp")) return r.expected(what);
    const Token& m = r.c.take();
    rule.method.push_back(m);
    if (m.text == "maildir") {
        if (r.c.value() && (r.c.peek()->kind == Token::Kind::String || !reserved(*r.c.peek())))
            rule.method.push_back(r.c.take());
        return true;
    }
    if (m.text == "mda" && !r.value(rule.method, "a command after 'mda', quoted as in mda \"/usr/bin/procmail -f -\""))
        return false;
    if (m.text == "lmtp") {
        if (!r.value(rule.method, "an LMTP server after 'lmtp': a socket path or HOST:PORT")) return false;
        if (r.c.word("rcpt-to")) rule.method.push_back(r.c.take());
    }
    if (m.text == "mbox" || !r.c.word("as")) return true;
    rule.user.push_back(made(r.c.take(), "user"));
    return r.value(rule.user, "a user name after 'as'");
}

// `relay via` URL schemes that changed name in 6.4.
bool modern_url(Reader& r, const Token& url, std::string& out) {
    struct Renamed {
        std::string_view old_scheme, scheme;
    };
    static constexpr Renamed kRenamed[] = {
        {"tls://", "smtp+tls://"}, {"tls+auth://", "smtp+tls://"}, {"smtps+auth://", "smtps://"}};
    out = url.text;
    for (const Renamed& n : kRenamed)
        if (out.rfind(n.old_scheme, 0) == 0) out = std::string(n.scheme) + out.substr(n.old_scheme.size());
    for (std::string_view gone : {"secure://", "secure+auth://"})
        if (out.rfind(gone, 0) == 0)
            return r.fail(url.where, "relay URL scheme " + quote(gone) +
                                         " (TLS from the first byte, else STARTTLS) has no equivalent since "
                                         "OpenSMTPD 6.4: write smtps:// or smtp+tls:// instead");
    return true;
}

// relay [backup [MX]] [via URL] [auth <t>] [as ADDR] [source <t>] [hostname N | hostnames <t> | helo <t>]
//       [pki P | certificate P] [tls [verify] | verify], in any order
bool read_relay(Reader& r, OldRule& rule) {
    // Old words that set one current option: the second is refused.
    auto group = [](std::string_view w) -> std::string_view {
        if (w == "hostname" || w == "hostnames" || w == "helo") return "helo";
        if (w == "certificate") return "pki";
        if (w == "verify") return "tls";
        return w;
    };
    std::map<std::string_view, std::string_view> seen;  // group -> word as written
    Line& out = rule.method;
    while (!r.c.done() && r.c.peek()->kind == Token::Kind::Word && grammar::listed(kRelayOptions, r.c.peek()->text)) {
        const Token& o = r.c.take();
        const std::string_view w = o.text;
        if (auto [it, fresh] = seen.emplace(group(w), w); !fresh)
            return r.fail(o.where, it->second == w ? quote(w) + " is given twice"
                                                   : quote(w) + " cannot be used together with " + quote(it->second));
        bool ok = true;
        if (w == "backup") {
            out.push_back(o);
            if (r.c.value() && !reserved(*r.c.peek())) {
                out.push_back(made(*r.c.peek(), "mx"));
                out.push_back(r.c.take());
            }
        } else if (w == "via") {
            if (!r.c.value() || reserved(*r.c.peek())) return r.expected("a relay URL after 'via'");
            const Token& url = r.c.take();
            std::string text;
            if (!modern_url(r, url, text)) return false;
            out.push_back(made(o, "host"));
            out.push_back(made(url, text, url.kind));
        } else if (w == "auth" || w == "hostnames" || (w == "helo" && (r.c.punct("<") || r.c.punct("{")))) {
            out.push_back(w == "auth" ? o : made(o, "helo-src"));
            ok = r.table(out, quote(w));
        } else if (w == "source") {
            out.push_back(made(o, "src"));
            ok = r.operand(out, "'source'");
        } else if (w == "pki" || w == "certificate") {  // a pki name may be spelled like a keyword (`mx`)
            out.push_back(made(o, "pki"));
            if (!r.c.value()) return r.expected("a pki name after " + quote(w));
            out.push_back(r.c.take());
        } else if (w == "as" || w == "hostname" || w == "helo") {
            out.push_back(made(o, w == "as" ? "mail-from" : "helo"));
            ok = r.value(out, (w == "as" ? "an address after " : "a host name after ") + quote(w));
        } else if (w == "tls" && r.c.word("verify")) {
            r.c.take();
            out.push_back(o);  // verified: the current default
        } else if (w == "tls") {
            out.push_back(o);
            out.push_back(made(o, "no-verify"));
        } else {  // verify
            out.push_back(made(o, "tls"));
        }
        if (!ok) return false;
    }
    return true;
}

// One option of an old rule, `opt` already taken.
bool read_rule_option(Reader& r, const Token& opt, OldRule& rule) {
    const std::string& w = opt.text;
    if (w == "from") {
        OldSource& src = rule.source;
        src.begin = rule.criteria.size();
        if (!read_from(r, opt, rule.criteria)) return false;
        src.end = rule.criteria.size();
        src.written = true;
        src.negated = rule.criteria[src.begin].is_punct("!");
        const Token& what = rule.criteria[src.begin + (src.negated ? 2 : 1)];
        // `source <anyhost>` and `source <localhost>` are the built-in tables
        // that listed "local" (and <anyhost> every address too).
        auto builtin = [&](std::string_view name) {
            std::size_t at = src.begin + (src.negated ? 2 : 1);
            return src.end - at == 4 && rule.criteria[at + 1].is_punct("<") && rule.criteria[at + 2].is_word(name) &&
                   rule.criteria[at + 3].is_punct(">");
        };
        src.any = what.is_word("any") || builtin("anyhost");
        src.holds_local_key = src.any || what.is_word("local") || builtin("localhost");
        return true;
    }
    if (w == "for") return read_for(r, opt, rule.criteria);
    if (w == "authenticated") {
        rule.auth_at = rule.criteria.size();
        rule.criteria.push_back(made(opt, "auth"));
        return true;
    }
    if (w == "tagged" || w == "sender" || w == "recipient") {
        r.negation(rule.criteria);
        rule.criteria.push_back(made(opt, w == "tagged" ? "tag" : w == "sender" ? "mail-from" : "rcpt-to"));
        return w == "tagged" ? r.value(rule.criteria, "a tag after 'tagged'") : r.operand(rule.criteria, quote(w));
    }
    if (w == "alias" || w == "virtual" || w == "userbase") {
        rule.local.push_back(opt);
        return r.table(rule.local, quote(w));
    }
    if (w == "expire") {
        rule.ttl.push_back(made(opt, "ttl"));
        return r.value(rule.ttl, "a delay after 'expire', as in expire 4d");
    }
    if (rule.clause)
        return r.fail(opt.where, quote(w) + " cannot be used together with " + quote(rule.clause->text) +
                                     ": a rule delivers one way");
    rule.clause = &opt;
    if (w == "forward-only") {
        rule.method.push_back(opt);
        return true;
    }
    if (w == "deliver") return read_deliver(r, rule);
    rule.method.push_back(opt);  // relay
    return read_relay(r, rule);
}

// The header, then the lines; `note` (if any) before the line numbered `note_at`.
std::string warning_text(const std::vector<Line>& lines, std::string_view note = {}, std::size_t note_at = 0) {
    std::string text(kHeader);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (!note.empty() && i == note_at) text += std::string(kIndent) + std::string(note);
        text += std::string(kIndent) + render(lines[i]);
    }
    return text;
}

// `criteria` with the tokens [begin, end) replaced by `with`.
Line spliced(const Line& criteria, std::size_t begin, std::size_t end, const Line& with) {
    Line out(criteria.begin(), criteria.begin() + static_cast<std::ptrdiff_t>(begin));
    append(out, with);
    out.insert(out.end(), criteria.begin() + static_cast<std::ptrdiff_t>(end), criteria.end());
    return out;
}

// The criteria of the match lines an old rule becomes: one line each, any of
// which may match, in order; none when the rule could never match.
//
// Before 6.4 an authenticated session (and the local enqueuer) was tested
// against a rule's source with the key "local" instead of its address
// (OpenSMTPD 6.0 ruleset.c, ruleset_check_source), and a rule without `from`
// meant `from local`. So `from local`, written or implied, took every
// authenticated session, wherever it came from; a source table took none of
// them, and a negated source the opposite. Since 6.4 `from` tests the address
// only and `auth` is a criterion of its own: the old meaning needs `auth`
// written out, else an authenticated user of an `accept from local for any
// relay` server is refused relaying (issue 9).
std::vector<Line> source_lines(const OldRule& rule, const Token& head, bool& changed) {
    const OldSource& src = rule.source;
    const Line& c = rule.criteria;
    const bool takes_authenticated = src.holds_local_key != src.negated;
    const Token& at = src.written ? c[src.begin] : head;
    const Line from_any{made(at, "from"), made(at, "any")};
    changed = false;
    if (rule.auth_at) {  // `authenticated`: only the authenticated sessions, tested with "local"
        if (!takes_authenticated) return {};
        if (src.written && src.any && !src.negated) return {c};
        changed = true;
        if (src.written) return {spliced(c, src.begin, src.end, from_any)};
        return {spliced(c, *rule.auth_at + 1, *rule.auth_at + 1, from_any)};
    }
    if (src.any) return {c};  // `from any` takes everyone, as it did; `!from any` no one
    changed = true;
    if (takes_authenticated) {  // [from local] ...: and any authenticated session
        Line auth_from_any{made(at, "auth")};
        append(auth_from_any, from_any);
        if (src.written) return {c, spliced(c, src.begin, src.end, auth_from_any)};
        return {c, spliced(c, 0, 0, auth_from_any)};
    }
    // from <t> | !from local: no authenticated session
    return {spliced(c, src.begin, src.begin, Line{made(at, "!", Token::Kind::Punct), made(at, "auth")})};
}

}  // namespace

bool is_legacy_directive(std::string_view word) {
    return grammar::listed(kRuleDirectives, word) || grammar::listed(kGlobalDirectives, word);
}

std::string render(const Line& line) {
    std::string out;
    const Token* prev = nullptr;
    for (const Token& t : line) {
        if (prev && !prev->is_punct("<") && !prev->is_punct("!") && !t.is_punct(">") && !t.is_punct(",")) out += ' ';
        if (t.kind == Token::Kind::String) {
            out += '"';
            for (char ch : t.text) {
                if (ch == '"' || ch == '\\') out += '\\';
                out += ch;
            }
            out += '"';
        } else {
            out += t.text;
        }
        prev = &t;
    }
    return out;
}

Translator::Result Translator::translate(const Line& line, const NameTaken& taken, std::vector<Diagnostic>& errors) {
    if (grammar::listed(kRuleDirectives, line.front().text)) return translate_rule(line, taken, errors);
    return translate_global(line, errors);
}

std::string Translator::action_name(std::string_view method, const NameTaken& taken) {
    std::string name(method);
    for (int i = 2; taken(name) || names_.count(name); ++i) name = std::string(method) + "-" + std::to_string(i);
    names_.insert(name);
    return name;
}

// accept|reject OPTIONS...: one match line, and an action line for a delivery
// clause not seen before (identical clauses share their action).
Translator::Result Translator::translate_rule(const Line& line, const NameTaken& taken,
                                              std::vector<Diagnostic>& errors) {
    Reader r(line, errors);
    const Token& head = r.c.take();
    const bool reject = head.text == "reject";
    OldRule rule;
    std::set<std::string, std::less<>> seen;
    const std::string what = "a rule option (tagged, authenticated, from, sender, for, recipient, alias, virtual, "
                             "userbase, forward-only, deliver to, relay, expire)";
    while (!r.c.done()) {
        if (r.c.peek()->kind != Token::Kind::Word || !grammar::listed(kRuleOptions, r.c.peek()->text)) {
            r.expected(what);
            return {};
        }
        const Token& opt = r.c.take();
        if (reject && grammar::listed(kAcceptOnly, opt.text)) {
            r.fail(opt.where, quote(opt.text) + " cannot be used in a 'reject' rule");
            return {};
        }
        if (!seen.insert(opt.text).second) {
            r.fail(opt.where, quote(opt.text) + " is given twice");
            return {};
        }
        if (!read_rule_option(r, opt, rule)) return {};
    }
    // An accept rule without a delivery sends mail only where aliases and
    // .forward files say (6.0's A_NONE): the method expand-only.
    if (!reject && !rule.clause) rule.method.push_back(made(head, "expand-only"));
    Result result;
    bool changed = false;
    const std::vector<Line> alternatives = source_lines(rule, head, changed);
    if (alternatives.empty()) {
        result.warning = Diagnostic{head.where, std::string(kNeverHeader)};
        return result;
    }
    Line end;  // `reject`, or `action NAME`
    if (reject) {
        end.push_back(made(head, "reject"));
    } else {
        Line delivery = rule.method;
        append(delivery, rule.local);
        append(delivery, rule.user);
        append(delivery, rule.ttl);
        const std::string key = render(delivery);
        auto it = actions_.find(key);
        if (it == actions_.end()) {
            it = actions_.emplace(key, action_name(delivery.front().text, taken)).first;
            const Token& at = rule.clause ? *rule.clause : head;
            Line action{made(at, "action"), made(at, it->second, Token::Kind::String)};
            append(action, delivery);
            result.lines.push_back(std::move(action));
        }
        end.push_back(made(head, "action"));
        end.push_back(made(head, it->second, Token::Kind::String));
    }
    const std::size_t first_match = result.lines.size();
    for (const Line& criteria : alternatives) {
        Line match{made(head, "match")};
        append(match, criteria);
        append(match, end);
        result.lines.push_back(std::move(match));
    }
    result.warning = Diagnostic{head.where,
                                warning_text(result.lines, changed ? kAuthNote : std::string_view{}, first_match)};
    return result;
}

// The old global spellings: the same line under its current words.
Translator::Result Translator::translate_global(const Line& line, std::vector<Diagnostic>& errors) {
    const Token& head = line.front();
    const std::string& w = head.text;
    Line out;
    std::size_t rest = 1;  // old tokens copied after the new words
    if (w == "max-message-size" || w == "ciphers") {
        out = {made(head, "smtp"), head};
    } else if (w == "expire") {
        out = {made(head, "queue"), made(head, "ttl")};
    } else if (w == "bounce-warn") {
        out = {made(head, "bounce"), made(head, "warn-interval")};
    } else if (w == "max-mta-deferred") {
        out = {made(head, "mta"), made(head, "max-deferred")};
    } else if (w == "subaddressing-delimiter") {
        out = {made(head, "smtp"), made(head, "sub-addr-delim")};
    } else {  // limit session|mta|scheduler ...
        const Token* sub = line.size() > 1 ? &line[1] : nullptr;
        if (!sub || !(sub->is_word("session") || sub->is_word("mta") || sub->is_word("scheduler"))) {
            Cursor c(line);
            c.take();
            errors.push_back(
                Diagnostic{c.where(), "expected session, mta or scheduler after 'limit', found " + c.found()});
            return {};
        }
        out = {sub->is_word("session") ? made(*sub, "smtp") : *sub, head};
        rest = 2;
    }
    out.insert(out.end(), line.begin() + static_cast<std::ptrdiff_t>(rest), line.end());
    Result result;
    result.lines.push_back(std::move(out));
    result.warning = Diagnostic{head.where, warning_text(result.lines)};
    return result;
}

}  // namespace postern::config::legacy
