// The configuration printers (see printer.hpp): the model as smtpd.conf
// lines, or as a postern.yaml document (yaml-cpp's emitter).
//
// Both walk the model in the order smtpd.conf needs (globals, tables, pki,
// ca, wrappers, procs, filters, actions, listeners, matches) and print an
// anonymous table or chain inline where it is used, since it has no name a
// file could give. Values are always quoted in smtpd.conf, so none is taken
// for a keyword or a macro; in YAML only those a YAML reader could take for
// something else (a number, a boolean, an indicator) are.
#include "config/printer.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdint>
#include <regex>
#include <tuple>
#include <vector>

#include "filter/protocol.hpp"

namespace postern::config {

bool is_anonymous(std::string_view name) { return name.starts_with("<anon:"); }

namespace {

// postern's `smtp limit` keys against abuse: name, value, default.
std::vector<std::tuple<const char*, unsigned, unsigned>> smtp_limits(const Config& c, const Config& d) {
    return {{"max-sessions-per-address", c.max_sessions_per_address, d.max_sessions_per_address},
            {"max-conn-rate", c.max_conn_rate, d.max_conn_rate},
            {"max-auth-failures", c.max_auth_failures, d.max_auth_failures},
            {"command-timeout", c.command_timeout, d.command_timeout},
            {"tls-timeout", c.tls_timeout, d.tls_timeout},
            {"min-data-rate", c.min_data_rate, d.min_data_rate}};
}

// "4d", "6h", "90s": the largest unit that says it exactly.
std::string delay(std::chrono::seconds d) {
    const auto n = d.count();
    if (n % 86400 == 0) return std::to_string(n / 86400) + "d";
    if (n % 3600 == 0) return std::to_string(n / 3600) + "h";
    if (n % 60 == 0) return std::to_string(n / 60) + "m";
    return std::to_string(n) + "s";
}

// "35M": the largest binary unit that says it exactly.
std::string size(std::size_t bytes) {
    constexpr std::pair<char, std::uint64_t> kUnits[] = {{'G', 1ull << 30}, {'M', 1ull << 20}, {'K', 1ull << 10}};
    for (auto [suffix, unit] : kUnits)
        if (bytes >= unit && bytes % unit == 0) return std::to_string(bytes / unit) + suffix;
    return std::to_string(bytes);
}

std::string_view condition_word(FilterCondition::Kind k) {
    using K = FilterCondition::Kind;
    switch (k) {
    case K::Fcrdns: return "fcrdns";
    case K::Rdns: return "rdns";
    case K::Src: return "src";
    case K::Helo: return "helo";
    case K::Auth: return "auth";
    case K::MailFrom: return "mail-from";
    case K::RcptTo: return "rcpt-to";
    }
    return "rdns";
}

std::string_view decision_word(BuiltinFilter::Decision d) {
    using D = BuiltinFilter::Decision;
    switch (d) {
    case D::Reject: return "reject";
    case D::Disconnect: return "disconnect";
    case D::Rewrite: return "rewrite";
    case D::Junk: return "junk";
    case D::Report: return "report";
    case D::Bypass: return "bypass";
    }
    return "reject";
}

// A criterion's words before its value: {"from", "src"}, {"mail-from"}.
std::pair<std::string_view, std::string_view> criterion_words(Criterion::Kind k) {
    using K = Criterion::Kind;
    switch (k) {
    case K::FromAny: return {"from", "any"};
    case K::FromLocal: return {"from", "local"};
    case K::FromSocket: return {"from", "socket"};
    case K::FromSrc: return {"from", "src"};
    case K::FromRdns: return {"from", "rdns"};
    case K::FromAuth: return {"from", "auth"};
    case K::FromMailFrom: return {"from", "mail-from"};
    case K::Tls: return {"tls", ""};
    case K::ForAny: return {"for", "any"};
    case K::ForLocal: return {"for", "local"};
    case K::ForDomain: return {"for", "domain"};
    case K::ForRcptTo: return {"for", "rcpt-to"};
    case K::MailFrom: return {"mail-from", ""};
    case K::RcptTo: return {"rcpt-to", ""};
    case K::Tag: return {"tag", ""};
    case K::Helo: return {"helo", ""};
    case K::Auth: return {"auth", ""};
    }
    return {"from", "local"};
}

// Whether a criterion's value is written: always for those that need one
// (an empty value, `for domain ""`, is one), else when it has one (`from
// rdns` alone means a verified name).
bool printed_value(const Criterion& cr) {
    using K = Criterion::Kind;
    switch (cr.kind) {
    case K::FromAny:
    case K::FromLocal:
    case K::FromSocket:
    case K::ForAny:
    case K::ForLocal:
    case K::Tls: return false;
    case K::FromRdns:
    case K::FromAuth:
    case K::Auth: return !cr.value.empty() || !cr.table.empty();
    default: return true;
    }
}

// ---- smtpd.conf ---------------------------------------------------------------

// "value" with the quote escaped, as the lexer reads it back. (A backslash
// before a space or at the very end cannot be written in smtpd.conf at all.)
std::string q(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '\\';
        out += c;
    }
    return out + "\"";
}

// A table's name between < >: bare when it is one word.
std::string table_ref(std::string_view name) {
    const bool bare = !name.empty() && name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                              "0123456789_.-") == std::string_view::npos;
    return "<" + (bare ? std::string(name) : q(name)) + ">";
}

