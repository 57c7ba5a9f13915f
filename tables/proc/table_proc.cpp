// tables/proc/table_proc.cpp — table-proc.so, OpenSMTPD's external table
// programs run unchanged: `table users "proc:/usr/libexec/opensmtpd/table-passwd
// /etc/mail/passwd"` (config: config.hpp; man page: postern-table-proc(5)).
//
// Both protocols such programs speak are implemented: the imsg protocol of
// OpenSMTPD <= 7.5 (Debian's opensmtpd-extras; imsg_codec) and the line
// protocol 0.1 of 7.6+ (line_codec). open() only checks that the program is
// an executable file: it runs as root before the daemon forks, and a program
// started then would stay root and lose its reader at the fork. The program
// is started by the first lookup, in the unprivileged process (program.hpp
// has the restart rules).
//
// lookup() is an alias lookup (what `alias <t>` and `virtual <t>` want from a
// core that does not pass the service); lookup_service() asks the service
// named, `check` for the match services and `lookup` for the others, as
// OpenSMTPD does; fetch() asks `fetch`; services() is what a line-protocol
// program registered (every service until it has run, and always for imsg
// programs, which register nothing).
#include <postern/support/table_guard.hpp>
#include <postern/table.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "config.hpp"
#include "program.hpp"

namespace {

using postern::util::guarded_table;
using postern::util::set_error;

using postern::proctable::Op;
using postern::proctable::Program;

// "" when `path` is an executable regular file, else why not.
std::string check_program(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return path + ": " + std::strerror(errno);
    if (!S_ISREG(st.st_mode)) return path + ": not a regular file";
    if (::access(path.c_str(), X_OK) != 0) return path + ": " + std::strerror(errno);
    return {};
}

int answer(const postern::proctable::Outcome& o, postern_table_value_cb cb, void* ctx, char* err, size_t errlen) {
    if (o.status == POSTERN_OK) cb(ctx, o.text.c_str());
    else if (o.status != POSTERN_NOTFOUND) set_error(err, errlen, o.text);
    return o.status;
}

int table_open(const char* config, void** handle, uint32_t* flags, char* err, size_t errlen) {
    return guarded_table("table-proc", err, errlen, [&] {
        auto parsed = postern::proctable::parse_config(config ? config : "");
        if (auto* why = std::get_if<std::string>(&parsed)) {
            set_error(err, errlen, "table-proc: " + *why);
            return static_cast<int>(POSTERN_PERMFAIL);
        }
        auto& c = std::get<postern::proctable::Config>(parsed);
        if (std::string why = check_program(c.program); !why.empty()) {
            set_error(err, errlen, why);
            return static_cast<int>(POSTERN_PERMFAIL);
        }
        *handle = std::make_unique<Program>(std::move(c)).release();
        *flags = 0;  // answers exact lookups only: the program cannot list its entries
        return static_cast<int>(POSTERN_OK);
    });
}

int table_reload(void* handle, uint32_t*, char* err, size_t errlen) {
    return guarded_table("table-proc", err, errlen, [&] {
        auto o = static_cast<Program*>(handle)->update();
        if (o.status != POSTERN_TEMPFAIL) return static_cast<int>(POSTERN_OK);
        set_error(err, errlen, o.text);
        return static_cast<int>(POSTERN_TEMPFAIL);
    });
}

int table_lookup_service(void* handle, uint32_t service, const char* key, postern_table_value_cb cb, void* ctx,
                         char* err, size_t errlen) {
    return guarded_table("table-proc", err, errlen, [&] {
        Op op = postern::proctable::is_match_service(service) ? Op::Check : Op::Lookup;
        return answer(static_cast<Program*>(handle)->request(op, service, key ? key : ""), cb, ctx, err, errlen);
    });
}

int table_lookup(void* handle, const char* key, postern_table_value_cb cb, void* ctx, char* err, size_t errlen) {
    return table_lookup_service(handle, POSTERN_SERVICE_ALIAS, key, cb, ctx, err, errlen);
}

int table_fetch(void* handle, uint32_t service, postern_table_value_cb cb, void* ctx, char* err, size_t errlen) {
    return guarded_table("table-proc", err, errlen, [&] {
        return answer(static_cast<Program*>(handle)->request(Op::Fetch, service), cb, ctx, err, errlen);
    });
}

uint32_t table_services(void* handle) { return static_cast<Program*>(handle)->services(); }

void table_close(void* handle) {
    std::unique_ptr<Program> owned(static_cast<Program*>(handle));  // released by table_open; stops the program
}

const struct postern_table_plugin plugin = {
    POSTERN_ABI_VERSION,
    sizeof(postern_table_plugin),
    "proc",
    table_open,
    table_reload,
    table_lookup,
    nullptr,  // iterate: a program cannot list its entries
    table_close,
    table_lookup_service,
    table_fetch,
    table_services,
};

}  // namespace

extern "C" POSTERN_EXPORT const struct postern_table_plugin* postern_table_plugin(void) { return &plugin; }
