// Internals of the smtpd.conf parser, shared by its files (parser.cpp: the
// core directives and the line loop; parser_listen.cpp: pki, ca, listen;
// parser_action.cpp: action, relay; parser_match.cpp: match;
// parser_filter.cpp: proc, filter). Not part of the config module's
// interface: include config/config.hpp instead.
#pragma once

#include "config/config.hpp"
#include "config/legacy.hpp"
#include "config/lexer.hpp"
#include "config/parser.hpp"
#include "util/ascii.hpp"
#include <algorithm>
#include <arpa/inet.h>
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

namespace postern::config::detail {

namespace fs = std::filesystem;

constexpr std::size_t kMaxIncludeDepth = 16;
constexpr std::size_t kMaxErrors = 200;  // a binary fed as a config says enough by then
constexpr std::size_t kMaxTagLength = 32;
constexpr std::uint64_t kMaxLimit = 1'000'000;
constexpr std::uint64_t kMaxDelaySeconds = std::numeric_limits<std::int32_t>::max();

using grammar::is_keyword;

inline std::string where_text(const Location& l) {
    return l.file + ":" + std::to_string(l.line) + ":" + std::to_string(l.column);
}

inline std::optional<std::uint64_t> to_number(std::string_view s) {
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return v;
}

inline bool all_digits(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

// "35M" style sizes (OpenSMTPD's scan_scaled, integers only). nullopt: bad
// syntax; 0: out of range.
inline std::optional<std::uint64_t> parse_size(std::string_view s, bool& overflow) {
    overflow = false;
    std::uint64_t scale = 1;
    if (!s.empty()) {
        switch (s.back()) {
        case 'b':
        case 'B': scale = 1; break;
        case 'k':
        case 'K': scale = 1ull << 10; break;
        case 'm':
        case 'M': scale = 1ull << 20; break;
        case 'g':
        case 'G': scale = 1ull << 30; break;
        case 't':
        case 'T': scale = 1ull << 40; break;
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
inline std::optional<std::uint64_t> parse_delay(std::string_view s, bool& overflow) {
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

inline bool valid_backend_name(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
    return true;
}

inline bool valid_macro_name(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
    return true;
}

using util::lowercase;

// A pki or ca name: "*" or a host name (labels of letters, digits, '-' and
// '_' joined by dots), as OpenSMTPD requires.
inline bool valid_tls_name(std::string_view s) {
    if (s == "*") return true;
    if (s.empty() || s.size() > 253 || s.front() == '.' || s.back() == '.') return false;
    char prev = '.';
    for (char c : s) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                        c == '_' || c == '.';
        if (!ok || (c == '.' && prev == '.')) return false;
        prev = c;
    }
    return true;
}

// A libtls protocol list ("tlsv1.2,tlsv1.3", "secure", "all:!tlsv1.0"), as
// OpenSMTPD 7.x accepts it; the daemon maps it onto OpenSSL's versions.
inline bool valid_protocols(std::string_view s, std::string& bad) {
    static constexpr std::string_view kNames[] = {"all",     "default", "secure",  "legacy", "tlsv1",
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
    "port", "inet4",         "inet6",   "hostname",   "hostnames",     "tag",    "mask-src", "mask-source",
    "tls",  "tls-require",   "smtps",   "verify",     "pki",           "ca",     "ciphers",  "protocols",
    "auth", "auth-optional", "senders", "masquerade", "received-auth", "no-dsn", "filter",   "proxy-v2",
};
constexpr std::string_view kSocketListenOptions[] = {"tag", "mask-src", "mask-source", "no-dsn", "filter"};
constexpr std::size_t kMaxListenerPkis = 32;  // OpenSMTPD 7.x's limit

inline std::optional<std::string> read_whole_file(const std::string& path, std::string& why) {
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

inline std::string canonical_name(const std::string& path) {
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
    // One logical line made elsewhere (the YAML reader's), read as if lexed
    // from a file: its tokens carry the locations to report.
    void read_line(const Line& line) { parse_line(line); }
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
    bool parse_mda_wrapper(Cursor& c);
    bool parse_mda_limit(Cursor& c);
    bool parse_lmtp_destination(Cursor& c, Action& a);
    bool parse_relay_options(Cursor& c, Action& a);
    bool parse_relay_option(Cursor& c, const Token& opt, Relay& r);
    bool parse_relay_filter(Cursor& c, const Token& opt);
    void check_relay(const Relay& r, const std::map<std::string, Location, std::less<>>& seen);
    void parse_legacy(const Line& line);
    bool parse_match(Cursor& c);
    bool parse_from(Cursor& c, Criterion& cr);
    bool parse_for(Cursor& c, Criterion& cr);
    bool parse_criterion_value(Cursor& c, Criterion& cr, const std::string& after);
    bool parse_optional_criterion_value(Cursor& c, Criterion& cr, const std::string& after);
    bool parse_name_value(Cursor& c, const std::string& what, std::string& out);
    bool parse_proc(Cursor& c);
    bool parse_proc_command(Cursor& c, const std::string& after, FilterProc& p);
    bool parse_proc_options(Cursor& c, FilterProc& p);
    bool parse_proc_protocol(Cursor& c, FilterProc& p);
    bool parse_proc_timeout(Cursor& c, FilterProc& p);
    bool parse_proc_on_failure(Cursor& c, FilterProc& p);
    bool parse_filter(Cursor& c);
    bool parse_filter_proc(Cursor& c, Filter& f);
    bool parse_filter_exec(Cursor& c, Filter& f, FilterProc& p);
    bool parse_filter_chain(Cursor& c, Filter& f);
    bool parse_chain_members(Cursor& c, std::vector<std::string>& members);
    void check_chain_member(const std::string& name, const Location& at, const std::vector<std::string>& before);
    bool parse_builtin_filter(Cursor& c, Filter& f);
    bool parse_filter_condition(Cursor& c, BuiltinFilter& b);
    bool parse_filter_decision(Cursor& c, BuiltinFilter& b);
    std::optional<std::string> parse_listen_filter(Cursor& c);
    bool parse_smtp(Cursor& c);
    bool parse_queue(Cursor& c);
    bool parse_queue_key(Cursor& c);
    bool parse_mta(Cursor& c);
    bool parse_mta_limit(Cursor& c);
    bool parse_admd(Cursor& c);
    bool parse_scheduler(Cursor& c);
    bool parse_srs(Cursor& c);
    bool parse_bounce(Cursor& c);
    bool parse_metrics(Cursor& c);
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
    std::set<std::string, std::less<>> broken_tables_;  // declared on a line with errors
    std::set<std::string, std::less<>> broken_actions_;
    std::set<std::string, std::less<>> broken_pkis_;  // named on a line with errors
    std::set<std::string, std::less<>> broken_cas_;
    std::set<std::string, std::less<>> broken_procs_;  // declared on a line with errors
    std::set<std::string, std::less<>> broken_filters_;
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

}  // namespace postern::config::detail