class ConfPrinter {
public:
    explicit ConfPrinter(const Config& c) : c_(c) {}
    std::string print();

private:
    void line(const std::string& s) { out_ += s + "\n"; }
    void section(const char* comment) { out_ += std::string(out_.empty() ? "" : "\n") + "# " + comment + "\n"; }
    void globals();
    std::string inline_table(const TableDecl& t) const;
    std::string table_arg(const std::string& name) const;  // <name> or { inline }
    std::string value(const std::string& value, const std::string& table, bool regex) const;
    std::string proc(const FilterProc& p) const;
    std::string filter(const Filter& f) const;
    std::string action(const Action& a) const;
    std::string relay(const Relay& r) const;
    std::string listener(const Listener& l) const;
    std::string rule(const Rule& r) const;

    const Config& c_;
    std::string out_;
};

std::string ConfPrinter::print() {
    globals();
    bool first = true;
    for (const TableDecl& t : c_.tables) {
        if (is_anonymous(t.name) || t.backend == kBuiltinBackend) continue;
        if (first) section("tables");
        first = false;
        line("table " + q(t.name) + " " + (t.backend == "inline" ? inline_table(t) : q(t.backend + ":" + t.source)));
    }
    if (!c_.pkis.empty() || !c_.cas.empty()) section("certificates");
    for (const Pki& p : c_.pkis)
        line("pki " + q(p.name) + (p.cert.empty() ? "" : " cert " + q(p.cert)) +
             (p.key.empty() ? "" : " key " + q(p.key)) + (p.dhe == "none" ? "" : " dhe " + p.dhe));
    for (const Ca& ca : c_.cas) line("ca " + q(ca.name) + " cert " + q(ca.cert));
    if (!c_.mda_wrappers.empty()) section("mda wrappers");
    for (const auto& [name, command] : c_.mda_wrappers) line("mda wrapper " + q(name) + " " + q(command));
    if (!c_.procs.empty() || !c_.filters.empty()) section("filters");
    for (const FilterProc& p : c_.procs) line(proc(p));
    for (const Filter& f : c_.filters)
        if (!is_anonymous(f.name)) line(filter(f));
    if (!c_.actions.empty()) section("actions");
    for (const Action& a : c_.actions) line(action(a));
    if (!c_.listeners.empty()) section("listeners");
    for (const Listener& l : c_.listeners) line(listener(l));
    if (!c_.rules.empty()) section("rules: the first that matches wins");
    for (const Rule& r : c_.rules) line(rule(r));
    return out_;
}

