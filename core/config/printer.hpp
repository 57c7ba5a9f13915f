// Printing a configuration model: `posternd -n -P conf|yaml`.
//
// The model is what the daemon runs, after macros, includes, the pre-6.4
// translation and the defaults the parser fills in (the implied socket
// listener, a tls listener's pki, a rule's `from local`). Printing it shows
// the effective configuration, and converts one form into the other: the
// text printed reads back (parse_text, read_yaml_text) to an equal model,
// save for what a file cannot say: the locations, the names the parser
// gives anonymous tables and chains ("<anon:LINE:COL>", printed inline where
// they are used), and the order of the tables and filters vectors (built-in
// tables are declared where first used, anonymous ones where written).
// Settings left at their default are not printed.
#pragma once

#include <string>

#include "config/config.hpp"

namespace postern::config {

// smtpd.conf(5) text, declarations before their uses.
std::string print_conf(const Config& c);
// postern.yaml(5) text.
std::string print_yaml(const Config& c);

// Whether a table or filter name is one the parser made for an inline `{ }`.
bool is_anonymous(std::string_view name);

}  // namespace postern::config
