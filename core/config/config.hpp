// The configuration model: what an smtpd.conf file means once parsed.
//
// The parser (parser.cpp) fills it; the daemon, the rules engine and the
// table registry only read it. Everything that names a table, an action or a
// listener refers to it by name, and the parser guarantees every name used is
// declared (before use, as OpenSMTPD requires).
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "filter/protocol.hpp"
#include "relay/url.hpp"

namespace postern::config {

struct Location {
    std::string file;
    int line = 0;    // 1-based
    int column = 0;  // 1-based, in bytes

    bool operator==(const Location&) const = default;
};

// One "file:line:col: message" problem found while reading a config.
struct Diagnostic {
    Location where;
    std::string message;
};
std::string format(const Diagnostic& d);

// The tables OpenSMTPD knows without a declaration. The parser adds one as a
// TableDecl with backend kBuiltinBackend where it is first referenced (unless
// the file declared a table of that name before, which then replaces it); the
// table registry fills it with what the daemon knows at start-up (this host's
// names and addresses), so the model stays free of anything read at run time.
//   <localnames>     "localhost", the server names and the local IP literals (Domain)
//   <localhost>      "local" (the socket) and the local IP addresses (Netaddr)
//   <anyhost>        "local", 0.0.0.0/0 and ::/0 (Netaddr)
//   <anydestination> "*" (Domain)
inline constexpr std::string_view kBuiltinTables[] = {"localnames", "localhost", "anyhost", "anydestination"};
inline constexpr std::string_view kBuiltinBackend = "builtin";
bool is_builtin_table(std::string_view name);

// `table NAME backend:config`, `table NAME "/path"`, `table NAME { ... }`, the
// anonymous tables the parser makes for inline `{ ... }` in a match, and the
// built-in tables above once referenced.
struct TableDecl {
    std::string name;     // anonymous tables are named "<anon:LINE:COL>"
    std::string backend;  // "file", "db", "sqlite", ..., "inline" or "builtin"
    std::string source;   // what follows "backend:" (usually an absolute path)
    // Inline tables only: entries in order; value is empty for list entries.
    std::vector<std::pair<std::string, std::string>> entries;
    bool is_map = false;  // inline tables: `{ k = v }` rather than `{ a, b }`
    Location where;

    bool operator==(const TableDecl&) const = default;
};

// `pki NAME cert "FILE"`, `pki NAME key "FILE"`, `pki NAME dhe ...`: the
// lines naming one pki combine into one entry. The files are not opened by
// the parser (the daemon checks them at start-up and with -n).
struct Pki {
    std::string name;          // a host name or "*", lowercased
    std::string cert;          // certificate chain file (PEM)
    std::string key;           // private key file (PEM)
    std::string dhe = "none";  // "none", "auto" or "legacy"
    Location where;            // the first line naming it

    bool operator==(const Pki&) const = default;
};

// `ca NAME cert "FILE"`: CA certificates that client certificates are verified against.
struct Ca {
    std::string name;  // a host name or "*", lowercased
    std::string cert;  // CA bundle file (PEM)
    Location where;

    bool operator==(const Ca&) const = default;
};

// `listen on ...`
struct Listener {
    bool socket = false;  // `listen on socket` (local enqueue)
    std::string on;       // as written: address, interface, "localhost", "lo"
    enum class Family { Any, Inet4, Inet6 } family = Family::Any;
    int port = 25;         // 465 when `smtps` and no `port`
    std::string hostname;  // banner / EHLO name; empty = server hostname
    std::string tag;
    bool mask_src = false;

    // TLS. At most one of tls and smtps; tls_require implies tls.
    bool tls = false;          // STARTTLS offered (`tls`, `tls-require`)
    bool tls_require = false;  // STARTTLS required before MAIL (`tls-require`)
    bool smtps = false;        // implicit TLS from the first byte (`smtps`)
    bool verify = false;       // client certificate required (`tls-require verify`, `smtps verify`)
    // The pki names (Config::pkis) offered, in order. When the line names none,
    // the parser fills in the one OpenSMTPD 6.8 would use: the pki named as the
    // listener's hostname (or the `hostname` directive), else "*", else the
    // only pki declared. Empty exactly when neither tls nor smtps is set.
    std::vector<std::string> pkis;
    std::string ca;         // Config::cas name for client certificates; "" = none
    std::string ciphers;    // OpenSSL cipher list; "" = `smtp ciphers` or the default
    std::string protocols;  // libtls-style protocol list ("tlsv1.2,tlsv1.3"); "" = default