void ConfPrinter::globals() {
    const Config d;
    std::vector<std::string> g;
    if (c_.hostname != d.hostname) g.push_back("hostname " + q(c_.hostname));
    if (c_.queue_path != d.queue_path) g.push_back("queue path " + q(c_.queue_path));
    if (c_.control_socket != d.control_socket) g.push_back("control socket " + q(c_.control_socket));
    if (c_.pid_file != d.pid_file) g.push_back("pidfile " + q(c_.pid_file));
    if (c_.plugin_path != d.plugin_path) g.push_back("plugin path " + q(c_.plugin_path));
    if (c_.mbox_path != d.mbox_path) g.push_back("mbox path " + q(c_.mbox_path));
    if (c_.queue_ttl != d.queue_ttl) g.push_back("queue ttl " + delay(c_.queue_ttl));
    if (c_.queue_compression) g.push_back("queue compression");
    if (c_.queue_encryption)
        g.push_back(c_.queue_encryption_key.empty() ? "queue encryption"
                                                    : "queue encryption " + q(c_.queue_encryption_key));
    if (c_.max_message_size != d.max_message_size) g.push_back("smtp max-message-size " + size(c_.max_message_size));
    if (c_.max_mails != d.max_mails) g.push_back("smtp limit max-mails " + std::to_string(c_.max_mails));
    if (c_.max_rcpt != d.max_rcpt) g.push_back("smtp limit max-rcpt " + std::to_string(c_.max_rcpt));
    if (c_.max_sessions != d.max_sessions) g.push_back("smtp limit max-sessions " + std::to_string(c_.max_sessions));
    for (const auto& [key, value, def] : smtp_limits(c_, d))
        if (value != def) g.push_back("smtp limit " + std::string(key) + " " + std::to_string(value));
    if (c_.sub_addr_delim != d.sub_addr_delim)
        g.push_back("smtp sub-addr-delim " + q(std::string(1, c_.sub_addr_delim)));
    if (c_.ciphers != d.ciphers) g.push_back("smtp ciphers " + q(c_.ciphers));
    if (c_.mta_resolver != d.mta_resolver) g.push_back("mta resolver " + q(c_.mta_resolver));
    if (c_.mta_family != d.mta_family)
        g.push_back(std::string("mta limit ") + (c_.mta_family == 4 ? "inet4" : "inet6"));
    if (c_.mta_max_conn_per_domain != d.mta_max_conn_per_domain)
        g.push_back("mta limit max-conn-per-domain " + std::to_string(c_.mta_max_conn_per_domain));
    if (c_.mta_max_conn_per_relay != d.mta_max_conn_per_relay)
        g.push_back("mta limit max-conn-per-relay " + std::to_string(c_.mta_max_conn_per_relay));
    for (const auto& [domain, n] : c_.mta_max_conn_for_domain)
        g.push_back("mta limit for domain " + q(domain) + " max-conn-per-domain " + std::to_string(n));
    if (c_.mta_session_mail_max != d.mta_session_mail_max)
        g.push_back("mta limit session-mail-max " + std::to_string(c_.mta_session_mail_max));
    if (c_.mta_session_keepalive != d.mta_session_keepalive)
        g.push_back("mta limit session-keepalive " + std::to_string(c_.mta_session_keepalive));
    if (!c_.admd.empty()) g.push_back("admd " + q(c_.admd));
    if (c_.scheduler_max_evp_batch != d.scheduler_max_evp_batch)
        g.push_back("scheduler limit max-evp-batch-size " + std::to_string(c_.scheduler_max_evp_batch));
    if (c_.srs_key != d.srs_key) g.push_back("srs key " + q(c_.srs_key));
    if (c_.srs_backup_key != d.srs_backup_key) g.push_back("srs key backup " + q(c_.srs_backup_key));
    if (c_.srs_ttl != d.srs_ttl) g.push_back("srs ttl " + delay(c_.srs_ttl));
    if (c_.bounce_warn_interval != d.bounce_warn_interval) {
        std::string s = "bounce warn-interval ";
        for (std::size_t i = 0; i < c_.bounce_warn_interval.size(); ++i)
            s += (i ? ", " : "") + delay(c_.bounce_warn_interval[i]);
        g.push_back(s);
    }
    if (!c_.metrics_address.empty())
        g.push_back("metrics listen on " + q(c_.metrics_address) + " port " + std::to_string(c_.metrics_port));
    if (g.empty()) return;
    section("global settings");
    for (const std::string& s : g) line(s);
}

std::string ConfPrinter::inline_table(const TableDecl& t) const {
    std::string s = "{ ";
    for (std::size_t i = 0; i < t.entries.size(); ++i) {
        const auto& [k, v] = t.entries[i];
        s += (i ? ", " : "") + q(k) + (t.is_map ? " = " + q(v) : "");
    }
    return s + " }";
}

std::string ConfPrinter::table_arg(const std::string& name) const {
    const TableDecl* t = c_.find_table(name);
    if (t && is_anonymous(name)) return inline_table(*t);
    return table_ref(name);
}

std::string ConfPrinter::value(const std::string& v, const std::string& table, bool regex) const {
    return std::string(regex ? "regex " : "") + (table.empty() ? q(v) : table_arg(table));
}

std::string ConfPrinter::proc(const FilterProc& p) const {
    const FilterProc d;
    std::string s = "proc " + q(p.name) + " " + q(p.command);
    if (!p.user.empty()) s += " user " + q(p.user);
    if (!p.group.empty()) s += " group " + q(p.group);
    if (!p.chroot.empty()) s += " chroot " + q(p.chroot);
    if (p.version != d.version) s += " protocol " + std::string(filter::version_name(p.version));
    if (p.timeout != d.timeout) s += " timeout " + delay(std::chrono::duration_cast<std::chrono::seconds>(p.timeout));
    if (p.fail_open) s += " on-failure pass";
    return s;
}

std::string ConfPrinter::filter(const Filter& f) const {
    std::string s = "filter " + q(f.name);
    if (f.kind == Filter::Kind::Proc) return s + " proc " + q(f.proc);
    if (f.kind == Filter::Kind::Chain) {
        s += " chain {";
        for (std::size_t i = 0; i < f.chain.size(); ++i) s += (i ? ", " : " ") + q(f.chain[i]);
        return s + " }";
    }
    const BuiltinFilter& b = f.builtin;
    s += " phase " + std::string(filter::phase_name(b.phase)) + " match " + (b.condition.negated ? "!" : "") +
         std::string(condition_word(b.condition.kind));
    if (!b.condition.table.empty()) s += " " + value("", b.condition.table, b.condition.regex);
    s += " " + std::string(decision_word(b.decision));
    if (!b.value.empty()) s += " " + q(b.value);
    return s;
}

std::string ConfPrinter::action(const Action& a) const {
    std::string s = "action " + q(a.name) + " " + a.method;
    if (a.method == "relay") return s + relay(a.relay) + (a.ttl ? " ttl " + delay(*a.ttl) : "");
    if (!a.path.empty()) s += " " + q(a.path);
    if (a.junk) s += " junk";
    if (a.lmtp_rcpt_to) s += " rcpt-to";
    if (!a.alias_table.empty()) s += " alias " + table_ref(a.alias_table);
    if (!a.virtual_table.empty()) s += " virtual " + table_ref(a.virtual_table);
    if (!a.userbase_table.empty()) s += " userbase " + table_ref(a.userbase_table);
    if (!a.user.empty()) s += " user " + q(a.user);
    if (!a.wrapper.empty()) s += " wrapper " + q(a.wrapper);
    if (a.ttl) s += " ttl " + delay(*a.ttl);
    return s;
}

