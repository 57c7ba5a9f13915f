// The YAML form of the configuration (postern.yaml(5)): the same model as
// smtpd.conf, written the way configuration management tools write files.
//
// The reader checks the document's shape (which keys, which types, what is
// required) and turns each entry into the smtpd.conf line that means the
// same thing, its tokens placed where the YAML wrote them. The smtpd.conf
// parser then reads those lines as it reads a file, so every check it makes
// (values, option combinations, undefined tables, actions, pki, filters, the
// pki a tls listener gets) applies to both forms alike, with diagnostics
// pointing into the YAML. Depends on yaml-cpp (Debian's libyaml-cpp-dev).
#pragma once

#include <string>
#include <string_view>

#include "config/config.hpp"

namespace postern::config {

// Whether `path` names a YAML configuration: it ends in .yaml or .yml.
bool is_yaml_name(std::string_view path);

// Read YAML text; `name` is used in diagnostics. `overrides` (-D) have no
// macros to replace in YAML: giving any adds a warning.
ParseResult read_yaml_text(std::string_view text, const std::string& name, const Macros& overrides = {});
ParseResult read_yaml_file(const std::string& path, const Macros& overrides = {});

}  // namespace postern::config