    // AUTH (only with tls or smtps). auth: offered and required before MAIL;
    // auth_optional: offered only. Never both.
    bool auth = false;
    bool auth_optional = false;
    std::string auth_table;       // credentials table; "" = system users (crypt(3) from the password database)
    std::string senders_table;    // `senders <t>`: authenticated user -> allowed MAIL FROM addresses
    bool masquerade = false;      // `senders <t> masquerade`
    bool received_auth = false;   // `received-auth`: add the user to Received:
    std::string hostnames_table;  // `hostnames <t>`: banner name by local address
    bool no_dsn = false;          // `no-dsn`: DSN not advertised
    // `proxy-v2`: each connection starts with a PROXY protocol header (v2,
    // or v1) from a proxy in front; the client is the one it names.
    bool proxy_v2 = false;
    // `filter NAME` or `filter { a, b }`: the Config::filters entry that
    // filters this listener's sessions (for `{ ... }` an anonymous chain the
    // parser adds, named "<anon:LINE:COL>"); "" = none.
    std::string filter;
    Location where;

    bool operator==(const Listener&) const = default;
};

// A relay URL, `[SCHEME://][LABEL@]HOST[:PORT]`: one parser for the config
// and the relay client (relay/url.hpp).
using RelayUrl = relay::RelayUrl;
// Reads a relay URL; nullopt with `why` set (no URL in it) when it is not one.
inline std::optional<RelayUrl> parse_relay_url(std::string_view text, std::string& why) {
    return relay::parse_relay_url(text, &why);
}
using relay::scheme_name;

// `action NAME relay [options]`: how mail leaves for other servers. Tables
// are Config::tables names. Delivery itself is the relay plugin's (issue #5).
struct Relay {
    std::string host;             // `host URL` as written; "" = none (MX lookup)
    std::optional<RelayUrl> url;  // `host URL` read; set exactly when host is
    std::string host_table;       // `host <t>`: a list of URLs
    std::string domain_table;     // `domain <t>`: recipient domain -> URL
    bool backup = false;          // `backup`: only to MXs preferred over this server
    std::string backup_mx;        // `backup mx NAME`: ... over NAME; "" = this server's name
    std::string helo;             // `helo NAME`: the EHLO name; "" = server hostname
    std::string helo_src_table;   // `helo-src <t>`: source address -> EHLO name
    std::string src;              // `src ADDR`: the address connections come from; "" = any
    std::string src_table;        // `src <t>`: addresses, used in turn
    std::string auth_table;       // `auth <t>`: URL label -> "user:password" (with host only)
    bool tls = false;             // `tls`: STARTTLS required ...
    bool tls_no_verify = false;   // ... with `no-verify`: without checking the certificate
    std::string pki;              // `pki NAME`: client certificate (Config::pkis name)
    std::string ca;               // `ca NAME`: CA to verify the server with (Config::cas name)
    std::string mail_from;        // `mail-from ADDR`: "user@domain", "@domain" or "user"
    bool srs = false;             // `srs`: Sender Rewriting Scheme
    std::string ciphers;          // OpenSSL cipher list; "" = default
    std::string protocols;        // libtls-style protocol list; "" = default

    bool operator==(const Relay&) const = default;
};

// `action NAME METHOD ...`
struct Action {
    std::string name;
    std::string method;  // "mbox", "maildir", "mda", "lmtp" or "relay"
    // maildir path, mda command line (both may hold %{...}) or lmtp destination
    // ("HOST:PORT" or "/socket") as written; "" = default
    std::string path;
    bool junk = false;           // maildir junk
    bool lmtp_rcpt_to = false;   // lmtp rcpt-to: RCPT TO the expanded address, not the local user
    std::string alias_table;     // `alias <t>`, "" if none
    std::string virtual_table;   // `virtual <t>`, "" if none
    std::string userbase_table;  // `userbase <t>`, "" = system users (getpwnam)
    std::string user;            // `user NAME`, "" if none
    std::string wrapper;         // `wrapper NAME`: an `mda wrapper` name, "" if none
    Relay relay;                 // method "relay" only
    std::optional<std::chrono::seconds> ttl;
    Location where;

    bool operator==(const Action&) const = default;
};

// A filter process: `proc NAME "COMMAND" [options]`, or the process of
// `filter NAME proc-exec "COMMAND" [options]` (then named as the filter).
// Started once at daemon start and restarted when it fails; see
// docs/postern-filters.7.
struct FilterProc {
    std::string name;
    std::string command;  // as written; run as `/bin/sh -c "exec COMMAND"`, relative: looked up in libexec folders
    std::string user;     // `user U`: "" = the unprivileged user (_postern)
    std::string group;    // `group G`: "" = the user's primary group
    std::string chroot;   // `chroot DIR`: "" = none
    // postern extensions
    filter::Version version = filter::Version::V0_6;  // `protocol 0.6|0.7`
    std::chrono::milliseconds timeout{60'000};        // `timeout D`: longest wait for one answer (or the handshake)
    bool fail_open = false;                           // `on-failure pass` (default `on-failure tempfail`)
    Location where;

    bool operator==(const FilterProc&) const = default;
};

// The one condition of a built-in filter (`filter NAME phase PHASE match
// [!] CONDITION DECISION`).
struct FilterCondition {
    enum class Kind { Fcrdns, Rdns, Src, Helo, Auth, MailFrom, RcptTo };
    Kind kind = Kind::Rdns;
    bool negated = false;
    bool regex = false;
    std::string table;  // "" for `fcrdns`, `rdns` and `auth` alone

