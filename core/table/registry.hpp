// The tables of a configuration, opened once at start-up.
//
// Inline tables live in memory; every other backend (file, db, sqlite, ...)
// is a plugin `table-BACKEND.so` reached only through the C ABI in
// core/include/postern/table.h. The core never links a backend directly.
//
// The built-in tables (<localnames>, <localhost>, <anyhost>, <anydestination>,
// see config::kBuiltinTables) are declared by the parser where a file uses
// them and live in memory too. What they hold comes from the daemon, which
// knows this host's names and addresses: it calls set_local_identity() (or
// set_builtin()) before open(). Without that call they hold loopback only.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "table/table.hpp"
#include "util/plugin.hpp"

namespace postern::table {

// Where OpenSMTPD's table programs live: `table t NAME:CONF` with no plugin
// table-NAME.so runs DIR/table-NAME CONF through the proc backend, as
// OpenSMTPD does (Debian's opensmtpd-extras installs them there).
inline constexpr const char* kOpensmtpdTableDir = "/usr/libexec/opensmtpd/";

class Registry {
public:
    Registry();   // built-in tables hold their loopback-only defaults
    ~Registry();  // tables close before their plugins unload
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    // The entries of the built-in table `name` (without <>); false, and no
    // change, for a name that is not built in. Call before open().
    bool set_builtin(std::string_view name, std::vector<std::string> entries);
    // <localnames> = "localhost", `server_names` and every address of
    // `local_ips` as written, in brackets ("[192.0.2.1]") and, for IPv6, as
    // "[IPv6:...]"; <localhost> = "local" (the socket) and `local_ips`.
    void set_local_identity(const std::vector<std::string>& server_names, const std::vector<std::string>& local_ips);
    // What the built-in table `name` holds (or will hold once opened).
    std::vector<std::string> builtin(std::string_view name) const;

    // Open every table of `config`; false with one error line per table that failed.
    // `explain`, when given, words a plugin that cannot be loaded or a table
    // it cannot open (what follows "table NAME: "), e.g. with what to do.
    enum class Failure { Plugin, Open };
    using Explain =
        std::function<std::string(const config::TableDecl& decl, Failure failure, const std::string& error)>;
    bool open(const config::Config& config, const std::string& plugin_dir, std::vector<std::string>* errors,
              const Explain& explain = nullptr);

    Table* find(std::string_view name) const;
    // posternctl update table NAME; keeps the old content on failure.
    bool reload(std::string_view name, std::string* error);

private:
    std::map<std::string, std::vector<std::string>, std::less<>> builtins_;
    std::map<std::string, std::shared_ptr<util::TablePlugin>, std::less<>> plugins_;
    std::map<std::string, std::unique_ptr<Table>, std::less<>> tables_;
    std::map<std::string, std::string, std::less<>> files_;  // `file:` tables: name -> path
};

}  // namespace postern::table
