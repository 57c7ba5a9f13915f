// pki, ca and listen: TLS names, listener options and their combinations,
// and the pki a listener gets when it names none (6.8's rule).
#include "config/parser_impl.hpp"

namespace postern::config::detail {

bool Parser::parse_pki(Cursor& c) {
    const Location at = c.take().where;
    auto name = parse_tls_name(c, "pki");
    if (!name) return false;
    auto it = std::find_if(cfg_.pkis.begin(), cfg_.pkis.end(), [&](const Pki& p) { return p.name == *name; });
    Pki p = it != cfg_.pkis.end() ? *it : Pki{*name, "", "", "none", at};
    std::set<std::string> seen;
    bool ok = !c.done() || expected(c, "cert, key or dhe after pki name " + quote(*name));
    while (ok && !c.done()) {
        const Token& opt = *c.peek();
        std::string w = opt.kind == Token::Kind::Word ? opt.text : "";
        if (w == "certificate") {
            warnings_.push_back(Diagnostic{opt.where, "'certificate' is the pre-6.4 spelling of 'cert'"});
            w = "cert";
        }
        if (w != "cert" && w != "key" && w != "dhe") {
            ok = expected(c, "cert, key or dhe");
            break;
        }
        const bool set_before = (w == "cert" && !p.cert.empty()) || (w == "key" && !p.key.empty());
        if (!seen.insert(w).second || set_before) {
            ok = fail(opt.where, quote(w) + " is given twice for pki " + quote(*name));
            break;
        }
        c.take();
        if (w == "dhe") {
            if (!c.word("none") && !c.word("auto") && !c.word("legacy")) {
                ok = expected(c, "none, auto or legacy after 'dhe'");
                break;
            }
            p.dhe = c.take().text;
        } else {
            ok = parse_file_value(c, quote(opt.text), w == "cert" ? p.cert : p.key);
        }
    }
    if (!ok) {
        broken_pkis_.insert(*name);
        return false;
    }
    if (it != cfg_.pkis.end()) *it = std::move(p);
    else cfg_.pkis.push_back(std::move(p));
    return true;
}

// ca NAME cert|certificate "FILE"
bool Parser::parse_ca(Cursor& c) {
    const Location at = c.take().where;
    auto name = parse_tls_name(c, "ca");
    if (!name) return false;
    Ca ca{*name, "", at};
    bool ok = true;
    if (const Ca* prev = cfg_.find_ca(*name)) {
        error_at(at, "ca " + quote(*name) + " is declared twice (first at " + where_text(prev->where) + ")");
        ok = false;
    } else if (c.word("certificate")) {
        warnings_.push_back(Diagnostic{c.where(), "'certificate' is the pre-6.4 spelling of 'cert'"});
        c.take();
        ok = parse_file_value(c, "'certificate'", ca.cert);
    } else if (c.word("cert")) {
        c.take();
        ok = parse_file_value(c, "'cert'", ca.cert);
    } else {
        ok = expected(c, "cert after ca name " + quote(*name));
    }
    if (ok) ok = end_of_line(c, "the file name");
    if (!ok) {
        broken_cas_.insert(*name);
        return false;
    }
    cfg_.cas.push_back(std::move(ca));
    return true;
}

// What one `listen` line said beyond the Listener itself: which options were
// seen, and where, for the checks that need the whole line.
struct Parser::ListenScratch {
    std::set<std::string> seen;
    std::string tls_word;   // "tls", "tls-require" or "smtps" as written
    std::string auth_word;  // "auth" or "auth-optional" as written
    Location tls_at, pki_at, auth_at, verify_at, ca_at, ciphers_at, protocols_at, senders_at;
    bool port_given = false;
};

bool Parser::parse_listen(Cursor& c) {
    const Location at = c.take().where;
    if (!c.word("on")) return expected(c, "'on' after 'listen'");
    c.take();
    Listener l;
    l.where = at;
    const std::string what = "an address, interface, hostname or 'socket' after 'listen on'";
    if (!c.value()) return expected(c, what);
    const Token& on = *c.peek();
    if (on.kind == Token::Kind::Word && grammar::listed(kListenOptions, on.text)) return expected(c, what);
    c.take();
    if (on.is_word("socket")) {
        l.socket = true;
        for (const Listener& other : cfg_.listeners)
            if (other.socket)
                return fail(on.where,
                            "'listen on socket' is declared twice (first at " + where_text(other.where) + ")");
    } else {
        l.on = on.text;
    }
    ListenScratch s;
    const std::size_t errors_before = errors_.size();
    while (!c.done())
        if (!parse_listen_option(c, l, s)) return false;
    check_listener(l, s);
    if (errors_.size() != errors_before) return false;
    if ((l.tls || l.smtps) && l.pkis.empty())
        implicit_pkis_.push_back(ImplicitPki{cfg_.listeners.size(), s.tls_at, s.tls_word});
    cfg_.listeners.push_back(std::move(l));
    return true;
}

bool Parser::parse_listen_option(Cursor& c, Listener& l, ListenScratch& s) {
    const std::string what =
        l.socket ? "a 'listen on socket' option (tag, mask-src, no-dsn, filter)"
                 : "a listen option (port, inet4, inet6, hostname, hostnames, tag, mask-src, tls, tls-require, "
                   "smtps, pki, ca, ciphers, protocols, auth, auth-optional, senders, received-auth, no-dsn, "
                   "proxy-v2, filter)";
    if (c.done() || c.peek()->kind != Token::Kind::Word) return expected(c, what);
    const Token& opt = *c.peek();
    std::string w = opt.text;
    if (w == "verify")
        return fail(opt.where, "'verify' must follow 'tls-require' or 'smtps', as in 'tls-require verify'");
    if (w == "masquerade") return fail(opt.where, "'masquerade' must follow 'senders <table>'");
    if (!grammar::listed(kListenOptions, w)) return expected(c, what);
    if (l.socket && !grammar::listed(kSocketListenOptions, w))
        return fail(opt.where, quote(w) + " cannot be used with 'listen on socket'");
    if (w == "mask-source") {
        warnings_.push_back(Diagnostic{opt.where, "'mask-source' is the pre-6.4 spelling of 'mask-src'"});
        w = "mask-src";
    }
    if (w == "tls" || w == "tls-require" || w == "smtps" || w == "pki" || w == "ca" || w == "ciphers" ||
        w == "protocols")
        return parse_listen_tls_option(c, opt, l, s);
    if (w == "auth" || w == "auth-optional" || w == "senders") return parse_listen_auth_option(c, opt, l, s);
    const std::string key = (w == "inet6") ? "inet4" : w;  // one family only
    if (!s.seen.insert(key).second) {
        if (key == "inet4") return fail(opt.where, quote(w) + " conflicts with an earlier address family");
        return fail(opt.where, quote(w) + " is given twice");
    }
    c.take();
    if (w == "port") {
        s.port_given = true;
        return parse_port(c, l.port);
    }
    if (w == "inet4") l.family = Listener::Family::Inet4;
    if (w == "inet6") l.family = Listener::Family::Inet6;
    if (w == "mask-src") l.mask_src = true;
    if (w == "received-auth") l.received_auth = true;
    if (w == "no-dsn") l.no_dsn = true;
    if (w == "proxy-v2") l.proxy_v2 = true;
    if (w == "hostname") return parse_value(c, "a host name after 'hostname'", l.hostname);
    if (w == "filter") {
        auto name = parse_listen_filter(c);
        if (!name) return false;
        l.filter = *name;
        return true;
    }
    if (w == "hostnames") {
        auto table = parse_table_arg(c, "'hostnames'");
        if (!table) return false;
        l.hostnames_table = *table;
        return require_map_table(*table, opt.where, "hostnames");
    }
    if (w == "tag") {
        const Location at = c.where();
        if (!parse_value(c, "a tag after 'tag'", l.tag)) return false;
        if (l.tag.size() > kMaxTagLength)
            return fail(at, "tag is longer than " + std::to_string(kMaxTagLength) + " characters");
    }
    return true;
}

// tls | tls-require [verify] | smtps [verify] | pki NAME | ca NAME | ciphers STR | protocols STR
bool Parser::parse_listen_tls_option(Cursor& c, const Token& opt, Listener& l, ListenScratch& s) {
    const std::string& w = opt.text;
    if (w == "tls" || w == "tls-require" || w == "smtps") {
        if (!s.tls_word.empty()) {
            if (s.tls_word == w) return fail(opt.where, quote(w) + " is given twice");
            return fail(opt.where, quote(w) + " cannot be used together with " + quote(s.tls_word) +
                                       ": a listener offers either STARTTLS (tls, tls-require) or TLS from the "
                                       "first byte (smtps); use one listen line for each");
        }
        s.tls_word = w;
        s.tls_at = opt.where;
        c.take();
        l.tls = w != "smtps";
        l.tls_require = w == "tls-require";
        l.smtps = w == "smtps";
        if (w != "tls" && c.word("verify")) {
            s.verify_at = c.take().where;
            l.verify = true;
        }
        return true;
    }
    if (w == "pki") {
        c.take();
        if (!c.value()) return expected(c, "a pki name after 'pki'");
        const Token& name = c.take();
        const std::string n = lowercase(name.text);
        if (s.pki_at.line == 0) s.pki_at = opt.where;
        if (std::find(l.pkis.begin(), l.pkis.end(), n) != l.pkis.end())
            return fail(name.where, "pki " + quote(n) + " is given twice");
        if (l.pkis.size() >= kMaxListenerPkis)
            return fail(opt.where, "too many 'pki' on one listener: at most " + std::to_string(kMaxListenerPkis));
        require_pki(n, name.where);
        l.pkis.push_back(n);
        return true;
    }
    if (!s.seen.insert(w).second) return fail(opt.where, quote(w) + " is given twice");
    c.take();
    if (w == "ca") {
        s.ca_at = opt.where;
        if (!c.value()) return expected(c, "a ca name after 'ca'");
        const Token& name = c.take();
        l.ca = lowercase(name.text);
        require_ca(l.ca, name.where);
        return true;
    }
    (w == "ciphers" ? s.ciphers_at : s.protocols_at) = opt.where;
    return parse_tls_list(c, w, w == "ciphers" ? l.ciphers : l.protocols);
}

// ciphers STR | protocols STR, on a listener or a relay: the value after the word.
bool Parser::parse_tls_list(Cursor& c, const std::string& w, std::string& out) {
    const std::string what = w == "ciphers"
                                 ? "a cipher list after 'ciphers', quoted as in ciphers \"HIGH:!aNULL\""
                                 : "a protocol list after 'protocols', quoted as in protocols \"tlsv1.2,tlsv1.3\"";
    if (!c.value() || c.peek()->text.empty()) return expected(c, what);
    const Token& v = c.take();
    std::string bad;
    if (w == "protocols" && !valid_protocols(v.text, bad))
        return fail(v.where, "unknown TLS protocol " + quote(bad) +
                                 " in 'protocols': expected tlsv1.2, tlsv1.3, "
                                 "secure, default, legacy or all, separated by ','");
    out = v.text;
    return true;
}

void Parser::require_pki(const std::string& name, const Location& at) {
    if (!cfg_.find_pki(name) && !broken_pkis_.count(name))
        error_at(at, "unknown pki " + quote(name) + ": declare it with 'pki " + name + " cert \"FILE\"' and 'pki " +
                         name + " key \"FILE\"' before this line");
}

void Parser::require_ca(const std::string& name, const Location& at) {
    if (!cfg_.find_ca(name) && !broken_cas_.count(name))
        error_at(at,
                 "unknown ca " + quote(name) + ": declare it with 'ca " + name + " cert \"FILE\"' before this line");
}

// auth [<t>] | auth-optional [<t>] | senders <t> [masquerade]
bool Parser::parse_listen_auth_option(Cursor& c, const Token& opt, Listener& l, ListenScratch& s) {
    const std::string& w = opt.text;
    if (w == "senders") {
        if (!s.seen.insert(w).second) return fail(opt.where, "'senders' is given twice");
        s.senders_at = opt.where;
        c.take();
        auto table = parse_table_arg(c, "'senders'");
        if (!table) return false;
        l.senders_table = *table;
        if (c.word("masquerade")) {
            c.take();
            l.masquerade = true;
        }
        return require_map_table(*table, opt.where, "senders");
    }
    if (!s.auth_word.empty()) {
        if (s.auth_word == w) return fail(opt.where, quote(w) + " is given twice");
        return fail(opt.where, quote(w) + " cannot be used together with " + quote(s.auth_word));
    }
    s.auth_word = w;
    s.auth_at = opt.where;
    c.take();
    l.auth = w == "auth";
    l.auth_optional = w == "auth-optional";
    if (!c.punct("<") && !c.punct("{")) return true;  // system users
    auto table = parse_table_arg(c, quote(w));
    if (!table) return false;
    l.auth_table = *table;
    return require_map_table(*table, opt.where, w);
}

// The checks that need the whole line, as OpenSMTPD makes them once a
// listener is complete (create_if_listener), plus postern's own.
void Parser::check_listener(Listener& l, const ListenScratch& s) {
    const bool tls = l.tls || l.smtps;
    if (!l.pkis.empty() && !tls) error_at(s.pki_at, "'pki' needs 'tls', 'tls-require' or 'smtps' on the same listener");
    if (!s.auth_word.empty() && !tls)
        error_at(s.auth_at, quote(s.auth_word) + " needs 'tls', 'tls-require' or 'smtps' on the same listener: "
                                                 "passwords are never accepted in plaintext");
    if (l.verify && l.ca.empty())
        error_at(s.verify_at, "'verify' needs 'ca NAME' on the same listener: the CA that client certificates "
                              "are checked against");
    const std::pair<const Location*, const char*> tls_only[] = {
        {&s.ca_at, "ca"}, {&s.ciphers_at, "ciphers"}, {&s.protocols_at, "protocols"}};
    for (const auto& [at, word] : tls_only)
        if (at->line != 0 && !tls)
            warnings_.push_back(
                Diagnostic{*at, quote(word) + " has no effect without 'tls', 'tls-require' or 'smtps'"});
    if (!l.senders_table.empty() && !l.auth && !l.auth_optional)
        warnings_.push_back(Diagnostic{s.senders_at, "'senders' has no effect without 'auth' or 'auth-optional'"});
    if (l.smtps && !s.port_given) l.port = 465;
}

// <name> or an inline { ... } (made an anonymous table): a listener's table.

void Parser::resolve_implicit_pkis() {
    for (const ImplicitPki& ip : implicit_pkis_) {
        Listener& l = cfg_.listeners[ip.listener];
        const std::string host = lowercase(l.hostname.empty() ? cfg_.hostname : l.hostname);
        if (!host.empty() && cfg_.find_pki(host)) {
            l.pkis = {host};
        } else if (cfg_.find_pki("*")) {
            l.pkis = {"*"};
        } else if (cfg_.pkis.size() == 1 && broken_pkis_.empty()) {
            l.pkis = {cfg_.pkis.front().name};
        } else if (!broken_pkis_.empty()) {
            continue;  // the broken pki line may be the one meant; it is reported already
        } else if (cfg_.pkis.empty()) {
            error_at(ip.at, quote(ip.word) + " needs a pki, and none is declared: declare one with 'pki NAME cert "
                                             "\"FILE\"' and 'pki NAME key \"FILE\"'");
        } else {
            error_at(ip.at, quote(ip.word) + " needs a pki: none is named " +
                                (host.empty() ? std::string() : quote(host) + " or ") +
                                "'*'; name one with 'pki NAME' on this listener");
        }
    }
}

void Parser::check_pkis_complete() {
    for (const Pki& p : cfg_.pkis) {
        if (broken_pkis_.count(p.name)) continue;
        if (p.cert.empty())
            error_at(p.where, "pki " + quote(p.name) + " has no certificate: add 'pki " + p.name + " cert \"FILE\"'");
        if (p.key.empty())
            error_at(p.where, "pki " + quote(p.name) + " has no key: add 'pki " + p.name + " key \"FILE\"'");
    }
}

bool Parser::parse_port(Cursor& c, int& port) {
    const std::string what = "a port number or one of smtp, submission, smtps after 'port'";
    if (!c.value()) return expected(c, what);
    const Token& t = *c.peek();
    if (t.kind == Token::Kind::Number) {
        auto n = to_number(t.text);  // a leading '-' fails here too
        if (!n || *n < 1 || *n > 65535) return fail(t.where, "port " + t.text + " is out of range (1-65535)");
        port = static_cast<int>(*n);
    } else if (t.text == "smtp") {
        port = 25;
    } else if (t.text == "submission") {
        port = 587;
    } else if (t.text == "smtps") {
        port = 465;
    } else {
        return expected(c, what);
    }
    c.take();
    return true;
}

}  // namespace postern::config::detail