    bool operator==(const FilterCondition&) const = default;
};

struct BuiltinFilter {
    filter::Phase phase = filter::Phase::Connect;
    FilterCondition condition;
    enum class Decision { Reject, Disconnect, Rewrite, Junk, Report, Bypass };
    Decision decision = Decision::Reject;
    // Reject / Disconnect: the reply ("550 5.7.1 text", 4xx or 5xx);
    // Rewrite: the new value; Report: the text.
    std::string value;

    bool operator==(const BuiltinFilter&) const = default;
};

// `filter NAME ...`: a process filter, a chain, or a built-in filter.
struct Filter {
    std::string name;  // anonymous chains of `listen ... filter { }`: "<anon:LINE:COL>"
    enum class Kind { Proc, Chain, Builtin };
    Kind kind = Kind::Proc;
    std::string proc;                // Proc: the Config::procs name (proc-exec: the filter's own name)
    std::vector<std::string> chain;  // Chain: Proc or Builtin filter names, in order, none repeated
    BuiltinFilter builtin;           // Builtin
    Location where;

    bool operator==(const Filter&) const = default;
};

// One condition of a `match` line.
struct Criterion {
    enum class Kind {
        FromAny,
        FromLocal,
        FromSocket,
        FromSrc,  // from ...
        ForAny,
        ForLocal,
        ForDomain,
        ForRcptTo,  // for ...
        MailFrom,
        RcptTo,
        Tag,  // standalone options
        // `from rdns` alone (value and table empty): the client has a verified
        // PTR name; with a value or table: that name matches (Domain service).
        FromRdns,
        Helo,  // helo [regex] NAME|<t>: the HELO/EHLO name
        // `auth` alone (value and table empty): the session is authenticated
        // (the local socket counts); with a value or table: as a user in it (String).
        Auth,
        // `from auth [...]`: the same test, as the rule's source (any address).
        FromAuth,
        // `from mail-from [regex] ADDR|<t>`: the envelope sender, as the
        // rule's source (any address); `mail-from` without implying it.
        FromMailFrom,
        // `tls`: the session is under TLS (STARTTLS done, or smtps). No value.
        Tls,
    };
    Kind kind;
    bool negated = false;
    bool regex = false;
    std::string value;  // a literal value (quoted or bare), "" when table is set
    std::string table;  // a declared or anonymous table name, "" when value is set
    Location where;

    bool operator==(const Criterion&) const = default;
};

// `match ... action NAME` or `match ... reject`.
struct Rule {
    std::vector<Criterion> criteria;
    bool reject = false;
    std::string action;  // when !reject
    Location where;

    bool operator==(const Rule&) const = default;
};

struct Config {
    std::string hostname;           // server name used in banners and Received:; "" = system name
    std::vector<TableDecl> tables;  // declaration order, anonymous ones included
    std::vector<Pki> pkis;          // declaration order, names unique
    std::vector<Ca> cas;            // declaration order, names unique
    std::vector<Listener> listeners;
    std::vector<FilterProc> procs;  // declaration order, names unique
    std::vector<Filter> filters;    // declaration order, names unique (anonymous chains included)
    std::vector<Action> actions;    // declaration order
    std::vector<Rule> rules;        // first match wins
    // mda wrapper NAME "COMMAND": commands of local deliveries run inside
    // COMMAND, where %{mda} stands for them (name -> command as written).
    std::map<std::string, std::string, std::less<>> mda_wrappers;

    // smtp ...
    std::size_t max_message_size = 35u * 1024 * 1024;  // smtp max-message-size
    unsigned max_rcpt = 1000;                          // smtp limit max-rcpt
    unsigned max_mails = 100;                          // smtp limit max-mails
    unsigned max_sessions = 1000;                      // smtp limit max-sessions (postern)
    // postern's limits against abuse (smtpd/server.cpp, session.cpp). The
    // per-address ones spare local clients (loopback, the local socket).
    unsigned max_sessions_per_address = 50;  // smtp limit max-sessions-per-address
    unsigned max_conn_rate = 20;             // smtp limit max-conn-rate: new connections a second, per address
    unsigned max_auth_failures = 10;         // smtp limit max-auth-failures: per address, forgotten after 15 min
    unsigned command_timeout = 300;          // smtp limit command-timeout: seconds for the client's next command
    unsigned tls_timeout = 30;               // smtp limit tls-timeout: seconds for a TLS handshake
    unsigned min_data_rate = 1024;           // smtp limit min-data-rate: bytes a second of a message, past the timeout
    char sub_addr_delim = '+';               // smtp sub-addr-delim
    std::string ciphers;                     // smtp ciphers; "" = the TLS library's default

