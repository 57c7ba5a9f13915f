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
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <arpa/inet.h>

#include "config/config.hpp"
#include "config/legacy.hpp"
#include "config/lexer.hpp"
#include "config/parser.hpp"

namespace postern::config {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t kMaxIncludeDepth = 16;
constexpr std::size_t kMaxErrors = 200;  // a binary fed as a config says enough by then
constexpr std::size_t kMaxTagLength = 32;
constexpr std::uint64_t kMaxLimit = 1'000'000;
constexpr std::uint64_t kMaxDelaySeconds = std::numeric_limits<std::int32_t>::max();

using grammar::is_keyword;

std::string where_text(const Location& l) {
    return l.file + ":" + std::to_string(l.line) + ":" + std::to_string(l.column);
}

std::optional<std::uint64_t> to_number(std::string_view s) {
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return v;
}

bool all_digits(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

// "35M" style sizes (OpenSMTPD's scan_scaled, integers only). nullopt: bad
// syntax; 0: out of range.
std::optional<std::uint64_t> parse_size(std::string_view s, bool& overflow) {
    overflow = false;
    std::uint64_t scale = 1;
    if (!s.empty()) {
        switch (s.back()) {
        case 'b': case 'B': scale = 1; break;
        case 'k': case 'K': scale = 1ull << 10; break;
        case 'm': case 'M': scale = 1ull << 20; break;
        case 'g': case 'G': scale = 1ull << 30; break;
        case 't': case 'T': scale = 1ull << 40; break;
        default: scale = 0; break;
        }
        if (scale != 0) s.remove_suffix(1);
        else scale = 1;
    }
    if (!all_digits(s)) return std::nullopt;
    auto n = to_number(s);
    if (!n || *n > std::numeric_limits<std::uint64_t>::max() / scale ||
        *n * scale > std::numeric_limits<std::size_t>::max()) {
        overflow = true;
        return std::uint64_t{0};
    }
    return *n * scale;
}

// "4d" style delays: a number and one of s, m, h, d. nullopt: bad syntax.
std::optional<std::uint64_t> parse_delay(std::string_view s, bool& overflow) {
    overflow = false;
    if (s.size() < 2) return std::nullopt;
    std::uint64_t unit = 0;
    switch (s.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: return std::nullopt;
    }
    s.remove_suffix(1);
    if (!all_digits(s)) return std::nullopt;
    auto n = to_number(s);
    if (!n || *n > kMaxDelaySeconds / unit) {
        overflow = true;
        return std::uint64_t{0};
    }
    return *n * unit;
}

bool valid_backend_name(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
    return true;
}

bool valid_macro_name(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    return true;
}

std::string lowercase(std::string_view s) {
    std::string out(s);
    for (char& ch : out)
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    return out;
}

// A pki or ca name: "*" or a host name (labels of letters, digits, '-' and
// '_' joined by dots), as OpenSMTPD requires.
bool valid_tls_name(std::string_view s) {
    if (s == "*") return true;
    if (s.empty() || s.size() > 253 || s.front() == '.' || s.back() == '.') return false;
    char prev = '.';
    for (char c : s) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        c == '-' || c == '_' || c == '.';
        if (!ok || (c == '.' && prev == '.')) return false;
        prev = c;
    }
    return true;
}

// A libtls protocol list ("tlsv1.2,tlsv1.3", "secure", "all:!tlsv1.0"), as
// OpenSMTPD 7.x accepts it; the daemon maps it onto OpenSSL's versions.
bool valid_protocols(std::string_view s, std::string& bad) {
    static constexpr std::string_view kNames[] = {"all", "default", "secure", "legacy", "tlsv1",
                                                  "tlsv1.0", "tlsv1.1", "tlsv1.2", "tlsv1.3"};
    if (s.empty()) return false;
    while (true) {
        const std::size_t end = s.find_first_of(",:");
        std::string_view item = s.substr(0, end);
        std::string_view name = item;
        if (!name.empty() && (name.front() == '!' || name.front() == '+' || name.front() == '-')) name.remove_prefix(1);
        if (!grammar::listed(kNames, lowercase(name))) {
            bad = std::string(item);
            return false;
        }
        if (end == std::string_view::npos) return true;
        s.remove_prefix(end + 1);
    }
}

// Every word that may follow `listen on ADDRESS` (and so cannot be the address).
constexpr std::string_view kListenOptions[] = {
    "port", "inet4", "inet6", "hostname", "hostnames", "tag", "mask-src", "mask-source", "tls",
    "tls-require", "smtps", "verify", "pki", "ca", "ciphers", "protocols", "auth", "auth-optional",
    "senders", "masquerade", "received-auth", "no-dsn",
};
constexpr std::string_view kSocketListenOptions[] = {"tag", "mask-src", "mask-source", "no-dsn"};
constexpr std::size_t kMaxListenerPkis = 32;  // OpenSMTPD 7.x's limit

std::optional<std::string> read_whole_file(const std::string& path, std::string& why) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        why = std::strerror(EISDIR);
        return std::nullopt;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        why = std::strerror(errno);
        return std::nullopt;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) {
        why = std::strerror(errno);
        return std::nullopt;
    }
    return ss.str();
}

