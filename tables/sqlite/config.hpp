// tables/sqlite/config.hpp — the table-sqlite configuration file
// (postern-table-sqlite(5)): the database to open and one SQL query per
// lookup service. Same keys and line syntax as opensmtpd-extras' table-sqlite,
// but strict: an unknown key, a key twice, a key without value or a missing
// dbpath reject the file ("FILE:LINE: reason") instead of being logged and
// skipped, so `posternd -n` reports the mistake before mail is lost to it.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "services.hpp"

namespace postern::sqlite {

// An SQL statement from the config and the line it came from, so that a
// statement the database refuses is reported at its line.
struct Query {
    std::string sql;
    size_t line = 0;
};

struct Config {
    std::string path;  // the config file itself
    std::string dbpath;
    size_t dbpath_line = 0;
    std::array<std::optional<Query>, kServices.size()> queries;  // by kServices index
    std::optional<Query> fetch_source;
    // table-sqlite's defaults: the fetched source list is read again after 60
    // seconds or 1000 fetches, whichever comes first.
    std::chrono::seconds source_expire{60};
    uint64_t source_refresh = 1000;
    // postern extension: how long a lookup waits for a writer's lock.
    std::chrono::milliseconds busy_timeout{5000};
};

// Parse the text of config file `path`. On error return "PATH:LINE: reason"
// (or "PATH: reason" for what is missing from the whole file).
std::optional<std::string> parse_config(const std::string& path, std::string_view text, Config* out);

// Read and parse `path`; on failure the reason ("PATH: No such file or
// directory", or parse_config's) is returned.
std::optional<std::string> load_config(const std::string& path, Config* out);

}  // namespace postern::sqlite
