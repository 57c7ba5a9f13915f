// tests/plugins/bad_abi.cpp — table-badabi.so: a table plugin built for an
// ABI version this postern does not speak (7). The loader must refuse it
// before calling any of its functions, which is why they are all NULL.
#include <postern/table.h>

namespace {
const struct postern_table_plugin plugin = {
    7u, sizeof(postern_table_plugin), "badabi", nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
};
}  // namespace

extern "C" POSTERN_EXPORT const struct postern_table_plugin* postern_table_plugin(void) { return &plugin; }