std::string canonical_name(const std::string& path) {
    std::error_code ec;
    fs::path p = fs::weakly_canonical(fs::path(path), ec);
    return ec ? path : p.string();
}

class Parser {
public:
    explicit Parser(const Macros& overrides) : macros_(overrides), overrides_(overrides) {}

    void push_source(std::string text, const std::string& name) {
        stack_.push_back(Source{std::make_unique<Lexer>(std::move(text), name), canonical_name(name),
                                fs::path(name).parent_path().string()});
    }

    void error_at(const Location& at, std::string message) {
        if (errors_.size() < kMaxErrors) errors_.push_back(Diagnostic{at, std::move(message)});
    }

    void run();
    ParseResult finish(const std::string& main_file);

private:
    struct Source {
        std::unique_ptr<Lexer> lexer;
        std::string canonical;  // for include loops
        std::string dir;        // relative includes resolve here
    };

    // Adds "expected WHAT, found X" at the cursor; returns false to abandon the line.
    bool expected(const Cursor& c, const std::string& what) {
        error_at(c.where(), "expected " + what + ", found " + c.found());
        return false;
    }
    bool fail(const Location& at, std::string message) {
        error_at(at, std::move(message));
        return false;
    }
    bool end_of_line(const Cursor& c, const std::string& after) {
        return c.done() || expected(c, "end of line after " + after);
    }

    void parse_line(const Line& line);
    bool parse_macro(Cursor& c);
    bool parse_include(Cursor& c);
    bool parse_table(Cursor& c);
    bool parse_inline_table(Cursor& c, TableDecl& t);
    std::optional<std::string> parse_table_ref(Cursor& c, const std::string& after);
    bool parse_pki(Cursor& c);
    bool parse_ca(Cursor& c);
    std::optional<std::string> parse_tls_name(Cursor& c, const std::string& directive);
    bool parse_file_value(Cursor& c, const std::string& after, std::string& out);
    bool parse_listen(Cursor& c);
    struct ListenScratch;
    bool parse_listen_option(Cursor& c, Listener& l, ListenScratch& s);
    bool parse_listen_tls_option(Cursor& c, const Token& opt, Listener& l, ListenScratch& s);
    bool parse_listen_auth_option(Cursor& c, const Token& opt, Listener& l, ListenScratch& s);
    bool parse_tls_list(Cursor& c, const std::string& w, std::string& out);
    void require_pki(const std::string& name, const Location& at);
    void require_ca(const std::string& name, const Location& at);
    void check_listener(Listener& l, const ListenScratch& s);
    std::optional<std::string> parse_table_arg(Cursor& c, const std::string& after);
    std::string make_inline_table_name(const Location& at) const;
    bool require_map_table(const std::string& name, const Location& at, const std::string& opt);
    void resolve_implicit_pkis();
    void check_pkis_complete();
    bool parse_port(Cursor& c, int& port);
    bool parse_action(Cursor& c);
    bool parse_action_options(Cursor& c, Action& a);
    bool parse_mda_command(Cursor& c, Action& a);
    bool parse_lmtp_destination(Cursor& c, Action& a);
    bool parse_relay_options(Cursor& c, Action& a);
    bool parse_relay_option(Cursor& c, const Token& opt, Relay& r);
    void check_relay(const Relay& r, const std::map<std::string, Location, std::less<>>& seen);
    void parse_legacy(const Line& line);
    bool parse_match(Cursor& c);
    bool parse_from(Cursor& c, Criterion& cr);
    bool parse_for(Cursor& c, Criterion& cr);
    bool parse_criterion_value(Cursor& c, Criterion& cr, const std::string& after);
    bool parse_optional_criterion_value(Cursor& c, Criterion& cr, const std::string& after);
    bool parse_smtp(Cursor& c);
    bool parse_queue(Cursor& c);
    bool parse_bounce(Cursor& c);
    bool parse_path_value(Cursor& c, const std::string& after, std::string& out);
    bool parse_value(Cursor& c, const std::string& what, std::string& out);
    bool parse_delay_value(Cursor& c, const std::string& after, std::chrono::seconds& out);
    bool parse_limit_number(Cursor& c, const std::string& after, unsigned& out);

