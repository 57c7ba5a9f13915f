// scheduler/relay_route.cpp — see relay_route.hpp.
#include "scheduler/relay_route.hpp"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <vector>

#include "auth/sasl.hpp"
#include "delivery/kind.hpp"
#include "postern/support/address.hpp"
#include "relay/srs.hpp"
#include "relay/url.hpp"
#include "smtp/dsn_params.hpp"
#include "table/table.hpp"
#include "tls/context.hpp"

namespace postern::scheduler {

namespace {

std::string domain_of(std::string_view address) { return table::lowercase(util::domain_part(address)); }

// Words separated by one space: paths, option and secret lists.
void append_word(std::string* out, const std::string& word) { *out += (out->empty() ? "" : " ") + word; }

// `relay tls` turns the plain smtp:// of a URL into smtp+tls://.
std::string url_text(const relay::RelayUrl& url, bool tls) {
    relay::RelayUrl u = url;
    if (tls && u.scheme == relay::RelayUrl::Scheme::Smtp) u.scheme = relay::RelayUrl::Scheme::SmtpTls;
    return relay::to_string(u);
}

bool read_file(const std::string& path, std::string* out, std::string* error) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    if (in) text << in.rdbuf();
    if (!in || text.str().empty() || text.str().size() > 1 << 20) {
        *error = path + ": cannot read it (" + std::strerror(errno) + ")";
        return false;
    }
    *out = text.str();
    return true;
}

}  // namespace

bool load_relay_pkis(const config::Config& config, RelayPkis* out, std::vector<std::string>* errors) {
    for (const auto& a : config.actions) {
        const std::string& name = a.relay.pki;
        if (delivery::kind_of(a.method) != delivery::Kind::Relay || name.empty() || out->count(name)) continue;
        const config::Pki* p = config.find_pki(name);
        std::string cert, key, error;
        if (!p || !read_file(p->cert, &cert, &error) || !read_file(p->key, &key, &error)) {
            errors->push_back("relay pki " + name + ": " + (p ? error : "no such pki"));
            continue;
        }
        (*out)[name] = "cert=" + auth::base64_encode(cert) + " key=" + auth::base64_encode(key);
    }
    return errors->empty();
}

std::string RelayRouter::key_lookup(const config::Action& action, const queue::Envelope& e) {
    const config::Relay& r = action.relay;
    if (r.url || !r.host_table.empty() || r.domain_table.empty()) return {};
    return action.name + "\n" + domain_of(e.dest);
}

bool RelayRouter::route_reads_tables(const config::Action& action) {
    const config::Relay& r = action.relay;
    return !r.host_table.empty() || !r.domain_table.empty() || !r.helo_src_table.empty() || !r.src_table.empty() ||
           !r.auth_table.empty();
}

std::string RelayRouter::batch_key(const config::Action& action, const queue::Envelope& e) const {
    const config::Relay& r = action.relay;
    if (r.url || !r.host_table.empty()) return action.name + "\nhost";
    std::string domain = domain_of(e.dest);
    std::string value, error;
    table::Table* t = r.domain_table.empty() ? nullptr : tables_.find(r.domain_table);
    if (t && t->lookup(table::Service::Relayhost, domain, &value, &error) == table::Result::Found)
        return action.name + "\nhost " + value;
    return action.name + "\nmx " + domain;
}

std::string RelayRouter::wire_sender(const config::Relay& r, const queue::Envelope& e) const {
    std::string_view sender = e.sender;
    if (sender.empty()) return {};
    if (r.mail_from.empty() && r.srs && !config_.srs_key.empty()) {
        std::string error;
        auto rewritten = relay::srs_forward(sender, e.hostname, {config_.srs_key, config_.srs_backup_key},
                                            std::time(nullptr), &error);
        return rewritten ? *rewritten : std::string(sender);  // unrewritable: sent as it is, as without srs
    }
    if (r.mail_from.empty()) return std::string(sender);
    size_t at = sender.rfind('@');
    std::string_view local = sender.substr(0, at), domain = at == std::string_view::npos ? "" : sender.substr(at + 1);
    const std::string& m = r.mail_from;
    size_t mat = m.find('@');
    if (mat == std::string::npos) return m + (domain.empty() ? "" : "@" + std::string(domain));  // "user"
    if (mat == 0) return std::string(local) + m;                                                 // "@domain"
    return m;                                                                                    // "user@domain"
}

