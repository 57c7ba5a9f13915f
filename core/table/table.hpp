// Tables as the core sees them: named sets of keys (lists) or key -> value
// maps, backed by a plugin (file, db, sqlite, ...) or written inline in the
// config. The core does the pattern matching that OpenSMTPD's lookup
// services define (domain wildcards, network masks, mail address patterns)
// so that every backend gets it the same way.
//
// Every method may block (a backend may read a disk or a database): call
// them from worker threads only, never from the event loop.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace postern::table {

enum class Result { Found, NotFound, TempFail };

// What a table is asked for: OpenSMTPD's lookup services. The first four
// are answered by a match (how a subject is compared with the entries);
// the others by the value found under a key. A backend with one query per
// service (sqlite, a table program) is told which; file and db tables hold
// one map and answer every service from it.
enum class Service {
    String,       // exact, case-insensitive (tags, user names)
    Domain,       // hostname; entries may hold '*' wildcards ("*.example.org")
    Netaddr,      // IP address; entries are addresses or CIDR masks ("10.0.0.0/8", "[::1]")
    Mailaddr,     // address; entries "user", "@domain", "user@domain", "@"
    Alias,        // alias and virtual tables: key -> alias list
    Credentials,  // user -> "user:hash" (listener auth), label -> "user:password" (relay auth)
    Userinfo,     // user -> "uid:gid:/home"
    Source,       // relay src: addresses to bind
    Addrname,     // local address -> host name
    Mailaddrmap,  // user -> address patterns they may send as
    Relayhost,    // domain -> relay URL
};

// The name OpenSMTPD gives the service ("userinfo"), for messages.
const char* service_name(Service service);

class Table {
public:
    virtual ~Table() = default;
    const std::string& name() const { return name_; }

    // Exact lookup of a key (lowercased first) for `service`. For lists the
    // value is the key.
    virtual Result lookup(Service service, std::string_view key, std::string* value, std::string* error) = 0;
    // Can this table answer `service`? (A sqlite table without query_userinfo cannot be a userbase.)
    virtual bool supports(Service) const { return true; }
    // Calls `fn` for every entry; false if the backend cannot list its entries.
    virtual Result for_each(const std::function<bool(std::string_view key, std::string_view value)>& fn,
                            std::string* error) = 0;
    virtual bool iterable() const = 0;
    // The next value of a rotating service (relay src) from a table that
    // cannot be listed; NotFound from one that has no such query.
    virtual Result fetch(Service, std::string*, std::string*) { return Result::NotFound; }
    // Re-read the backing store (posternctl update table).
    virtual bool reload(std::string* error) = 0;

    // Does `subject` match an entry under `service`?
    Result match(Service service, std::string_view subject, std::string* error);

protected:
    explicit Table(std::string name) : name_(std::move(name)) {}

private:
    std::string name_;
};

// The matching rules of each service, for one entry (exposed for tests).
bool domain_matches(std::string_view pattern, std::string_view domain);
bool netaddr_matches(std::string_view pattern, std::string_view address);
bool mailaddr_matches(std::string_view pattern, std::string_view address);
bool entry_matches(Service service, std::string_view entry, std::string_view subject);

std::string lowercase(std::string_view s);

// A table written in the config: `{ a, b }` or `{ k = v }`.
std::unique_ptr<Table> make_inline_table(std::string name, std::vector<std::pair<std::string, std::string>> entries,
                                         bool is_map);

}  // namespace postern::table