    std::vector<Source> stack_;
    Macros macros_;
    const Macros& overrides_;
    Config cfg_;
    std::vector<Diagnostic> errors_;
    std::vector<Diagnostic> warnings_;
    std::set<std::string, std::less<>> broken_tables_;   // declared on a line with errors
    std::set<std::string, std::less<>> broken_actions_;
    std::set<std::string, std::less<>> broken_pkis_;   // named on a line with errors
    std::set<std::string, std::less<>> broken_cas_;
    // tls/smtps listeners that named no pki: resolved at the end of the file,
    // as OpenSMTPD 6.8 looked the pki up by name only when serving.
    struct ImplicitPki {
        std::size_t listener;  // index in cfg_.listeners
        Location at;           // the tls/smtps option
        std::string word;      // "tls", "tls-require" or "smtps"
    };
    std::vector<ImplicitPki> implicit_pkis_;
    legacy::Translator legacy_;
    bool saw_match_ = false;
    bool saw_bounce_ = false;  // the first `bounce warn-interval` replaces the default
};

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
    if (w == "include") { parse_include(c); return; }
    if (w == "table") { parse_table(c); return; }
    if (w == "listen") { parse_listen(c); return; }
    if (w == "pki") { parse_pki(c); return; }
    if (w == "ca") { parse_ca(c); return; }
    if (w == "action") { parse_action(c); return; }
    if (w == "match") { parse_match(c); return; }
    if (w == "smtp") { parse_smtp(c); return; }
    if (w == "queue") { parse_queue(c); return; }
    if (w == "bounce") { parse_bounce(c); return; }
    if (w == "control") {
        c.take();
        if (!c.word("socket")) { expected(c, "'socket' after 'control'"); return; }
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
        if (!c.word("path")) { expected(c, "'path' after " + quote(w)); return; }
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
    if (grammar::listed(grammar::kUnsupportedDirectives, w)) {
        error_at(first.where, quote(w) + " is not supported yet");
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
        return fail(name.where, "expected a macro name (letters, digits and '_') before '=', found " +
                                    describe(name));
    if (is_keyword(name.text))
        return fail(name.where, quote(name.text) + " is a reserved word and cannot name a macro");
    c.take();  // '='
    if (!c.value()) return expected(c, "a value after '" + name.text + " ='");
    std::string value = c.take().text;
    if (!c.done()) return expected(c, "end of line after the value of macro " + quote(name.text) +
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
    if (path.is_relative() && !stack_.empty() && !stack_.back().dir.empty())
        path = fs::path(stack_.back().dir) / path;
    if (stack_.size() >= kMaxIncludeDepth)
        return fail(kw.where, "includes are nested more than " + std::to_string(kMaxIncludeDepth) +
                                  " files deep");
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
        error_at(name.where, "table " + quote(t.name) + " is declared twice (first at " +
                                 where_text(prev->where) + ")");
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
                error_at(src.where, "expected an absolute path after " + quote(s.substr(0, colon + 1)) +
                                        " in table " + quote(t.name) + ", found " + describe(src));
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
        warnings_.push_back(Diagnostic{name.where, "table " + quote(t.name) + " replaces the built-in table <" +
                                                       t.name + ">"});
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
    std::string tls_word;  // "tls", "tls-require" or "smtps" as written
    std::string auth_word; // "auth" or "auth-optional" as written
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
    if (on.kind == Token::Kind::Word &&
        (grammar::listed(kListenOptions, on.text) || grammar::listed(grammar::kUnsupportedListenOptions, on.text)))
        return expected(c, what);
    c.take();
    if (on.is_word("socket")) {
        l.socket = true;
        for (const Listener& other : cfg_.listeners)
            if (other.socket)
                return fail(on.where, "'listen on socket' is declared twice (first at " +
                                          where_text(other.where) + ")");
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
        l.socket ? "a 'listen on socket' option (tag, mask-src, no-dsn)"
                 : "a listen option (port, inet4, inet6, hostname, hostnames, tag, mask-src, tls, tls-require, "
                   "smtps, pki, ca, ciphers, protocols, auth, auth-optional, senders, received-auth, no-dsn)";
    if (c.done() || c.peek()->kind != Token::Kind::Word) return expected(c, what);
    const Token& opt = *c.peek();
    std::string w = opt.text;
    if (grammar::listed(grammar::kUnsupportedListenOptions, w))
        return fail(opt.where, quote(w) + " is not supported yet");
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
    if (w == "auth" || w == "auth-optional" || w == "senders")
        return parse_listen_auth_option(c, opt, l, s);
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
    if (w == "hostname") return parse_value(c, "a host name after 'hostname'", l.hostname);
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
    const std::string what = w == "ciphers" ? "a cipher list after 'ciphers', quoted as in ciphers \"HIGH:!aNULL\""
                                            : "a protocol list after 'protocols', quoted as in protocols \"tlsv1.2,tlsv1.3\"";
    if (!c.value() || c.peek()->text.empty()) return expected(c, what);
    const Token& v = c.take();
    std::string bad;
    if (w == "protocols" && !valid_protocols(v.text, bad))
        return fail(v.where, "unknown TLS protocol " + quote(bad) + " in 'protocols': expected tlsv1.2, tlsv1.3, "
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
        error_at(at, "unknown ca " + quote(name) + ": declare it with 'ca " + name + " cert \"FILE\"' before this line");
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
    if (!l.pkis.empty() && !tls)
        error_at(s.pki_at, "'pki' needs 'tls', 'tls-require' or 'smtps' on the same listener");
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
            warnings_.push_back(Diagnostic{*at, quote(word) + " has no effect without 'tls', 'tls-require' or 'smtps'"});
    if (!l.senders_table.empty() && !l.auth && !l.auth_optional)
        warnings_.push_back(
            Diagnostic{s.senders_at, "'senders' has no effect without 'auth' or 'auth-optional'"});
    if (l.smtps && !s.port_given) l.port = 465;
}

// <name> or an inline { ... } (made an anonymous table): a listener's table.
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
        return fail(at, quote(opt) + " needs a table of key = value entries, but table " + quote(t->name) +
                            " is a list");
    return true;
}

// OpenSMTPD 6.8's choice for a tls/smtps listener that names no pki: the pki
// named as the listener's hostname (else the server's), else "*", else the
// only pki there is.
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
        if (!n || *n < 1 || *n > 65535)
            return fail(t.where, "port " + t.text + " is out of range (1-65535)");
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

bool Parser::parse_action(Cursor& c) {
    const Location at = c.take().where;
    if (!c.value()) return expected(c, "an action name after 'action'");
    const Token& name = c.take();
    Action a;
    a.name = name.text;
    a.where = at;
    bool ok = true;
    if (const Action* prev = cfg_.find_action(a.name)) {
        error_at(name.where, "action " + quote(a.name) + " is declared twice (first at " +
                                 where_text(prev->where) + ")");
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
    const std::string what = "an action method (mbox, maildir, mda, lmtp or relay) after action name " + quote(a.name);
    if (c.done() || c.peek()->kind != Token::Kind::Word) return expected(c, what);
    const Token& method = *c.peek();
    if (grammar::listed(grammar::kUnsupportedActionMethods, method.text))
        return fail(method.where, quote(method.text) + " is not supported yet");
    static constexpr std::string_view kMethods[] = {"mbox", "maildir", "mda", "lmtp", "relay"};
    if (!grammar::listed(kMethods, method.text)) return expected(c, what);
    a.method = c.take().text;
    if (a.method == "relay") return parse_relay_options(c, a);
    if (a.method == "mda" && !parse_mda_command(c, a)) return false;
    if (a.method == "lmtp" && !parse_lmtp_destination(c, a)) return false;

    static constexpr std::string_view kOptions[] = {"alias", "virtual", "userbase", "user", "ttl"};
    if (a.method == "maildir") {
        // maildir [PATH] [junk]: a quoted word is always a path, a bare one unless it is an option.
        if (c.value() && (c.peek()->kind == Token::Kind::String ||
                          (!c.word("junk") && !grammar::listed(kOptions, c.peek()->text) &&
                           !grammar::listed(grammar::kUnsupportedActionOptions, c.peek()->text))))
            a.path = c.take().text;
        if (c.word("junk")) {
            c.take();
            a.junk = true;
        }
    }

    std::set<std::string> seen;
    bool after_ttl = false;
    while (!c.done()) {
        const Token& opt = *c.peek();
        const std::string what_opt = "an action option (alias, virtual, userbase, user, ttl)";
        if (opt.kind != Token::Kind::Word) return expected(c, what_opt);
        const std::string& w = opt.text;
        if (grammar::listed(grammar::kUnsupportedActionOptions, w))
            return fail(opt.where, quote(w) + " is not supported yet");
        if (!grammar::listed(kOptions, w)) return expected(c, what_opt);
        if (!seen.insert(w).second) return fail(opt.where, quote(w) + " is given twice");
        if (after_ttl) return fail(opt.where, quote(w) + " must come before 'ttl'");
        c.take();
        if (w == "alias" || w == "virtual" || w == "userbase") {
            auto table = parse_table_ref(c, quote(w));
            if (!table) return false;
            (w == "alias" ? a.alias_table : w == "virtual" ? a.virtual_table : a.userbase_table) = *table;
            if (!a.alias_table.empty() && !a.virtual_table.empty())
                error_at(opt.where, quote(w) + " cannot be used together with " +
                                        (w == "alias" ? "'virtual'" : "'alias'"));
        } else if (w == "user") {
            if (a.method == "mbox") return fail(opt.where, "'user' cannot be used with 'mbox'");
            if (!parse_value(c, "a user name after 'user'", a.user)) return false;
        } else {  // ttl
            std::chrono::seconds ttl{};
            if (!parse_delay_value(c, "'ttl'", ttl)) return false;
            a.ttl = ttl;
            after_ttl = true;
        }
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
        if (dest.find("://") != std::string::npos || !parse_relay_url("lmtp://" + dest, why))
            return expected(c, what);
    }
    a.path = c.take().text;
    if (c.word("rcpt-to")) {
        c.take();
        a.lmtp_rcpt_to = true;
    }
    return true;
}

// relay [OPTION ...] [ttl DELAY]: each option at most once, in any order.
bool Parser::parse_relay_options(Cursor& c, Action& a) {
    static constexpr std::string_view kRelayOptions[] = {
        "host", "domain", "backup", "helo", "helo-src", "src", "auth", "tls", "pki", "ca", "mail-from", "srs",
        "ciphers", "protocols", "ttl"};
    static constexpr std::string_view kLocalOptions[] = {"alias", "virtual", "userbase", "user", "wrapper"};
    const std::string what = "a relay option (host, domain, backup, helo, helo-src, src, auth, tls, pki, ca, "
                             "mail-from, srs, ciphers, protocols, ttl)";
    std::map<std::string, Location, std::less<>> seen;
    while (!c.done()) {
        const Token& opt = *c.peek();
        if (opt.kind != Token::Kind::Word) return expected(c, what);
        const std::string& w = opt.text;
        if (grammar::listed(grammar::kUnsupportedRelayOptions, w))
            return fail(opt.where, quote(w) + " is not supported yet");
        if (grammar::listed(kLocalOptions, w))
            return fail(opt.where, quote(w) + " is an option of local delivery and cannot be used with 'relay'");
        if (!grammar::listed(kRelayOptions, w)) return expected(c, what);
        if (seen.count(w)) return fail(opt.where, quote(w) + " is given twice");
        if (seen.count("ttl")) return fail(opt.where, quote(w) + " must come before 'ttl'");
        seen.emplace(w, opt.where);
        c.take();
        if (w == "ttl") {
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
    auto plain_value = [&]() { return c.value() && !(c.peek()->kind == Token::Kind::Word && is_keyword(c.peek()->text)); };
    if (w == "host") {
        if (c.punct("<") || c.punct("{")) {
            auto table = parse_table_arg(c, after);
            if (!table) return false;
            r.host_table = *table;
            return true;
        }
        if (!plain_value()) return expected(c, "a relay URL or <table> after 'host', as in host smtp+tls://mx.example.org");
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
    if (r.srs) error_at(at("srs"), "'srs' needs 'srs key SECRET', and 'srs' is not supported yet");
}

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
        "a match option (from, for, auth, helo, mail-from, rcpt-to, tag), 'action NAME' or 'reject'";
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
                    error_at(name.where, "unknown action " + quote(r.action) + ": declare it with 'action " +
                                             r.action + " ...' before this line");
                if (!end_of_line(c, "'action " + r.action + "'")) return false;
            } else {
                r.reject = true;
                if (!end_of_line(c, "'reject'")) return false;
            }
            ended = true;
            break;
        }
        if (grammar::listed(grammar::kUnsupportedMatchOptions, w))
            return fail(opt.where, quote(w) + " is not supported yet");
        Criterion cr{};
        cr.negated = negated;
        cr.where = negated ? neg_at : opt.where;
        if (w != "from" && w != "for" && w != "auth" && w != "helo" && w != "mail-from" && w != "rcpt-to" &&
            w != "tag")
            return expected(c, what);
        if (!seen.insert(w).second)
            return fail(opt.where, quote(w) + " may appear only once in a match rule");
        c.take();
        bool ok = true;
        if (w == "from") {
            ok = parse_from(c, cr);
            have_from = true;
        } else if (w == "for") {
            ok = parse_for(c, cr);
            have_for = true;
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
    const std::string what = "any, local, socket, src, rdns or auth after 'from'";
    if (c.done() || c.peek()->kind != Token::Kind::Word) return expected(c, what);
    const Token& t = *c.peek();
    if (grammar::listed(grammar::kUnsupportedFromSources, t.text))
        return fail(t.where, "'from " + t.text + "' is not supported yet");
    if (t.text == "any") cr.kind = Criterion::Kind::FromAny;
    else if (t.text == "local") cr.kind = Criterion::Kind::FromLocal;
    else if (t.text == "socket") cr.kind = Criterion::Kind::FromSocket;
    else if (t.text == "src") cr.kind = Criterion::Kind::FromSrc;
    else if (t.text == "rdns") cr.kind = Criterion::Kind::FromRdns;
    else if (t.text == "auth") cr.kind = Criterion::Kind::FromAuth;
    else return expected(c, what);
    c.take();
    if (cr.kind == Criterion::Kind::FromRdns) return parse_optional_criterion_value(c, cr, "'rdns'");
    if (cr.kind == Criterion::Kind::FromAuth) return parse_optional_criterion_value(c, cr, "'auth'");
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

bool Parser::parse_smtp(Cursor& c) {
    c.take();
    const std::string what = "max-message-size, limit, sub-addr-delim or ciphers after 'smtp'";
    if (c.done() || c.peek()->kind != Token::Kind::Word) return expected(c, what);
    const Token& sub = *c.peek();
    if (sub.text == "ciphers") {
        c.take();
        const std::string what_ciphers = "a cipher list after 'smtp ciphers', quoted as in smtp ciphers \"HIGH:!aNULL\"";
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
        const std::string what_limit = "max-mails, max-rcpt or max-sessions";
        if (c.done()) return expected(c, what_limit + " after 'limit'");
        while (!c.done()) {
            const Token& k = *c.peek();
            unsigned* target = k.is_word("max-mails")      ? &cfg_.max_mails
                               : k.is_word("max-rcpt")     ? &cfg_.max_rcpt
                               : k.is_word("max-sessions") ? &cfg_.max_sessions
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

bool Parser::parse_queue(Cursor& c) {
    c.take();
    const std::string what = "ttl or path after 'queue'";
    if (c.done() || c.peek()->kind != Token::Kind::Word) return expected(c, what);
    const Token& sub = *c.peek();
    if (grammar::listed(grammar::kUnsupportedQueueOptions, sub.text))
        return fail(sub.where, "'queue " + sub.text + "' is not supported yet");
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

}  // namespace

ParseResult parse_text(std::string_view text, const std::string& name, const Macros& overrides) {
    Parser p(overrides);
    p.push_source(std::string(text), name);
    p.run();
    return p.finish(name);
}

ParseResult parse_file(const std::string& path, const Macros& overrides) {
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
