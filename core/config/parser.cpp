// The smtpd.conf parser: logical lines from the lexer to the Config model.
//
// One function per directive, each reading a line left to right and saying,
// at the first token it cannot use, what it found and what it expected. A
// syntax error abandons that line only; parsing goes on at the next one so a
// user sees every problem at once. Semantic errors (an unknown table, alias
// with virtual) are reported without abandoning the line. Names declared on a
// broken line are remembered, so their later uses do not add noise.
//
// Grammar: OpenSMTPD 6.4+ (see shared/reference/config-grammar.md), plus the
// postern path extensions. TLS listeners follow 6.8, the version the seeds
// were written for: `pki` is optional and chosen by name at the end of the
// file. Words that later issues will add are refused in parser.hpp's lists,
// the one place that says what is not read yet. Pre-6.4 lines are turned into
// current ones by legacy.cpp and read here like any other.
//
// This file holds the line loop and the core directives (macros, include,
// table, smtp, queue, bounce); parser_listen.cpp, parser_action.cpp,
// parser_match.cpp and parser_filter.cpp hold the rest, all around the
// Parser of parser_impl.hpp.
#include "config/parser_impl.hpp"
#include "config/yaml_reader.hpp"

#include <arpa/inet.h>

namespace postern::config {
namespace detail {

void Parser::run() {
    Line line;
    while (!stack_.empty()) {
        if (errors_.size() >= kMaxErrors) break;
        Lexer& lexer = *stack_.back().lexer;
        switch (lexer.next_line(macros_, line, errors_)) {
        case Lexer::Status::End: stack_.pop_back(); break;
        case Lexer::Status::Bad: break;
        case Lexer::Status::Line: parse_line(line); break;
        }
    }
}

void Parser::parse_line(const Line& line) {
    Cursor c(line);
    const Token& first = *c.peek();
    if (c.peek(1) && c.peek(1)->is_punct("=")) {
        parse_macro(c);
        return;
    }
    if (first.kind != Token::Kind::Word) {
        expected(c, "a directive (table, listen, action, match, ...)");
        return;
    }
    const std::string& w = first.text;
    if (w == "include") {
        parse_include(c);
        return;
    }
    if (w == "table") {
        parse_table(c);
        return;
    }
    if (w == "listen") {
        parse_listen(c);
        return;
    }
    if (w == "pki") {
        parse_pki(c);
        return;
    }
    if (w == "ca") {
        parse_ca(c);
        return;
    }
    if (w == "action") {
        parse_action(c);
        return;
    }
    if (w == "match") {
        parse_match(c);
        return;
    }
    if (w == "proc") {
        parse_proc(c);
        return;
    }
    if (w == "filter") {
        parse_filter(c);
        return;
    }
    if (w == "smtp") {
        parse_smtp(c);
        return;
    }
    if (w == "queue") {
        parse_queue(c);
        return;
    }
    if (w == "mta") {
        parse_mta(c);
        return;
    }
    if (w == "mda") {
        parse_mda_wrapper(c);
        return;
    }
    if (w == "metrics") {
        parse_metrics(c);
        return;
    }
    if (w == "srs") {
        parse_srs(c);
        return;
    }
    if (w == "bounce") {
        parse_bounce(c);
        return;
    }
    if (w == "control") {
        c.take();
        if (!c.word("socket")) {
            expected(c, "'socket' after 'control'");
            return;
        }
        c.take();
        parse_path_value(c, "'control socket'", cfg_.control_socket) && end_of_line(c, "the path");
        return;
    }
    if (w == "pidfile") {
        c.take();
        parse_path_value(c, "'pidfile'", cfg_.pid_file) && end_of_line(c, "the path");
        return;
    }
    if (w == "plugin" || w == "mbox") {
        c.take();
        if (!c.word("path")) {
            expected(c, "'path' after " + quote(w));
            return;
        }
        c.take();
        std::string& out = w == "plugin" ? cfg_.plugin_path : cfg_.mbox_path;
        parse_path_value(c, quote(w + " path"), out) && end_of_line(c, "the path");
        return;
    }
    if (w == "hostname") {
        c.take();
        parse_value(c, "a server name after 'hostname'", cfg_.hostname) && end_of_line(c, "the name");
        return;
    }
    if (w == "admd") {
        parse_admd(c);
        return;
    }
    if (w == "scheduler") {
        parse_scheduler(c);
        return;
    }
    if (legacy::is_legacy_directive(w)) {
        parse_legacy(line);
        return;
    }
    error_at(first.where, "unknown directive " + quote(w) +
                              "; expected table, listen, action, match, smtp, queue, include or a macro");
}

// A pre-6.4 line: read as the current lines it translates to, which the
// warning shows. Their tokens point at the old text, so errors do too.
void Parser::parse_legacy(const Line& line) {
    if (line.front().is_word("accept") || line.front().is_word("reject"))
        saw_match_ = true;  // a rule, even a refused one: no "no match rule" on top
    auto taken = [this](std::string_view name) { return cfg_.find_action(name) || broken_actions_.count(name); };
    std::vector<Diagnostic> refusals;
    legacy::Translator::Result t = legacy_.translate(line, taken, refusals);
    for (Diagnostic& d : refusals) error_at(d.where, std::move(d.message));
    if (t.warning) warnings_.push_back(std::move(*t.warning));
    for (const Line& l : t.lines) parse_line(l);
}

// name = value
bool Parser::parse_macro(Cursor& c) {
    const Token& name = c.take();
    if (name.kind != Token::Kind::Word || !valid_macro_name(name.text))
        return fail(name.where, "expected a macro name (letters, digits and '_') before '=', found " + describe(name));
    if (is_keyword(name.text))
        return fail(name.where, quote(name.text) + " is a reserved word and cannot name a macro");
    c.take();  // '='
    if (!c.value()) return expected(c, "a value after '" + name.text + " ='");
    std::string value = c.take().text;
    if (!c.done())
        return expected(c, "end of line after the value of macro " + quote(name.text) +
                               " (quote a value that has spaces)");
    // -D name=value given to posternd wins over the file.
    if (!overrides_.count(name.text)) macros_[name.text] = std::move(value);
    return true;
}

bool Parser::parse_include(Cursor& c) {
    const Token& kw = c.take();
    if (!c.value()) return expected(c, "a quoted file name after 'include'");
    const Token& file = c.take();
    if (!end_of_line(c, "the file name")) return false;
    fs::path path(file.text);
    if (path.is_relative() && !stack_.empty() && !stack_.back().dir.empty()) path = fs::path(stack_.back().dir) / path;
    if (stack_.size() >= kMaxIncludeDepth)
        return fail(kw.where, "includes are nested more than " + std::to_string(kMaxIncludeDepth) + " files deep");
    const std::string canonical = canonical_name(path.string());
    for (const Source& s : stack_)
        if (s.canonical == canonical)
            return fail(file.where, "include loop: " + quote(path.string()) + " is already being read");
    std::string why;
    auto text = read_whole_file(path.string(), why);
    if (!text) return fail(file.where, "cannot read included file " + quote(path.string()) + ": " + why);
    push_source(std::move(*text), path.string());
    return true;
}

bool Parser::parse_table(Cursor& c) {
    c.take();
    if (!c.value()) return expected(c, "a table name after 'table'");
    const Token& name = c.take();
    TableDecl t;
    t.name = name.text;
    t.where = name.where;
    bool ok = true;
    const TableDecl* prev = cfg_.find_table(t.name);
    if (prev && prev->backend == kBuiltinBackend) {
        // Too late to replace it: a line above already uses the built-in one.
        error_at(name.where, "table " + quote(t.name) + " is declared after the built-in <" + t.name +
                                 "> was used at " + where_text(prev->where) +
                                 "; declare it above that line to replace the built-in table");
        ok = false;
    } else if (prev) {
        error_at(name.where,
                 "table " + quote(t.name) + " is declared twice (first at " + where_text(prev->where) + ")");
        ok = false;
    } else if (broken_tables_.count(t.name)) {
        error_at(name.where, "table " + quote(t.name) + " is declared twice");
        ok = false;
    }
    const std::string what = "'BACKEND:/path', a quoted \"/path\" or { ... } after table name " + quote(t.name);
    if (c.punct("{")) {
        ok = parse_inline_table(c, t) && ok;
    } else if (c.value()) {
        const Token& src = c.take();
        std::string_view s = src.text;
        auto colon = s.find(':');
        if (!s.empty() && s.front() == '/') {
            t.backend = "file";
            t.source = src.text;
        } else if (colon != std::string_view::npos && valid_backend_name(s.substr(0, colon))) {
            t.backend = std::string(s.substr(0, colon));
            if (t.backend == "static") t.backend = "file";  // OpenSMTPD's other name for it
            t.source = std::string(s.substr(colon + 1));
            if (t.source.empty() || t.source.front() != '/') {
                error_at(src.where, "expected an absolute path after " + quote(s.substr(0, colon + 1)) + " in table " +
                                        quote(t.name) + ", found " + describe(src));
                ok = false;
            }
        } else {
            error_at(src.where, "expected " + what + ", found " + describe(src));
            ok = false;
        }
    } else {
        ok = expected(c, what);
    }
    if (ok && !end_of_line(c, "the table " + quote(t.name))) ok = false;
    if (!ok) {
        broken_tables_.insert(t.name);
        return false;
    }
    if (is_builtin_table(t.name))
        warnings_.push_back(
            Diagnostic{name.where, "table " + quote(t.name) + " replaces the built-in table <" + t.name + ">"});
    cfg_.tables.push_back(std::move(t));
    return true;
}

// { a, b } or { k = v, k2 => v2 }; commas are optional, as in OpenSMTPD.
bool Parser::parse_inline_table(Cursor& c, TableDecl& t) {
    const Location open = c.take().where;
    t.backend = "inline";
    bool has_list = false;
    bool has_map = false;
    while (!c.punct("}")) {
        if (c.done()) return fail(open, "missing '}' to close this '{'");
        if (c.punct(",")) {
            c.take();
            continue;
        }
        if (!c.value()) return expected(c, "a table entry or '}'");
        const Token& key = c.take();
        if (c.punct("=") || c.punct("=>")) {
            const std::string arrow = c.take().text;
            if (!c.value()) return expected(c, "a value after " + describe(key) + " " + arrow);
            t.entries.emplace_back(key.text, c.take().text);
            has_map = true;
        } else {
            t.entries.emplace_back(key.text, std::string());
            has_list = true;
        }
        if (has_map && has_list)
            return fail(key.where, "a table cannot mix 'key = value' entries and plain list entries");
    }
    c.take();  // '}'
    if (t.entries.empty()) return fail(open, "empty table: expected at least one entry inside { }");
    t.is_map = has_map;
    return true;
}

// <name>, which must be a table declared above or a built-in one.
std::optional<std::string> Parser::parse_table_ref(Cursor& c, const std::string& after) {
    if (!c.punct("<")) {
        expected(c, "a table name in <...> after " + after);
        return std::nullopt;
    }
    c.take();
    if (!c.value()) {
        expected(c, "a table name after '<'");
        return std::nullopt;
    }
    const Token& name = c.take();
    if (!c.punct(">")) {
        expected(c, "'>' after table name " + quote(name.text));
        return std::nullopt;
    }
    c.take();
    if (!cfg_.find_table(name.text) && !broken_tables_.count(name.text) && is_builtin_table(name.text)) {
        // Declared on first use, so the registry opens only the built-ins a file needs.
        TableDecl t;
        t.name = name.text;
        t.backend = std::string(kBuiltinBackend);
        t.where = name.where;
        cfg_.tables.push_back(std::move(t));
    }
    if (!cfg_.find_table(name.text) && !broken_tables_.count(name.text))
        error_at(name.where, "unknown table " + quote(name.text) + ": declare it with 'table " + name.text +
                                 " ...' before this line");
    return name.text;
}

// pki NAME|* or ca NAME|*: the name, checked and lowercased.
std::optional<std::string> Parser::parse_tls_name(Cursor& c, const std::string& directive) {
    if (!c.value()) {
        expected(c, "a host name or '*' after " + quote(directive));
        return std::nullopt;
    }
    const Token& name = c.take();
    if (!valid_tls_name(name.text)) {
        error_at(name.where, "invalid " + directive + " name " + describe(name) + ": expected a host name or '*'");
        return std::nullopt;
    }
    return lowercase(name.text);
}

// A certificate or key file name. The parser does not open it: the daemon
// does, at start-up and with -n, and names the file when it cannot.
bool Parser::parse_file_value(Cursor& c, const std::string& after, std::string& out) {
    if (!c.value() || (c.peek()->kind == Token::Kind::Word && is_keyword(c.peek()->text)) || c.peek()->text.empty())
        return expected(c, "a file name after " + after);
    out = c.take().text;
    return true;
}

// pki NAME cert|certificate "FILE" | key "FILE" | dhe none|auto|legacy ...
// Several lines may name one pki and they combine; that it ends up with a
// certificate and a key is checked at the end of the file.

std::optional<std::string> Parser::parse_table_arg(Cursor& c, const std::string& after) {
    if (c.punct("<")) return parse_table_ref(c, after);
    if (!c.punct("{")) {
        expected(c, "a table <name> or { ... } after " + after);
        return std::nullopt;
    }
    TableDecl t;
    t.where = c.where();
    t.name = make_inline_table_name(t.where);
    if (!parse_inline_table(c, t)) return std::nullopt;
    cfg_.tables.push_back(std::move(t));
    return cfg_.tables.back().name;
}

std::string Parser::make_inline_table_name(const Location& at) const {
    std::string name = "<anon:" + std::to_string(at.line) + ":" + std::to_string(at.column) + ">";
    if (cfg_.find_table(name))  // the same spot in another (included) file
        name = "<anon:" + at.file + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) + ">";
    return name;
}

// Credentials, senders and hostnames tables map a key to a value: an inline
// list or a built-in table cannot be one. (Other backends are checked when opened.)
bool Parser::require_map_table(const std::string& name, const Location& at, const std::string& opt) {
    const TableDecl* t = cfg_.find_table(name);
    if (!t) return true;  // already reported
    if (t->backend == kBuiltinBackend || (t->backend == "inline" && !t->is_map))
        return fail(at,
                    quote(opt) + " needs a table of key = value entries, but table " + quote(t->name) + " is a list");
    return true;
}

// OpenSMTPD 6.8's choice for a tls/smtps listener that names no pki: the pki
// named as the listener's hostname (else the server's), else "*", else the
// only pki there is.

bool Parser::parse_smtp(Cursor& c) {
    c.take();
    const std::string what = "max-message-size, limit, sub-addr-delim or ciphers after 'smtp'";
    if (c.done() || c.peek()->kind != Token::Kind::Word) return expected(c, what);
    const Token& sub = *c.peek();
    if (sub.text == "ciphers") {
        c.take();
        const std::string what_ciphers =
            "a cipher list after 'smtp ciphers', quoted as in smtp ciphers \"HIGH:!aNULL\"";
        if (!c.value() || c.peek()->text.empty()) return expected(c, what_ciphers);
        cfg_.ciphers = c.take().text;
        return end_of_line(c, "the cipher list");
    }
    if (sub.text == "max-message-size") {
        c.take();
        const std::string what_size =
            "a size (bytes, or a number followed by K, M or G, e.g. 35M) after 'max-message-size'";
        if (!c.value()) return expected(c, what_size);
        const Token& v = *c.peek();
        bool overflow = false;
        auto size = parse_size(v.text, overflow);
        if (!size) return expected(c, what_size);
        if (overflow || *size == 0) return fail(v.where, "size " + quote(v.text) + " is out of range");
        c.take();
        cfg_.max_message_size = static_cast<std::size_t>(*size);
        return end_of_line(c, "the size");
    }
    if (sub.text == "limit") {
        c.take();
        const std::string what_limit =
            "max-mails, max-rcpt, max-sessions, max-sessions-per-address, max-conn-rate, max-auth-failures, "
            "command-timeout, tls-timeout or min-data-rate";
        if (c.done()) return expected(c, what_limit + " after 'limit'");
        while (!c.done()) {
            const Token& k = *c.peek();
            unsigned* target = k.is_word("max-mails")                  ? &cfg_.max_mails
                               : k.is_word("max-rcpt")                 ? &cfg_.max_rcpt
                               : k.is_word("max-sessions")             ? &cfg_.max_sessions
                               : k.is_word("max-sessions-per-address") ? &cfg_.max_sessions_per_address
                               : k.is_word("max-conn-rate")            ? &cfg_.max_conn_rate
                               : k.is_word("max-auth-failures")        ? &cfg_.max_auth_failures
                               : k.is_word("command-timeout")          ? &cfg_.command_timeout
                               : k.is_word("tls-timeout")              ? &cfg_.tls_timeout
                               : k.is_word("min-data-rate")            ? &cfg_.min_data_rate
                                                                       : nullptr;
            if (!target) return expected(c, what_limit);
            c.take();
            if (!parse_limit_number(c, quote(k.text), *target)) return false;
        }
        return true;
    }
    if (sub.text == "sub-addr-delim") {
        c.take();
        const std::string what_delim = "a single character (not '@' or a space) after 'sub-addr-delim'";
        if (!c.value()) return expected(c, what_delim);
        const std::string& v = c.peek()->text;
        if (v.size() != 1 || v[0] == '@' || v[0] <= ' ' || v[0] > '~') return expected(c, what_delim);
        cfg_.sub_addr_delim = v[0];
        c.take();
        return end_of_line(c, "the delimiter");
    }
    return expected(c, what);
}

// mta resolver "ADDR[:PORT][,...]" (postern): the DNS servers MX routing
// asks instead of /etc/resolv.conf's; mta max-deferred N; mta limit [for
// domain D] {inet4|inet6|KEY N}... (parse_mta_limit).
bool Parser::parse_mta(Cursor& c) {
    c.take();
    const std::string what = "resolver, limit or max-deferred after 'mta'";
    if (c.done() || c.peek()->kind != Token::Kind::Word) return expected(c, what);
    const Token& sub = c.take();
    if (sub.text == "resolver") {
        const std::string what_addr =
            "DNS server addresses after 'mta resolver', as in mta resolver \"127.0.0.1:5353\"";
        if (!c.value()) return expected(c, what_addr);
        const Token& v = c.take();
        if (v.text.empty() || v.text.find_first_not_of("0123456789abcdefABCDEF.:[],") != std::string::npos)
            return fail(v.where, "invalid DNS server list " + describe(v) + "; expected ADDR[:PORT] separated by ','");
        cfg_.mta_resolver = v.text;
        return end_of_line(c, "the server list");
    }
    if (sub.text == "limit") return parse_mta_limit(c);
    if (sub.text == "max-deferred") {
        unsigned n = 0;
        if (!parse_limit_number(c, "'mta max-deferred'", n) || !end_of_line(c, "the number")) return false;
        warnings_.push_back(Diagnostic{
            sub.where, "'mta max-deferred' has no effect in postern: OpenSMTPD caps the envelopes it holds in memory "
                       "for a host that fails temporarily; postern keeps deferred envelopes in the queue only, each "
                       "retried on its own schedule"});
        return true;
    }
    return fail(sub.where, "unknown 'mta' option " + quote(sub.text) + "; expected " + what);
}

namespace {

// OpenSMTPD's `mta limit` keys that postern reads but does not act on, and
// what it does instead (the warning's second half).
struct InertMtaLimit {
    std::string_view key;
    std::string_view instead;
};
constexpr std::string_view kPerDestination =
    "postern limits connections per smarthost (max-conn-per-relay) and per recipient domain (max-conn-per-domain)";
constexpr std::string_view kNoPacing =
    "postern does not space out connections; each destination's connections at once are bounded by "
    "max-conn-per-relay and max-conn-per-domain";
constexpr std::string_view kTasks =
    "they pace OpenSMTPD's internal task queue; postern hands a destination's envelopes to one delivery agent run "
    "at a time, 32 at most (see scheduler limit max-evp-batch-size)";
constexpr InertMtaLimit kInertMtaLimits[] = {
    {"max-conn-per-host", kPerDestination},
    {"max-conn-per-route", kPerDestination},
    {"max-conn-per-source", kPerDestination},
    {"max-conn-per-connector", kPerDestination},
    {"conn-delay-host", kNoPacing},
    {"conn-delay-route", kNoPacing},
    {"conn-delay-source", kNoPacing},
    {"conn-delay-connector", kNoPacing},
    {"conn-delay-relay", kNoPacing},
    {"conn-delay-domain", kNoPacing},
    {"reconn-delay-route", kNoPacing},
    {"session-transaction-delay", "postern starts the next transaction on a connection at once"},
    {"max-failures-per-session",
     "postern keeps a connection across refused transactions (with RSET) until session-mail-max, a 421 or an error"},
    {"task-hiwat", kTasks},
    {"task-lowat", kTasks},
    {"task-release", kTasks},
};

const InertMtaLimit* inert_mta_limit(std::string_view key) {
    for (const InertMtaLimit& l : kInertMtaLimits)
        if (l.key == key) return &l;
    return nullptr;
}

constexpr unsigned kMaxSessionKeepalive = 300;  // plugins/relay/scache.hpp: a kept connection's age limit

}  // namespace

// mta limit [for domain D] {inet4|inet6|KEY N}...: the keys postern acts on
// set the config; the others (kInertMtaLimits) are read with a warning. With
// `for domain D`, only max-conn-per-domain acts (D's own limit).
bool Parser::parse_mta_limit(Cursor& c) {
    std::string domain;
    if (c.word("for")) {
        c.take();
        if (!c.word("domain")) return expected(c, "'domain' after 'mta limit for'");
        c.take();
        if (!c.value() || (c.peek()->kind == Token::Kind::Word && is_keyword(c.peek()->text)) || c.peek()->text.empty())
            return expected(c, "a domain after 'mta limit for domain'");
        domain = lowercase(c.take().text);
    }
    const std::string what = "inet4, inet6 or a limit (max-conn-per-domain, max-conn-per-relay, session-mail-max, "
                             "session-keepalive, ...) after 'mta limit'";
    if (c.done()) return expected(c, what);
    const std::string for_domain = domain.empty() ? "" : " for domain " + domain;
    while (!c.done()) {
        if (c.peek()->kind != Token::Kind::Word) return expected(c, what);
        const Token& k = c.take();
        if (k.text == "inet4" || k.text == "inet6") {
            if (!domain.empty())
                warnings_.push_back(Diagnostic{k.where, "'mta limit for domain ... " + k.text +
                                                            "' has no effect in postern: the address family is "
                                                            "chosen for every destination ('mta limit " +
                                                            k.text + "')"});
            else cfg_.mta_family = k.text == "inet4" ? 4 : 6;
            continue;
        }
        const InertMtaLimit* inert = inert_mta_limit(k.text);
        const bool acts = k.text == "max-conn-per-domain" || k.text == "max-conn-per-relay" ||
                          k.text == "session-mail-max" || k.text == "session-keepalive";
        if (!inert && !acts) return fail(k.where, "unknown 'mta limit' key " + quote(k.text) + "; expected " + what);
        unsigned n = 0;
        const std::string after = quote(k.text);
        if (inert || k.text == "session-keepalive") {
            // Delays and these counts may be 0 in OpenSMTPD.
            if (c.done() || c.peek()->kind != Token::Kind::Number) return expected(c, "a number after " + after);
            const Token& v = c.take();
            auto num = to_number(v.text);
            const std::uint64_t max = k.text == "session-keepalive" ? kMaxSessionKeepalive : kMaxLimit;
            if (!num || *num > max)
                return fail(v.where, after + " " + v.text + " is out of range (0-" + std::to_string(max) + ")");
            n = static_cast<unsigned>(*num);
        } else if (!parse_limit_number(c, after, n)) {
            return false;
        }
        if (inert) {
            warnings_.push_back(Diagnostic{k.where, "'mta limit" + for_domain + " " + k.text +
                                                        "' has no effect in postern: " + std::string(inert->instead)});
            continue;
        }
        if (!domain.empty() && k.text != "max-conn-per-domain") {
            warnings_.push_back(Diagnostic{k.where, "'mta limit for domain ... " + k.text +
                                                        "' has no effect in postern: only max-conn-per-domain is "
                                                        "set per domain; write 'mta limit " +
                                                        k.text + " N' to set it for every destination"});
            continue;
        }
        if (k.text == "max-conn-per-domain" && !domain.empty()) cfg_.mta_max_conn_for_domain[domain] = n;
        else if (k.text == "max-conn-per-domain") cfg_.mta_max_conn_per_domain = n;
        else if (k.text == "max-conn-per-relay") cfg_.mta_max_conn_per_relay = n;
        else if (k.text == "session-mail-max") cfg_.mta_session_mail_max = n;
        else cfg_.mta_session_keepalive = n;
    }
    return true;
}

// admd "authserv-id": what filters are told as config|admd. One word of
// printable characters: filters write it into Authentication-Results.
bool Parser::parse_admd(Cursor& c) {
    const Token& kw = c.take();
    if (!cfg_.admd.empty()) return fail(kw.where, "'admd' is given twice");
    const std::string what = "an authserv-id after 'admd', as in admd \"mx.example.org\"";
    if (!c.value() || c.peek()->text.empty()) return expected(c, what);
    const Token& v = *c.peek();
    for (char ch : v.text)
        if (ch <= ' ' || ch > '~' || ch == ';')
            return fail(v.where, "invalid authserv-id " + describe(v) +
                                     ": expected one word of printable characters, without ';'");
    if (v.text.size() > 255) return fail(v.where, "the authserv-id is longer than 255 characters");
    cfg_.admd = c.take().text;
    return end_of_line(c, "the authserv-id");
}

// scheduler limit KEY N...: max-evp-batch-size caps one delivery agent
// run's batch; the other keys tune OpenSMTPD's scheduler process, which
// postern does not have (a warning says what it does instead).
bool Parser::parse_scheduler(Cursor& c) {
    c.take();
    if (!c.word("limit")) return expected(c, "'limit' after 'scheduler'");
    c.take();
    const std::string what = "max-inflight, max-evp-batch-size, max-msg-batch-size or max-schedule";
    if (c.done()) return expected(c, what + " after 'scheduler limit'");
    while (!c.done()) {
        const Token& k = *c.peek();
        if (!k.is_word("max-inflight") && !k.is_word("max-evp-batch-size") && !k.is_word("max-msg-batch-size") &&
            !k.is_word("max-schedule"))
            return expected(c, what);
        c.take();
        unsigned n = 0;
        if (!parse_limit_number(c, quote(k.text), n)) return false;
        if (k.text == "max-evp-batch-size") {
            cfg_.scheduler_max_evp_batch = n;
            continue;
        }
        std::string instead;
        if (k.text == "max-inflight")
            instead = "postern bounds deliveries under way by agent runs (32 local and 1000 relay runs at once, "
                      "'mta limit max-conn-per-relay' and 'max-conn-per-domain' per destination), not by envelopes";
        else if (k.text == "max-msg-batch-size")
            instead = "postern's scheduler works on envelopes, not on batches of messages";
        else instead = "postern's scheduler starts every delivery that is due and under its limits at once";
        warnings_.push_back(
            Diagnostic{k.where, "'scheduler limit " + k.text + "' has no effect in postern: " + instead});
    }
    return true;
}

// srs key SECRET | srs key backup SECRET | srs ttl DELAY (whole days).
bool Parser::parse_srs(Cursor& c) {
    c.take();
    if (c.word("ttl")) {
        c.take();
        const Location at = c.where();
        std::chrono::seconds d{};
        if (!parse_delay_value(c, "'srs ttl'", d)) return false;
        if (d.count() % 86400 != 0) return fail(at, "'srs ttl' must be whole days, as in srs ttl 4d");
        cfg_.srs_ttl = d;
        return end_of_line(c, "the delay");
    }
    if (!c.word("key")) return expected(c, "key or ttl after 'srs'");
    c.take();
    bool backup = c.word("backup") && c.peek(1);
    if (backup) c.take();
    std::string& out = backup ? cfg_.srs_backup_key : cfg_.srs_key;
    if (!parse_value(c, backup ? "a secret after 'srs key backup'" : "a secret after 'srs key'", out)) return false;
    return end_of_line(c, "the secret");
}

bool Parser::parse_queue(Cursor& c) {
    c.take();
    const std::string what = "ttl, path, compression or encryption after 'queue'";
    if (c.done() || c.peek()->kind != Token::Kind::Word) return expected(c, what);
    const Token& sub = *c.peek();
    if (sub.text == "compression") {
        c.take();
        cfg_.queue_compression = true;
        return end_of_line(c, "'queue compression'");
    }
    if (sub.text == "encryption") {
        cfg_.queue_encryption_where = sub.where;
        c.take();
        return parse_queue_key(c);
    }
    if (sub.text == "ttl") {
        c.take();
        return parse_delay_value(c, "'queue ttl'", cfg_.queue_ttl) && end_of_line(c, "the delay");
    }
    if (sub.text == "path") {
        c.take();
        return parse_path_value(c, "'queue path'", cfg_.queue_path) && end_of_line(c, "the path");
    }
    return expected(c, what);
}

// queue encryption [[key] KEY]: KEY as OpenSMTPD takes it, 32 characters
// (what `openssl rand -hex 16` prints), used as the AES-256 key; without it,
// the key file is read at start-up (daemon/at_rest.hpp). "key" is the
// spelling before 6.4.
bool Parser::parse_queue_key(Cursor& c) {
    cfg_.queue_encryption = true;
    if (c.word("key")) {
        if (c.peek(1)) warnings_.push_back(Diagnostic{c.where(), "'key' before the key is the pre-6.4 spelling"});
        c.take();
    }
    if (c.done()) return true;
    const Token& k = *c.peek();
    if (k.text == "stdin" || k.text == "-")
        return fail(k.where, "postern does not read the queue key from standard input (a daemon has none): leave the "
                             "key out to read it from the key file, or write it here");
    if (!parse_value(c, "the key after 'queue encryption'", cfg_.queue_encryption_key)) return false;
    if (cfg_.queue_encryption_key.size() != 32)
        return fail(k.where, "the queue encryption key must be 32 characters, as 'openssl rand -hex 16' prints; this "
                             "one has " +
                                 std::to_string(cfg_.queue_encryption_key.size()));
    return end_of_line(c, "the key");
}

// metrics listen on ADDRESS [port N]: an address literal (or localhost),
// since the endpoint answers anyone who reaches it: naming it is deliberate.
bool Parser::parse_metrics(Cursor& c) {
    const Location at = c.take().where;
    if (!c.word("listen")) return expected(c, "'listen on' after 'metrics'");
    c.take();
    if (!c.word("on")) return expected(c, "'on' after 'metrics listen'");
    c.take();
    if (!cfg_.metrics_address.empty())
        return fail(at, "metrics is given twice (first at " + where_text(cfg_.metrics_where) + ")");
    const std::string what = "an IP address or localhost after 'metrics listen on'";
    if (!c.value()) return expected(c, what);
    const Token& address = *c.peek();
    unsigned char buf[16];
    std::string a = address.text == "localhost" ? "127.0.0.1" : address.text;
    if (!a.empty() && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
    if (inet_pton(AF_INET, a.c_str(), buf) != 1 && inet_pton(AF_INET6, a.c_str(), buf) != 1) return expected(c, what);
    c.take();
    int port = 9154;
    if (c.word("port")) {
        c.take();
        if (!parse_port(c, port)) return false;
    }
    if (!end_of_line(c, "the metrics address and port")) return false;
    cfg_.metrics_address = a;
    cfg_.metrics_port = port;
    cfg_.metrics_where = at;
    return true;
}

// bounce warn-interval DELAY[, DELAY...]: the first line replaces the default,
// later lines add to it, at most kMaxBounceWarnIntervals delays in all.
bool Parser::parse_bounce(Cursor& c) {
    c.take();
    if (!c.word("warn-interval")) return expected(c, "'warn-interval' after 'bounce'");
    c.take();
    std::vector<std::chrono::seconds> delays;
    std::string after = "'bounce warn-interval'";
    const Location first = c.where();
    while (true) {
        std::chrono::seconds d{};
        if (!parse_delay_value(c, after, d)) return false;
        delays.push_back(d);
        if (!c.punct(",")) break;
        c.take();
        after = "','";
    }
    if (!end_of_line(c, "the delay (separate delays with ',')")) return false;
    if (!saw_bounce_) cfg_.bounce_warn_interval.clear();
    saw_bounce_ = true;
    if (cfg_.bounce_warn_interval.size() + delays.size() > Config::kMaxBounceWarnIntervals)
        return fail(first, "too many bounce warn-interval delays: at most " +
                               std::to_string(Config::kMaxBounceWarnIntervals) + " in all");
    cfg_.bounce_warn_interval.insert(cfg_.bounce_warn_interval.end(), delays.begin(), delays.end());
    return true;
}

bool Parser::parse_value(Cursor& c, const std::string& what, std::string& out) {
    if (!c.value()) return expected(c, what);
    out = c.take().text;
    return true;
}

bool Parser::parse_path_value(Cursor& c, const std::string& after, std::string& out) {
    const std::string what = "an absolute path after " + after;
    if (!c.value() || c.peek()->text.empty() || c.peek()->text.front() != '/') return expected(c, what);
    out = c.take().text;
    return true;
}

bool Parser::parse_delay_value(Cursor& c, const std::string& after, std::chrono::seconds& out) {
    const std::string what = "a delay (a number followed by s, m, h or d, e.g. 4d) after " + after;
    if (!c.value()) return expected(c, what);
    const Token& v = *c.peek();
    bool overflow = false;
    auto secs = parse_delay(v.text, overflow);
    if (!secs) return expected(c, what);
    if (overflow || *secs == 0)
        return fail(v.where, "delay " + quote(v.text) + " is out of range (1s to " +
                                 std::to_string(kMaxDelaySeconds / 86400) + "d)");
    c.take();
    out = std::chrono::seconds(*secs);
    return true;
}

bool Parser::parse_limit_number(Cursor& c, const std::string& after, unsigned& out) {
    if (c.done() || c.peek()->kind != Token::Kind::Number) return expected(c, "a number after " + after);
    const Token& v = c.take();
    auto n = to_number(v.text);
    if (!n || *n < 1 || *n > kMaxLimit)
        return fail(v.where, after + " " + v.text + " is out of range (1-" + std::to_string(kMaxLimit) + ")");
    out = static_cast<unsigned>(*n);
    return true;
}

ParseResult Parser::finish(const std::string& main_file) {
    const bool gave_up = errors_.size() >= kMaxErrors;
    if (gave_up) errors_.push_back(Diagnostic{errors_.back().where, "too many errors, giving up"});
    if (!gave_up) {
        check_pkis_complete();
        resolve_implicit_pkis();
    }
    if (!cfg_.srs_where.file.empty() && cfg_.srs_key.empty())
        errors_.push_back(Diagnostic{cfg_.srs_where, "'srs' needs a key: add 'srs key SECRET'"});
    if (!saw_match_ && !gave_up)
        errors_.push_back(Diagnostic{Location{main_file, 1, 1},
                                     "no 'match' rule: nothing would ever be accepted; add at least one "
                                     "'match ... action NAME' line"});
    // OpenSMTPD listens on the local socket even when the file does not say so.
    bool have_socket = false;
    for (const Listener& l : cfg_.listeners) have_socket = have_socket || l.socket;
    if (!have_socket) {
        Listener l;
        l.socket = true;
        l.where = Location{main_file, 0, 0};  // line 0: implied, not written
        cfg_.listeners.push_back(std::move(l));
    }
    ParseResult result;
    result.errors = std::move(errors_);
    result.warnings = std::move(warnings_);
    if (result.errors.empty()) result.config = std::move(cfg_);
    return result;
}

}  // namespace detail

using detail::Parser;
using detail::read_whole_file;

ParseResult parse_text(std::string_view text, const std::string& name, const Macros& overrides) {
    Parser p(overrides);
    p.push_source(std::string(text), name);
    p.run();
    return p.finish(name);
}

ParseResult parse_file(const std::string& path, const Macros& overrides) {
    if (is_yaml_name(path)) return read_yaml_file(path, overrides);  // the same model in YAML
    std::string why;
    auto text = read_whole_file(path, why);
    if (!text) {
        ParseResult r;
        r.errors.push_back(Diagnostic{Location{path, 0, 0}, "cannot read config file: " + why});
        return r;
    }
    return parse_text(*text, path, overrides);
}

}  // namespace postern::config