void RelayRouter::dsn_params(const queue::Envelope& e, std::string* mail, std::string* rcpt) {
    mail->clear();
    rcpt->clear();
    const auto add = append_word;
    if (e.dsn_ret == "full" || e.dsn_ret == "hdrs") add(mail, e.dsn_ret == "full" ? "RET=FULL" : "RET=HDRS");
    if (!e.dsn_envid.empty()) add(mail, "ENVID=" + smtp::xtext_encode(e.dsn_envid));
    unsigned n = e.dsn_notify;
    if (n & smtp::NotifyNever) {
        add(rcpt, "NOTIFY=NEVER");
    } else if (n) {
        std::string list;
        for (auto [bit, word] : {std::pair{smtp::NotifySuccess, "SUCCESS"}, std::pair{smtp::NotifyFailure, "FAILURE"},
                                 std::pair{smtp::NotifyDelay, "DELAY"}})
            if (n & bit) list += (list.empty() ? "" : ",") + std::string(word);
        add(rcpt, "NOTIFY=" + list);
    }
    size_t semi = e.dsn_orcpt.find(';');
    if (semi != std::string::npos)
        add(rcpt, "ORCPT=" + e.dsn_orcpt.substr(0, semi) + ";" + smtp::xtext_encode(e.dsn_orcpt.substr(semi + 1)));
}

// The smarthosts in the order to try: `host URL`, `host <list>`, or the URL
// a `domain` table names; none for MX routing.
bool RelayRouter::smarthosts(const config::Relay& r, const queue::Envelope& e, std::vector<relay::RelayUrl>* out,
                             std::string* why) {
    if (r.url) {
        out->push_back(*r.url);
        return true;
    }
    std::string error;
    if (!r.host_table.empty()) {
        table::Table* t = tables_.find(r.host_table);
        std::vector<std::string> urls;
        // A file table reads "smtp://host" as the key "smtp" with the value
        // "//host" (its first ':' separates them): say so rather than guess.
        bool mapped = false;
        auto res = t ? t->for_each(
                           [&](std::string_view key, std::string_view value) {
                               mapped = mapped || value != key;
                               urls.emplace_back(key);
                               return true;
                           },
                           &error)
                     : table::Result::TempFail;
        if (mapped)
            return *why = "relay: table " + r.host_table +
                          " is a mapping, not a list of relay URLs (in a file, ':' "
                          "separates a key from its value: write the URLs as an inline list { ... }, or host names "
                          "without scheme and port)",
                   false;
        if (res == table::Result::TempFail || urls.empty())
            return *why = "relay: cannot list the hosts of table " + r.host_table + (error.empty() ? "" : ": " + error),
                   false;
        for (const std::string& text : urls) {
            std::string bad;
            auto u = relay::parse_relay_url(text, &bad);
            if (!u)
                return *why = "relay: table " + r.host_table + ": invalid relay URL \"" + text + "\": " + bad, false;
            out->push_back(*u);
        }
        return true;
    }
    if (!r.domain_table.empty()) {
        table::Table* t = tables_.find(r.domain_table);
        std::string value;
        auto res = t ? t->lookup(table::Service::Relayhost, domain_of(e.dest), &value, &error)
                     : table::Result::TempFail;
        if (res == table::Result::TempFail) return *why = "relay: table " + r.domain_table + ": " + error, false;
        if (res == table::Result::Found) {
            std::string bad;
            auto u = relay::parse_relay_url(value, &bad);
            if (!u)
                return *why = "relay: table " + r.domain_table + ": invalid relay URL \"" + value + "\": " + bad, false;
            out->push_back(*u);
        }
    }
    return true;
}

// AUTH PLAIN tokens for the labels of the smarthosts: "auth@LABEL=TOKEN".
bool RelayRouter::credentials(const config::Relay& r, const std::vector<relay::RelayUrl>& hosts, RelayRoute* out,
                              std::string* why) {
    if (r.auth_table.empty()) return true;
    table::Table* t = tables_.find(r.auth_table);
    for (const relay::RelayUrl& u : hosts) {
        // Hosts of a failover list may share one account: one token per label.
        if (u.label.empty() || out->secret.find("auth@" + u.label + "=") != std::string::npos) continue;
        std::string value, error;
        auto res = t ? t->lookup(table::Service::Credentials, u.label, &value, &error) : table::Result::TempFail;
        if (res == table::Result::TempFail) return *why = "relay: table " + r.auth_table + ": " + error, false;
        size_t colon = value.find(':');
        if (res == table::Result::NotFound || colon == std::string::npos || colon == 0)
            return *why = "relay: no \"user:password\" for label " + u.label + " in table " + r.auth_table, false;
        std::string plain;
        plain.push_back('\0');
        plain += value.substr(0, colon);
        plain.push_back('\0');
        plain += value.substr(colon + 1);
        append_word(&out->secret, "auth@" + u.label + "=" + auth::base64_encode(plain));
    }
    return true;
}

