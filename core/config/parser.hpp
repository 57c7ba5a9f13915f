// What the smtpd.conf parser does not read yet, in one place.
//
// Each later issue that implements one of these words removes it from a list
// here and adds its grammar to parser.cpp. Until then the parser refuses the
// word with "'WORD' is not supported yet" rather than crashing on it or, worse,
// ignoring a line that changes who may relay mail.
#pragma once

#include <algorithm>
#include <iterator>
#include <string_view>

namespace postern::config::grammar {

// Top-level directives of OpenSMTPD 6.4+ that postern does not read yet
// ("mda" is `mda wrapper NAME "COMMAND"`; the `mda` action method is read).
inline constexpr std::string_view kUnsupportedDirectives[] = {
    "filter", "proc", "admd", "srs", "mta", "mda", "scheduler",
};

// `queue ...` sub-directives not read yet.
inline constexpr std::string_view kUnsupportedQueueOptions[] = {"compression", "encryption"};

// `listen on ...` options not read yet.
inline constexpr std::string_view kUnsupportedListenOptions[] = {"proxy-v2", "filter"};

// `action NAME METHOD`: methods, and method options, not read yet.
inline constexpr std::string_view kUnsupportedActionMethods[] = {
    "lmtp", "relay", "forward-only", "expand-only",
};
inline constexpr std::string_view kUnsupportedActionOptions[] = {"wrapper"};

// `match ...` options, and `from ...` sources, not read yet.
inline constexpr std::string_view kUnsupportedMatchOptions[] = {"tls"};
inline constexpr std::string_view kUnsupportedFromSources[] = {"mail-from"};

// Pre-6.4 top-level words, with what to write instead (empty: see the man page).
struct Legacy {
    std::string_view word;
    std::string_view instead;
};
inline constexpr Legacy kLegacyDirectives[] = {
    {"accept", "'action' and 'match' lines"},
    {"reject", "'match ... reject'"},
    {"limit", "'smtp limit', 'mta limit' or 'scheduler limit'"},
    {"expire", "'queue ttl'"},
    {"max-message-size", "'smtp max-message-size'"},
    {"bounce-warn", "'bounce warn-interval'"},
    {"max-mta-deferred", "'mta max-deferred'"},
    {"subaddressing-delimiter", "'smtp sub-addr-delim'"},
    {"ciphers", "'smtp ciphers'"},
};

template <std::size_t N>
bool listed(const std::string_view (&list)[N], std::string_view word) {
    return std::find(std::begin(list), std::end(list), word) != std::end(list);
}

inline const Legacy* find_legacy(std::string_view word) {
    for (const Legacy& l : kLegacyDirectives)
        if (l.word == word) return &l;
    return nullptr;
}

}  // namespace postern::config::grammar
