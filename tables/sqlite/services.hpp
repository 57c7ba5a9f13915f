// tables/sqlite/services.hpp — the lookup services a table-sqlite config can
// hold a query for: the config key, the columns the query must return and the
// shape of the value built from its rows (reference/table-protocol.md §4).
#pragma once

#include <postern/table.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace postern::sqlite {

// How the rows of a query become the value handed to the core.
enum class Shape {
    Join,      // every row's column, joined with ", " (alias and mailaddrmap lists)
    Pair,      // first row: "col1:col2" (credentials: user:password)
    UserInfo,  // first row: "uid:gid:home", uid and gid numbers
    First,     // first row's column (addrname, relayhost)
    Match,     // a row exists = found (domain, netaddr, mailaddr, source)
};

struct ServiceSpec {
    uint32_t bit;           // POSTERN_SERVICE_*
    std::string_view name;  // as OpenSMTPD names it
    std::string_view key;   // the config key holding its query
    int columns;            // what the query must return
    std::string_view column_names;
    Shape shape;
};

// The services with a query_* key, in table-sqlite's order. query_relayhost is
// a postern extension; the string service has no query in table-sqlite.
inline constexpr std::array<ServiceSpec, 10> kServices{{
    {POSTERN_SERVICE_ALIAS, "alias", "query_alias", 1, "alias entry", Shape::Join},
    {POSTERN_SERVICE_DOMAIN, "domain", "query_domain", 1, "domain", Shape::Match},
    {POSTERN_SERVICE_CREDENTIALS, "credentials", "query_credentials", 2, "user, password", Shape::Pair},
    {POSTERN_SERVICE_NETADDR, "netaddr", "query_netaddr", 1, "address", Shape::Match},
    {POSTERN_SERVICE_USERINFO, "userinfo", "query_userinfo", 3, "uid, gid, home", Shape::UserInfo},
    {POSTERN_SERVICE_SOURCE, "source", "query_source", 1, "address", Shape::Match},
    {POSTERN_SERVICE_MAILADDR, "mailaddr", "query_mailaddr", 1, "address", Shape::Match},
    {POSTERN_SERVICE_ADDRNAME, "addrname", "query_addrname", 1, "host name", Shape::First},
    {POSTERN_SERVICE_MAILADDRMAP, "mailaddrmap", "query_mailaddrmap", 1, "address pattern", Shape::Join},
    {POSTERN_SERVICE_RELAYHOST, "relayhost", "query_relayhost", 1, "relay URL", Shape::First},
}};

// Index into kServices of the service `bit`, if it has a query key.
constexpr std::optional<size_t> service_index(uint32_t bit) {
    for (size_t i = 0; i < kServices.size(); ++i)
        if (kServices[i].bit == bit) return i;
    return std::nullopt;
}

constexpr std::optional<size_t> key_index(std::string_view key) {
    for (size_t i = 0; i < kServices.size(); ++i)
        if (kServices[i].key == key) return i;
    return std::nullopt;
}

}  // namespace postern::sqlite
