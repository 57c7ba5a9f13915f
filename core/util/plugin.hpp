// util/plugin.hpp — the plugin loader: finds, opens and checks table-NAME.so
// and delivery-NAME.so shared objects (ABI in core/include/postern/).
//
// Loading happens at start-up or on reload, never on the data path; it reports
// failure through a returned std::optional and an error string that names the
// file and the reason, so a misfit plugin is a clear config error, not a crash.
//
// Lifetime: a loaded plugin is unloaded (dlclose) when its Plugin object is
// destroyed, so every handle a plugin returned (table `open`) must be closed
// before then.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "postern/delivery.h"
#include "postern/table.h"

namespace postern::util {

// The folder plugins are loaded from: `configured` when non-empty; else the
// `plugins/` folder of the build tree the running executable sits in (so a
// daemon run from the build tree needs nothing installed); else the installed
// folder (POSTERN_PLUGIN_DIR).
std::string plugin_dir(std::string_view configured);

// Plugin names are [a-z0-9-]+: they become part of a file name, so nothing
// that could walk the filesystem ("../x", "/x") is ever let through.
bool valid_plugin_name(std::string_view name);

// Closes a dlopen() handle on destruction.
struct DlCloser {
    void operator()(void* handle) const noexcept;
};
using DlHandle = std::unique_ptr<void, DlCloser>;

// A loaded, checked plugin: the library handle and its entry struct.
template <typename Api>
class Plugin {
public:
    Plugin(DlHandle lib, const Api* api, std::string path) : lib_(std::move(lib)), api_(api), path_(std::move(path)) {}

    const Api& api() const noexcept { return *api_; }
    const Api* operator->() const noexcept { return api_; }
    // Full path of the shared object, for messages.
    const std::string& path() const noexcept { return path_; }

private:
    DlHandle lib_;
    const Api* api_;
    std::string path_;
};

using TablePlugin = Plugin<postern_table_plugin>;
using DeliveryPlugin = Plugin<postern_delivery_plugin>;

// The plugin's deliver_many, or nullptr when it has none (NULL, or an older,
// shorter struct without the member).
inline decltype(postern_delivery_plugin::deliver_many) deliver_many_of(const DeliveryPlugin& p) {
    if (!POSTERN_HAS_MEMBER(&p.api(), postern_delivery_plugin, deliver_many)) return nullptr;
    return p->deliver_many;
}

// The table plugin's members added within ABI 1 after close, or nullptr when
// it has none (NULL, or an older, shorter struct).
inline decltype(postern_table_plugin::lookup_service) lookup_service_of(const TablePlugin& p) {
    if (!POSTERN_HAS_MEMBER(&p.api(), postern_table_plugin, lookup_service)) return nullptr;
    return p->lookup_service;
}
inline decltype(postern_table_plugin::fetch) fetch_of(const TablePlugin& p) {
    if (!POSTERN_HAS_MEMBER(&p.api(), postern_table_plugin, fetch)) return nullptr;
    return p->fetch;
}
inline decltype(postern_table_plugin::services) services_of(const TablePlugin& p) {
    if (!POSTERN_HAS_MEMBER(&p.api(), postern_table_plugin, services)) return nullptr;
    return p->services;
}

// Load DIR/table-NAME.so or DIR/delivery-NAME.so and check it fits this
// postern: the entry symbol exists and returns a struct with our ABI version,
// a struct_size of at least POSTERN_*_PLUGIN_MIN_SIZE (a shorter struct of
// ABI 1 is fine, abi.h), the expected name and every required function
// pointer set (table: open, lookup, close; delivery: deliver). On failure return nullopt and store one line in *error,
// e.g.
//   "/x/table-foo.so: no such plugin (looked in /x)"
//   "/x/table-foo.so: not a postern plugin (no symbol postern_table_plugin)"
//   "/x/table-foo.so: ABI version 7, this postern speaks 1"
std::optional<TablePlugin> load_table_plugin(std::string_view dir, std::string_view name, std::string* error);
std::optional<DeliveryPlugin> load_delivery_plugin(std::string_view dir, std::string_view name, std::string* error);

}  // namespace postern::util
