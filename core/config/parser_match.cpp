// match: the criteria of a rule (from, for, mail-from, rcpt-to, helo, auth,
// tag, tls), their values and tables, and the implied defaults.
#include "config/parser_impl.hpp"

namespace postern::config::detail {

bool Parser::parse_match(Cursor& c) {
    saw_match_ = true;
    Rule r;
    r.where = c.take().where;
    bool have_from = false;
    bool have_for = false;
    std::set<std::string> seen;
    bool ended = false;
    const std::size_t errors_before = errors_.size();
    const std::string what =
        "a match option (from, for, auth, helo, mail-from, rcpt-to, tag, tls), 'action NAME' or 'reject'";
    while (!c.done()) {
        bool negated = false;
        Location neg_at;
        if (c.punct("!")) {
            neg_at = c.take().where;
            negated = true;
        }
        if (c.done() || c.peek()->kind != Token::Kind::Word) return expected(c, what);
        const Token& opt = *c.peek();
        const std::string& w = opt.text;
        if (w == "action" || w == "reject") {
            if (negated) return fail(neg_at, "'!' cannot be used before " + quote(w));
            c.take();
            if (w == "action") {
                if (!c.value()) return expected(c, "an action name after 'action'");
                const Token& name = c.take();
                r.action = name.text;
                if (!cfg_.find_action(r.action) && !broken_actions_.count(r.action))
                    error_at(name.where, "unknown action " + quote(r.action) + ": declare it with 'action " + r.action +
                                             " ...' before this line");
                if (!end_of_line(c, "'action " + r.action + "'")) return false;
            } else {
                r.reject = true;
                if (!end_of_line(c, "'reject'")) return false;
            }
            ended = true;
            break;
        }
        Criterion cr{};
        cr.negated = negated;
        cr.where = negated ? neg_at : opt.where;
        if (w != "from" && w != "for" && w != "auth" && w != "helo" && w != "mail-from" && w != "rcpt-to" &&
            w != "tag" && w != "tls")
            return expected(c, what);
        if (!seen.insert(w).second) return fail(opt.where, quote(w) + " may appear only once in a match rule");
        c.take();
        bool ok = true;
        if (w == "from") {
            ok = parse_from(c, cr);
            have_from = true;
        } else if (w == "for") {
            ok = parse_for(c, cr);
            have_for = true;
        } else if (w == "tls") {
            // The session is under TLS; OpenSMTPD 7.x documents this, though
            // its ruleset answers every such rule with a temporary failure.
            cr.kind = Criterion::Kind::Tls;
        } else if (w == "auth") {
            cr.kind = Criterion::Kind::Auth;
            ok = parse_optional_criterion_value(c, cr, "'auth'");
        } else {
            cr.kind = w == "mail-from" ? Criterion::Kind::MailFrom
                      : w == "rcpt-to" ? Criterion::Kind::RcptTo
                      : w == "helo"    ? Criterion::Kind::Helo
                                       : Criterion::Kind::Tag;
            ok = parse_criterion_value(c, cr, quote(w));
        }
        if (!ok) return false;
        r.criteria.push_back(std::move(cr));
    }
    if (!ended) return expected(c, "'action NAME' or 'reject' to end the match rule");
    // OpenSMTPD's defaults: a rule without `from` is `from local`, without `for` is `for local`.
    if (!have_from) r.criteria.push_back(Criterion{Criterion::Kind::FromLocal, false, false, "", "", r.where});
    if (!have_for) r.criteria.push_back(Criterion{Criterion::Kind::ForLocal, false, false, "", "", r.where});
    if (errors_.size() == errors_before) cfg_.rules.push_back(std::move(r));
    return true;
}

bool Parser::parse_from(Cursor& c, Criterion& cr) {
    const std::string what = "any, local, socket, src, rdns, auth or mail-from after 'from'";
    if (c.done() || c.peek()->kind != Token::Kind::Word) return expected(c, what);
    const Token& t = *c.peek();
    if (t.text == "any") cr.kind = Criterion::Kind::FromAny;
    else if (t.text == "local") cr.kind = Criterion::Kind::FromLocal;
    else if (t.text == "socket") cr.kind = Criterion::Kind::FromSocket;
    else if (t.text == "src") cr.kind = Criterion::Kind::FromSrc;
    else if (t.text == "rdns") cr.kind = Criterion::Kind::FromRdns;
    else if (t.text == "auth") cr.kind = Criterion::Kind::FromAuth;
    else if (t.text == "mail-from") cr.kind = Criterion::Kind::FromMailFrom;
    else return expected(c, what);
    c.take();
    if (cr.kind == Criterion::Kind::FromRdns) return parse_optional_criterion_value(c, cr, "'rdns'");
    if (cr.kind == Criterion::Kind::FromAuth) return parse_optional_criterion_value(c, cr, "'auth'");
    if (cr.kind == Criterion::Kind::FromMailFrom) return parse_criterion_value(c, cr, "'mail-from'");
    return cr.kind != Criterion::Kind::FromSrc || parse_criterion_value(c, cr, "'src'");
}

// `from rdns`, `from auth`, `auth`: the value is optional. What follows is one
// only if it can be a value (a reserved word such as `for` or `action` starts
// the next option; quote a value spelled like one).
bool Parser::parse_optional_criterion_value(Cursor& c, Criterion& cr, const std::string& after) {
    const bool has_value = c.word("regex") || c.punct("<") || c.punct("{") ||
                           (c.value() && !(c.peek()->kind == Token::Kind::Word && is_keyword(c.peek()->text)));
    return !has_value || parse_criterion_value(c, cr, after);
}

bool Parser::parse_for(Cursor& c, Criterion& cr) {
    const std::string what = "any, local, domain or rcpt-to after 'for'";
    if (c.done() || c.peek()->kind != Token::Kind::Word) return expected(c, what);
    const Token& t = *c.peek();
    if (t.text == "any") cr.kind = Criterion::Kind::ForAny;
    else if (t.text == "local") cr.kind = Criterion::Kind::ForLocal;
    else if (t.text == "domain") cr.kind = Criterion::Kind::ForDomain;
    else if (t.text == "rcpt-to") cr.kind = Criterion::Kind::ForRcptTo;
    else return expected(c, what);
    c.take();
    if (cr.kind == Criterion::Kind::ForDomain) return parse_criterion_value(c, cr, "'domain'");
    if (cr.kind == Criterion::Kind::ForRcptTo) return parse_criterion_value(c, cr, "'rcpt-to'");
    return true;
}

// [regex] VALUE | <table> | { inline }
bool Parser::parse_criterion_value(Cursor& c, Criterion& cr, const std::string& after) {
    std::string last = after;
    if (c.word("regex")) {
        c.take();
        cr.regex = true;
        last = "'regex'";
    }
    if (c.punct("<")) {
        auto table = parse_table_ref(c, last);
        if (!table) return false;
        cr.table = *table;
    } else if (c.punct("{")) {
        TableDecl t;
        t.where = c.where();
        t.name = make_inline_table_name(t.where);
        if (!parse_inline_table(c, t)) return false;
        cr.table = t.name;
        cfg_.tables.push_back(std::move(t));
    } else if (c.value() && !(c.peek()->kind == Token::Kind::Word && is_keyword(c.peek()->text))) {
        // A reserved word is refused here, as OpenSMTPD does (quote it to use
        // it as a value): `for domain action x` is a missing value, not a domain.
        cr.value = c.take().text;
    } else {
        return expected(c, "a value, <table> or { ... } after " + last);
    }
    if (cr.kind == Criterion::Kind::Tag && cr.value.size() > kMaxTagLength)
        error_at(cr.where, "tag is longer than " + std::to_string(kMaxTagLength) + " characters");
    return true;
}

}  // namespace postern::config::detail
