/* tests/plugins/table_short.c — table-short.so: a table struct that ends
 * before `close`, shorter than POSTERN_TABLE_PLUGIN_MIN_SIZE (the struct as
 * ABI 1 first had it). The loader must refuse it, naming both sizes, before
 * calling anything. Plain C. */
#include <postern/table.h>

struct short_table_plugin {
    uint32_t abi_version;
    uint32_t struct_size;
    const char* name;
    void* open;
    void* reload;
    void* lookup;
};

static const struct short_table_plugin plugin = {
    POSTERN_ABI_VERSION, sizeof(struct short_table_plugin), "short", 0, 0, 0,
};

POSTERN_EXPORT const struct postern_table_plugin* postern_table_plugin(void) {
    return (const struct postern_table_plugin*)(const void*)&plugin;
}
