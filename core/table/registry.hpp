// The tables of a configuration, opened once at start-up.
//
// Inline tables live in memory; every other backend (file, db, sqlite, ...)
// is a plugin `table-BACKEND.so` reached only through the C ABI in
// core/include/postern/table.h. The core never links a backend directly.
#pragma once

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

class Registry {
public:
    Registry() = default;
    ~Registry();  // tables close before their plugins unload
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    // Open every table of `config`; false with one error line per table that failed.
    bool open(const config::Config& config, const std::string& plugin_dir, std::vector<std::string>* errors);

    Table* find(std::string_view name) const;
    // posternctl update table NAME (later); keeps the old content on failure.
    bool reload(std::string_view name, std::string* error);

private:
    std::map<std::string, std::shared_ptr<util::TablePlugin>, std::less<>> plugins_;
    std::map<std::string, std::unique_ptr<Table>, std::less<>> tables_;
};

}  // namespace postern::table