std::string RelayRouter::source_address(const config::Relay& r, std::string* why) {
    if (!r.src.empty() || r.src_table.empty()) return r.src;
    std::vector<std::string> list;
    std::string error;
    table::Table* t = tables_.find(r.src_table);
    if (t && !t->iterable()) {  // a table with queries hands out its addresses in turn
        std::string value;
        if (t->fetch(table::Service::Source, &value, &error) == table::Result::Found && !value.empty()) return value;
    } else if (t)
        t->for_each(
            [&](std::string_view key, std::string_view) {
                list.emplace_back(key);
                return true;
            },
            &error);
    if (list.empty()) {
        *why = "relay: no source address in table " + r.src_table + (error.empty() ? "" : ": " + error);
        return "";
    }
    return list[src_turn_++ % list.size()];
}

bool RelayRouter::route(const config::Action& action, const queue::Envelope& e, RelayRoute* out, std::string* why) {
    const config::Relay& r = action.relay;
    *out = {};
    std::vector<relay::RelayUrl> hosts;
    if (!smarthosts(r, e, &hosts, why) || !credentials(r, hosts, out, why)) return false;
    for (const auto& u : hosts) append_word(&out->path, url_text(u, r.tls));
    if (hosts.empty()) out->path = "mx:" + domain_of(e.dest);  // no smarthost for this domain: its exchangers
    why->clear();
    std::string src = source_address(r, why);
    if (!why->empty()) return false;
    std::string helo = r.helo.empty() ? e.hostname : r.helo;
    if (!src.empty() && !r.helo_src_table.empty()) {
        std::string value, error;
        table::Table* t = tables_.find(r.helo_src_table);
        if (t && t->lookup(table::Service::Addrname, src, &value, &error) == table::Result::Found && !value.empty())
            helo = value;
    }
    // Values from the config and tables become option words: one word each.
    auto one_word = [](const std::string& v) { return v.find_first_of(" \t\r\n") == std::string::npos; };
    const config::Ca* ca = r.ca.empty() ? nullptr : config_.find_ca(r.ca);
    if (helo.empty() || !one_word(helo) || !one_word(src) || (ca && !one_word(ca->cert)))
        return *why = "relay: the EHLO name \"" + helo + "\", source address \"" + src +
                      "\" or CA path must be one word without spaces",
               false;
    if (!r.pki.empty()) {
        auto it = pkis_.find(r.pki);
        if (it == pkis_.end()) return *why = "relay: the client certificate of pki " + r.pki + " was not loaded", false;
        append_word(&out->secret, it->second);
    }
    std::string& o = out->options;
    o = "helo=" + helo + (r.tls_no_verify ? " tls=no-verify" : " tls=verify");
    if (ca) o += " ca=" + ca->cert;
    if (!src.empty()) o += " src=" + src;
    if (!r.ciphers.empty()) o += " ciphers=" + tls::cipher_list(r.ciphers);
    if (!r.protocols.empty()) {
        std::string error;
        auto range = tls::parse_protocols(r.protocols, &error);  // checked by the parser already
        if (!range) return *why = "relay: protocols: " + error, false;
        o += " tls-versions=" + std::to_string(range->min_version) + ":" + std::to_string(range->max_version);
    }
    if (out->path.rfind("mx:", 0) == 0) {
        if (r.tls) o += " starttls=required";
        o += " self=" + (r.backup && !r.backup_mx.empty() ? r.backup_mx : e.hostname);
        if (!config_.mta_resolver.empty()) o += " resolver=" + config_.mta_resolver;
        if (config_.mta_family == 4) o += " family=inet4";
        if (config_.mta_family == 6) o += " family=inet6";
    }
    // `mta limit session-mail-max` and `session-keepalive`, when not
    // postern's defaults (so that a default route's options stay as they were).
    if (config_.mta_session_mail_max != config::Config::kDefaultSessionMailMax)
        o += " session-mail-max=" + std::to_string(config_.mta_session_mail_max);
    if (config_.mta_session_keepalive != config::Config::kDefaultSessionKeepalive)
        o += " keepalive=" + std::to_string(config_.mta_session_keepalive);
    return true;
}

}  // namespace postern::scheduler