std::string ConfPrinter::relay(const Relay& r) const {
    std::string s;
    if (!r.host_table.empty()) s += " host " + table_arg(r.host_table);
    else if (!r.host.empty()) s += " host " + q(r.host);
    if (!r.domain_table.empty()) s += " domain " + table_arg(r.domain_table);
    if (r.backup) s += " backup" + (r.backup_mx.empty() ? "" : " mx " + q(r.backup_mx));
    if (!r.helo.empty()) s += " helo " + q(r.helo);
    if (!r.helo_src_table.empty()) s += " helo-src " + table_arg(r.helo_src_table);
    if (!r.src_table.empty()) s += " src " + table_arg(r.src_table);
    else if (!r.src.empty()) s += " src " + q(r.src);
    if (!r.auth_table.empty()) s += " auth " + table_arg(r.auth_table);
    if (r.tls) s += r.tls_no_verify ? " tls no-verify" : " tls";
    if (!r.pki.empty()) s += " pki " + q(r.pki);
    if (!r.ca.empty()) s += " ca " + q(r.ca);
    if (!r.mail_from.empty()) s += " mail-from " + q(r.mail_from);
    if (r.srs) s += " srs";
    if (!r.ciphers.empty()) s += " ciphers " + q(r.ciphers);
    if (!r.protocols.empty()) s += " protocols " + q(r.protocols);
    return s;
}

std::string ConfPrinter::listener(const Listener& l) const {
    std::string s = "listen on " + (l.socket ? std::string("socket") : q(l.on));
    if (!l.socket) s += " port " + std::to_string(l.port);
    if (l.family != Listener::Family::Any) s += l.family == Listener::Family::Inet4 ? " inet4" : " inet6";
    if (!l.hostname.empty()) s += " hostname " + q(l.hostname);
    if (!l.hostnames_table.empty()) s += " hostnames " + table_arg(l.hostnames_table);
    if (!l.tag.empty()) s += " tag " + q(l.tag);
    if (l.mask_src) s += " mask-src";
    if (l.smtps) s += " smtps";
    else if (l.tls_require) s += " tls-require";
    else if (l.tls) s += " tls";
    if (l.verify) s += " verify";
    for (const std::string& p : l.pkis) s += " pki " + q(p);
    if (!l.ca.empty()) s += " ca " + q(l.ca);
    if (!l.ciphers.empty()) s += " ciphers " + q(l.ciphers);
    if (!l.protocols.empty()) s += " protocols " + q(l.protocols);
    if (l.auth || l.auth_optional) {
        s += l.auth ? " auth" : " auth-optional";
        if (!l.auth_table.empty()) s += " " + table_arg(l.auth_table);
    }
    if (!l.senders_table.empty()) s += " senders " + table_arg(l.senders_table) + (l.masquerade ? " masquerade" : "");
    if (l.received_auth) s += " received-auth";
    if (l.no_dsn) s += " no-dsn";
    if (l.proxy_v2) s += " proxy-v2";
    if (!l.filter.empty()) {
        const Filter* f = c_.find_filter(l.filter);
        if (f && is_anonymous(f->name)) {
            s += " filter {";
            for (std::size_t i = 0; i < f->chain.size(); ++i) s += (i ? ", " : " ") + q(f->chain[i]);
            s += " }";
        } else {
            s += " filter " + q(l.filter);
        }
    }
    return s;
}

std::string ConfPrinter::rule(const Rule& r) const {
    std::string s = "match";
    for (const Criterion& cr : r.criteria) {
        auto [kw, sub] = criterion_words(cr.kind);
        s += std::string(" ") + (cr.negated ? "!" : "") + std::string(kw);
        if (!sub.empty()) s += " " + std::string(sub);
        if (printed_value(cr)) s += " " + value(cr.value, cr.table, cr.regex);
    }
    return s + (r.reject ? " reject" : " action " + q(r.action));
}

// ---- YAML -------------------------------------------------------------------------

bool yaml_special_word(std::string_view s) {
    static constexpr std::string_view kWords[] = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"};
    std::string lower(s);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    return std::find(std::begin(kWords), std::end(kWords), lower) != std::end(kWords);
}