    // mta ...
    std::string mta_resolver;  // mta resolver "ADDR[:PORT][,...]": DNS servers for MX routing; "" = resolv.conf
    int mta_family = 0;        // mta limit inet4|inet6: 4 or 6; 0 = both
    unsigned mta_max_conn_per_domain = 10;  // mta limit max-conn-per-domain: MX-routed, per recipient domain
    unsigned mta_max_conn_per_relay = 10;   // mta limit max-conn-per-relay: per smarthost (list)
    // mta limit for domain D max-conn-per-domain N: D's own limit (lowercased
    // domain -> N), instead of mta_max_conn_per_domain, when D is MX-routed.
    std::map<std::string, unsigned, std::less<>> mta_max_conn_for_domain;
    // mta limit session-mail-max N: messages one outbound connection carries
    // before it is closed (plugins/relay/scache.hpp); postern's default.
    static constexpr unsigned kDefaultSessionMailMax = 1000;
    unsigned mta_session_mail_max = kDefaultSessionMailMax;
    // mta limit session-keepalive N: seconds an idle outbound connection is
    // kept for the next batch to the same destination.
    static constexpr unsigned kDefaultSessionKeepalive = 5;
    unsigned mta_session_keepalive = kDefaultSessionKeepalive;

    // admd "authserv-id": the name filters are given as config|admd (the
    // authserv-id of their Authentication-Results); "" = the server's name.
    std::string admd;

    // scheduler limit max-evp-batch-size N: at most N envelopes in one
    // delivery agent run (each kind's own limit, delivery/kind.hpp, still
    // applies); 0 = no limit but those.
    unsigned scheduler_max_evp_batch = 0;

    // srs key SECRET / srs key backup SECRET / srs ttl DELAY
    std::string srs_key;
    std::string srs_backup_key;
    std::chrono::seconds srs_ttl{4 * 24 * 3600};  // whole days
    Location srs_where;                           // where a relay first asked for `srs`

    // queue ...
    std::chrono::seconds queue_ttl{4 * 24 * 3600};  // queue ttl
    bool queue_compression = false;                 // queue compression
    bool queue_encryption = false;                  // queue encryption [KEY]
    std::string queue_encryption_key;               // KEY (32 characters); "" = the key file's (daemon/at_rest.hpp)
    Location queue_encryption_where;

    // bounce warn-interval D[, D...]: when to warn the sender that a message is
    // still undelivered; 1 to kMaxBounceWarnIntervals delays, in the order given.
    static constexpr std::size_t kMaxBounceWarnIntervals = 4;
    std::vector<std::chrono::seconds> bounce_warn_interval{std::chrono::hours(4)};

    // metrics listen on ADDRESS [port N] (postern extension): the Prometheus
    // endpoint, off when metrics_address is "".
    std::string metrics_address;  // an IP address literal
    int metrics_port = 9154;
    Location metrics_where;

    // Paths (postern extensions; empty = the installed default).
    std::string queue_path;      // queue path "DIR"
    std::string control_socket;  // control socket "PATH"
    std::string pid_file;        // pidfile "PATH"
    std::string plugin_path;     // plugin path "DIR"
    std::string mbox_path;       // mbox path "DIR"  (default /var/mail)

    // Two models are equal when every member is, locations included:
    // config/printer.hpp round-trips a model, tests compare the results.
    bool operator==(const Config&) const = default;

    const TableDecl* find_table(std::string_view name) const;
    const Action* find_action(std::string_view name) const;
    const Pki* find_pki(std::string_view name) const;  // name as stored (lowercase)
    const Ca* find_ca(std::string_view name) const;
    const FilterProc* find_proc(std::string_view name) const;
    const Filter* find_filter(std::string_view name) const;
};

struct ParseResult {
    std::optional<Config> config;  // set only when errors is empty
    std::vector<Diagnostic> errors;
    std::vector<Diagnostic> warnings;
};

using Macros = std::map<std::string, std::string, std::less<>>;

// Read a config file; `overrides` (from -D name=value) win over the file's macros.
ParseResult parse_file(const std::string& path, const Macros& overrides = {});
// Read config text; `name` is used in diagnostics and to resolve relative includes.
ParseResult parse_text(std::string_view text, const std::string& name, const Macros& overrides = {});

}  // namespace postern::config