// Whether a string can be written bare and read back as that string by any
// YAML reader (PyYAML's 1.1 rules included: no number, boolean or null).
bool plain_ok(std::string_view s) {
    if (s.empty() || yaml_special_word(s) || s.back() == ':') return false;
    const char first = s.front();
    const bool alnum_first = (first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z') ||
                             (first >= '0' && first <= '9') || first == '/' || first == '_' || first == '.';
    if (!alnum_first) return false;
    if (s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_.@+=,:-") !=
        std::string_view::npos)
        return false;
    if (s.find(",") != std::string_view::npos) return false;
    // What YAML 1.1 (PyYAML, so Ansible and Salt) or 1.2 would read as a
    // number or a date: "0.6", "010", "0x1f", "1e3", "12:30", ".5", "2026-12-07".
    static const std::regex kNumberLike(
        "[-+]?(0b[01_]+|0o?[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*(:[0-5]?[0-9])*(\\.[0-9_]*)?([eE][-+]?[0-9]+)?|"
        "\\.[0-9_]+([eE][-+]?[0-9]+)?|\\.(inf|Inf|INF|nan|NaN|NAN))|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}.*");
    return !std::regex_match(s.begin(), s.end(), kNumberLike);
}

class YamlPrinter {
public:
    explicit YamlPrinter(const Config& c) : c_(c) { out_.SetIndent(2); }
    std::string print();

private:
    void str(std::string_view s) {
        if (plain_ok(s)) out_ << std::string(s);
        else out_ << YAML::DoubleQuoted << std::string(s);
    }
    void key(const char* k) { out_ << YAML::Key << k << YAML::Value; }
    void kv(const char* k, std::string_view v) {
        key(k);
        str(v);
    }
    void kv_if(const char* k, const std::string& v) {
        if (!v.empty()) kv(k, v);
    }
    void flag(const char* k, bool v) {
        if (v) out_ << YAML::Key << k << YAML::Value << true;
    }
    void globals();
    void scalar_list(const std::vector<std::string>& items) {
        out_ << YAML::Flow << YAML::BeginSeq;
        for (const std::string& s : items) str(s);
        out_ << YAML::EndSeq;
    }
    void entries(const TableDecl& t);
    void table_field(const std::string& name, bool regex);
    void value_field(const std::string& value, const std::string& table, bool regex);
    void tables();
    void tls();
    void procs();
    void filters();
    void actions();
    void relay(const Relay& r);
    void listeners();
    void listener(const Listener& l);
    void matches();
    void criterion(const Criterion& cr);

    const Config& c_;
    YAML::Emitter out_;
};

std::string YamlPrinter::print() {
    out_ << YAML::BeginMap;
    globals();
    tables();
    tls();
    if (!c_.mda_wrappers.empty()) {
        key("mda-wrappers");
        out_ << YAML::BeginMap;
        for (const auto& [name, command] : c_.mda_wrappers) kv(name.c_str(), command);
        out_ << YAML::EndMap;
    }
    procs();
    filters();
    actions();
    listeners();
    matches();
    out_ << YAML::EndMap;
    return std::string(out_.c_str()) + "\n";
}

void YamlPrinter::globals() {
    const Config d;
    kv_if("hostname", c_.hostname);
    kv_if("control-socket", c_.control_socket);
    kv_if("pidfile", c_.pid_file);
    kv_if("plugin-path", c_.plugin_path);
    kv_if("mbox-path", c_.mbox_path);
    if (!c_.queue_path.empty() || c_.queue_ttl != d.queue_ttl || c_.queue_compression || c_.queue_encryption) {
        key("queue");
        out_ << YAML::BeginMap;
        kv_if("path", c_.queue_path);
        if (c_.queue_ttl != d.queue_ttl) kv("ttl", delay(c_.queue_ttl));
        flag("compression", c_.queue_compression);
        if (c_.queue_encryption && !c_.queue_encryption_key.empty()) kv("encryption", c_.queue_encryption_key);
        else flag("encryption", c_.queue_encryption);
        out_ << YAML::EndMap;
    }
    if (c_.max_message_size != d.max_message_size || c_.max_mails != d.max_mails || c_.max_rcpt != d.max_rcpt ||
        c_.max_sessions != d.max_sessions || c_.sub_addr_delim != d.sub_addr_delim || !c_.ciphers.empty() ||
        std::ranges::any_of(smtp_limits(c_, d), [](const auto& l) { return std::get<1>(l) != std::get<2>(l); })) {
        key("smtp");
        out_ << YAML::BeginMap;
        if (c_.max_message_size != d.max_message_size) kv("max-message-size", size(c_.max_message_size));
        if (c_.max_mails != d.max_mails) out_ << YAML::Key << "max-mails" << YAML::Value << c_.max_mails;
        if (c_.max_rcpt != d.max_rcpt) out_ << YAML::Key << "max-rcpt" << YAML::Value << c_.max_rcpt;
        if (c_.max_sessions != d.max_sessions) out_ << YAML::Key << "max-sessions" << YAML::Value << c_.max_sessions;
        for (const auto& [k, value, def] : smtp_limits(c_, d))
            if (value != def) out_ << YAML::Key << k << YAML::Value << value;
        if (c_.sub_addr_delim != d.sub_addr_delim) kv("sub-addr-delim", std::string(1, c_.sub_addr_delim));
        kv_if("ciphers", c_.ciphers);
        out_ << YAML::EndMap;
    }
    if (!c_.mta_resolver.empty() || c_.mta_family != 0 || c_.mta_max_conn_per_domain != d.mta_max_conn_per_domain ||
        c_.mta_max_conn_per_relay != d.mta_max_conn_per_relay || !c_.mta_max_conn_for_domain.empty() ||
        c_.mta_session_mail_max != d.mta_session_mail_max || c_.mta_session_keepalive != d.mta_session_keepalive) {
        key("mta");
        out_ << YAML::BeginMap;
        kv_if("resolver", c_.mta_resolver);
        if (c_.mta_family != 0) kv("family", c_.mta_family == 4 ? "inet4" : "inet6");
        if (c_.mta_max_conn_per_domain != d.mta_max_conn_per_domain)
            out_ << YAML::Key << "max-conn-per-domain" << YAML::Value << c_.mta_max_conn_per_domain;
        if (c_.mta_max_conn_per_relay != d.mta_max_conn_per_relay)
            out_ << YAML::Key << "max-conn-per-relay" << YAML::Value << c_.mta_max_conn_per_relay;
        if (!c_.mta_max_conn_for_domain.empty()) {
            key("max-conn-for-domain");
            out_ << YAML::BeginMap;
            for (const auto& [domain, n] : c_.mta_max_conn_for_domain) {
                key(domain.c_str());
                out_ << n;
            }
            out_ << YAML::EndMap;
        }
        if (c_.mta_session_mail_max != d.mta_session_mail_max)
            out_ << YAML::Key << "session-mail-max" << YAML::Value << c_.mta_session_mail_max;
        if (c_.mta_session_keepalive != d.mta_session_keepalive)
            out_ << YAML::Key << "session-keepalive" << YAML::Value << c_.mta_session_keepalive;
        out_ << YAML::EndMap;
    }
    kv_if("admd", c_.admd);
    if (c_.scheduler_max_evp_batch != d.scheduler_max_evp_batch) {
        key("scheduler");
        out_ << YAML::BeginMap;
        out_ << YAML::Key << "max-evp-batch-size" << YAML::Value << c_.scheduler_max_evp_batch;
        out_ << YAML::EndMap;
    }
    if (!c_.srs_key.empty() || !c_.srs_backup_key.empty() || c_.srs_ttl != d.srs_ttl) {
        key("srs");
        out_ << YAML::BeginMap;
        kv_if("key", c_.srs_key);
        kv_if("backup-key", c_.srs_backup_key);
        if (c_.srs_ttl != d.srs_ttl) kv("ttl", delay(c_.srs_ttl));
        out_ << YAML::EndMap;
    }
    if (c_.bounce_warn_interval != d.bounce_warn_interval) {
        key("bounce");
        out_ << YAML::BeginMap;
        key("warn-interval");
        std::vector<std::string> delays;
        for (auto i : c_.bounce_warn_interval) delays.push_back(delay(i));
        scalar_list(delays);
        out_ << YAML::EndMap;
    }
    if (!c_.metrics_address.empty()) {
        key("metrics");
        out_ << YAML::BeginMap;
        kv("listen-on", c_.metrics_address);
        out_ << YAML::Key << "port" << YAML::Value << c_.metrics_port;
        out_ << YAML::EndMap;
    }
}

// An inline table's entries: [a, b] or {map: {k: v}}.
void YamlPrinter::entries(const TableDecl& t) {
    if (!t.is_map) {
        std::vector<std::string> items;
        for (const auto& e : t.entries) items.push_back(e.first);
        scalar_list(items);
        return;
    }
    out_ << YAML::BeginMap;
    key("map");
    out_ << YAML::BeginMap;
    for (const auto& [k, v] : t.entries) {
        out_ << YAML::Key;
        str(k);
        out_ << YAML::Value;
        str(v);
    }
    out_ << YAML::EndMap << YAML::EndMap;
}

// TABLE: a declared table's name, or the entries of an anonymous one.
void YamlPrinter::table_field(const std::string& name, bool regex) {
    const TableDecl* t = c_.find_table(name);
    const bool inline_table = t && is_anonymous(name);
    if (!regex) {
        if (inline_table) entries(*t);
        else str(name);
        return;
    }
    out_ << YAML::BeginMap;
    if (inline_table && t->is_map) {
        key("map");
        out_ << YAML::BeginMap;
        for (const auto& [k, v] : t->entries) {
            out_ << YAML::Key;
            str(k);
            out_ << YAML::Value;
            str(v);
        }
        out_ << YAML::EndMap;
    } else if (inline_table) {
        key("list");
        std::vector<std::string> items;
        for (const auto& e : t->entries) items.push_back(e.first);
        scalar_list(items);
    } else {
        kv("table", name);
    }
    out_ << YAML::Key << "regex" << YAML::Value << true << YAML::EndMap;
}

// VALUE: a literal, or a table as {table: NAME}, [list] or {map: ...}.
void YamlPrinter::value_field(const std::string& value, const std::string& table, bool regex) {
    if (table.empty()) {
        if (!regex) {
            str(value);
            return;
        }
        out_ << YAML::Flow << YAML::BeginMap;
        kv("value", value);
        out_ << YAML::Key << "regex" << YAML::Value << true << YAML::EndMap;
        return;
    }
    if (is_anonymous(table) || regex) {
        table_field(table, regex);
        return;
    }
    out_ << YAML::Flow << YAML::BeginMap;
    kv("table", table);
    out_ << YAML::EndMap;
}

void YamlPrinter::tables() {
    bool open = false;
    for (const TableDecl& t : c_.tables) {
        if (is_anonymous(t.name) || t.backend == kBuiltinBackend) continue;
        if (!open) {
            key("tables");
            out_ << YAML::BeginMap;
            open = true;
        }
        out_ << YAML::Key;
        str(t.name);
        out_ << YAML::Value;
        if (t.backend == "inline") entries(t);
        else str(t.backend + ":" + t.source);
    }
    if (open) out_ << YAML::EndMap;
}

void YamlPrinter::tls() {
    if (!c_.pkis.empty()) {
        key("pki");
        out_ << YAML::BeginMap;
        for (const Pki& p : c_.pkis) {
            out_ << YAML::Key;
            str(p.name);
            out_ << YAML::Value << YAML::BeginMap;
            kv_if("cert", p.cert);
            kv_if("key", p.key);
            if (p.dhe != "none") kv("dhe", p.dhe);
            out_ << YAML::EndMap;
        }
        out_ << YAML::EndMap;
    }
    if (!c_.cas.empty()) {
        key("ca");
        out_ << YAML::BeginMap;
        for (const Ca& ca : c_.cas) {
            out_ << YAML::Key;
            str(ca.name);
            out_ << YAML::Value << YAML::BeginMap;
            kv("cert", ca.cert);
            out_ << YAML::EndMap;
        }
        out_ << YAML::EndMap;
    }
}

void YamlPrinter::procs() {
    if (c_.procs.empty()) return;
    const FilterProc d;
    key("procs");
    out_ << YAML::BeginMap;
    for (const FilterProc& p : c_.procs) {
        out_ << YAML::Key;
        str(p.name);
        out_ << YAML::Value << YAML::BeginMap;
        kv("command", p.command);
        kv_if("user", p.user);
        kv_if("group", p.group);
        kv_if("chroot", p.chroot);
        if (p.version != d.version) kv("protocol", filter::version_name(p.version));
        if (p.timeout != d.timeout) kv("timeout", delay(std::chrono::duration_cast<std::chrono::seconds>(p.timeout)));
        if (p.fail_open) kv("on-failure", "pass");
        out_ << YAML::EndMap;
    }
    out_ << YAML::EndMap;
}

void YamlPrinter::filters() {
    bool open = false;
    for (const Filter& f : c_.filters) {
        if (is_anonymous(f.name)) continue;
        if (!open) {
            key("filters");
            out_ << YAML::BeginMap;
            open = true;
        }
        out_ << YAML::Key;
        str(f.name);
        out_ << YAML::Value << YAML::BeginMap;
        if (f.kind == Filter::Kind::Proc) {
            kv("proc", f.proc);
        } else if (f.kind == Filter::Kind::Chain) {
            key("chain");
            scalar_list(f.chain);
        } else {
            const BuiltinFilter& b = f.builtin;
            kv("phase", filter::phase_name(b.phase));
            key("match");
            out_ << YAML::BeginMap;
            if (b.condition.negated) out_ << YAML::Key << "not" << YAML::Value << true;
            key(std::string(condition_word(b.condition.kind)).c_str());
            if (b.condition.table.empty()) out_ << true;
            else table_field(b.condition.table, b.condition.regex);
            out_ << YAML::EndMap;
            const std::string decision(decision_word(b.decision));
            if (b.value.empty()) out_ << YAML::Key << decision << YAML::Value << true;
            else kv(decision.c_str(), b.value);
        }
        out_ << YAML::EndMap;
    }
    if (open) out_ << YAML::EndMap;
}

void YamlPrinter::actions() {
    if (c_.actions.empty()) return;
    key("actions");
    out_ << YAML::BeginMap;
    for (const Action& a : c_.actions) {
        out_ << YAML::Key;
        str(a.name);
        out_ << YAML::Value << YAML::BeginMap;
        kv("method", a.method);
        if (a.method == "relay") {
            relay(a.relay);
        } else {
            if (!a.path.empty())
                kv(a.method == "mda" ? "command" : a.method == "lmtp" ? "destination" : "path", a.path);
            flag("junk", a.junk);
            flag("rcpt-to", a.lmtp_rcpt_to);
            kv_if("alias", a.alias_table);
            kv_if("virtual", a.virtual_table);
            kv_if("userbase", a.userbase_table);
            kv_if("user", a.user);
            kv_if("wrapper", a.wrapper);
        }
        if (a.ttl) kv("ttl", delay(*a.ttl));
        out_ << YAML::EndMap;
    }
    out_ << YAML::EndMap;
}

void YamlPrinter::relay(const Relay& r) {
    if (!r.host_table.empty()) {
        key("host");
        value_field("", r.host_table, false);
    } else {
        kv_if("host", r.host);
    }
    if (!r.domain_table.empty()) {
        key("domain");
        table_field(r.domain_table, false);
    }
    if (r.backup && !r.backup_mx.empty()) kv("backup-mx", r.backup_mx);
    else flag("backup", r.backup);
    kv_if("helo", r.helo);
    if (!r.helo_src_table.empty()) {
        key("helo-src");
        table_field(r.helo_src_table, false);
    }
    if (!r.src_table.empty()) {
        key("src");
        value_field("", r.src_table, false);
    } else {
        kv_if("src", r.src);
    }
    if (!r.auth_table.empty()) {
        key("auth");
        table_field(r.auth_table, false);
    }
    if (r.tls && r.tls_no_verify) kv("tls", "no-verify");
    else flag("tls", r.tls);
    kv_if("pki", r.pki);
    kv_if("ca", r.ca);
    kv_if("mail-from", r.mail_from);
    flag("srs", r.srs);
    kv_if("ciphers", r.ciphers);
    kv_if("protocols", r.protocols);
}

void YamlPrinter::listeners() {
    if (c_.listeners.empty()) return;
    key("listeners");
    out_ << YAML::BeginSeq;
    for (const Listener& l : c_.listeners) listener(l);
    out_ << YAML::EndSeq;
}

void YamlPrinter::listener(const Listener& l) {
    out_ << YAML::BeginMap;
    if (l.socket) out_ << YAML::Key << "listen-on" << YAML::Value << "socket";
    else if (l.on == "socket") out_ << YAML::Key << "listen-on" << YAML::Value << YAML::DoubleQuoted << l.on;
    else kv("listen-on", l.on);  // a quoted "socket" is an interface of that name
    if (!l.socket) out_ << YAML::Key << "port" << YAML::Value << l.port;
    if (l.family != Listener::Family::Any) kv("family", l.family == Listener::Family::Inet4 ? "inet4" : "inet6");
    kv_if("hostname", l.hostname);
    if (!l.hostnames_table.empty()) {
        key("hostnames");
        table_field(l.hostnames_table, false);
    }
    kv_if("tag", l.tag);
    flag("mask-src", l.mask_src);
    flag("smtps", l.smtps);
    flag("tls-require", l.tls_require && !l.smtps);
    flag("tls", l.tls && !l.tls_require && !l.smtps);
    flag("verify", l.verify);
    if (l.pkis.size() == 1) kv("pki", l.pkis.front());
    else if (!l.pkis.empty()) {
        key("pki");
        scalar_list(l.pkis);
    }
    kv_if("ca", l.ca);
    kv_if("ciphers", l.ciphers);
    kv_if("protocols", l.protocols);
    if (l.auth || l.auth_optional) {
        key(l.auth ? "auth" : "auth-optional");
        if (l.auth_table.empty()) out_ << true;
        else table_field(l.auth_table, false);
    }
    if (!l.senders_table.empty()) {
        key("senders");
        table_field(l.senders_table, false);
    }
    flag("masquerade", l.masquerade);
    flag("received-auth", l.received_auth);
    flag("no-dsn", l.no_dsn);
    flag("proxy-v2", l.proxy_v2);
    if (!l.filter.empty()) {
        const Filter* f = c_.find_filter(l.filter);
        key("filter");
        if (f && is_anonymous(f->name)) scalar_list(f->chain);
        else str(l.filter);
    }
    out_ << YAML::EndMap;
}

void YamlPrinter::matches() {
    if (c_.rules.empty()) return;
    key("matches");
    out_ << YAML::BeginSeq;
    for (const Rule& r : c_.rules) {
        out_ << YAML::BeginMap;
        bool negated = false;
        for (const Criterion& cr : r.criteria) {
            if (cr.negated) negated = true;
            else criterion(cr);
        }
        if (negated) {
            key("not");
            out_ << YAML::BeginMap;
            for (const Criterion& cr : r.criteria)
                if (cr.negated) criterion(cr);
            out_ << YAML::EndMap;
        }
        if (r.reject) out_ << YAML::Key << "reject" << YAML::Value << true;
        else kv("action", r.action);
        out_ << YAML::EndMap;
    }
    out_ << YAML::EndSeq;
}

void YamlPrinter::criterion(const Criterion& cr) {
    auto [kw, sub] = criterion_words(cr.kind);
    const bool has_value = printed_value(cr);
    key(std::string(kw).c_str());
    if (sub.empty()) {  // auth, helo, mail-from, rcpt-to, tag
        if (has_value) value_field(cr.value, cr.table, cr.regex);
        else out_ << true;
        return;
    }
    if (!has_value) {
        str(sub);
        return;
    }
    out_ << YAML::BeginMap;
    key(std::string(sub).c_str());
    value_field(cr.value, cr.table, cr.regex);
    out_ << YAML::EndMap;
}

}  // namespace

std::string print_conf(const Config& c) { return ConfPrinter(c).print(); }

std::string print_yaml(const Config& c) { return YamlPrinter(c).print(); }

}  // namespace postern::config
