/*
 * postern plugin ABI, version 1 — the rules every plugin kind shares.
 *
 * These three headers (abi.h, table.h, delivery.h) are the whole contract
 * between postern and a plugin: a third party writes a plugin from them alone
 * (see docs/plugins.md for a walk-through and postern/support/ for optional
 * C++ helpers). They are plain C99 and compile as C++ too.
 *
 * The shape. A plugin is a shared object that exports exactly one entry
 * symbol, named in table.h or delivery.h, returning a pointer to a static,
 * versioned struct of function pointers. Only C types cross this boundary:
 * no C++ types, no exceptions, no longjmp, and no ownership transfer of
 * memory: strings passed in are NUL-terminated and valid for the duration of
 * the call only (copy what you keep); results go out through buffers the
 * caller owns or through callbacks. Build with hidden visibility and mark the
 * entry symbol POSTERN_EXPORT.
 *
 * Versioning. `abi_version` must equal POSTERN_ABI_VERSION, or the plugin is
 * refused: a new ABI version is a break. Within one ABI version structs only
 * grow, by members appended at their end, and every struct has a
 * `struct_size` member saying how many bytes its writer knew about:
 *
 *  - A plugin's own struct (table or delivery) may be shorter than the one in
 *    the header the core was built with, down to POSTERN_*_PLUGIN_MIN_SIZE
 *    (the struct as ABI 1 first had it): a plugin built against an older
 *    header keeps loading. Members past its struct_size count as NULL. It may
 *    also be longer (built against a newer header): the core reads the
 *    members it knows and ignores the rest. Shorter than the minimum is
 *    refused with a message naming both sizes.
 *  - A struct the core passes to a plugin (a delivery request) may likewise
 *    be shorter or longer than the plugin's header says. Before reading a
 *    member that is not in the struct's first version (each such member says
 *    so), check it is there: POSTERN_HAS_MEMBER(req, struct
 *    postern_delivery_request, mail_params).
 *  - A struct the core passes for the plugin to fill (a delivery result) has
 *    its struct_size set by the core: write only members within it.
 *
 * Error buffers. Every `err` buffer the core passes holds at least
 * POSTERN_ERRLEN_MIN bytes (errlen says exactly how many). Write one line:
 * no newline, NUL-terminated, truncated to errlen (snprintf does all that).
 * The core shows it to the administrator, so name what failed and why
 * ("/etc/mail/aliases: Permission denied"), and never a secret.
 *
 * Status codes. Every call that returns int returns one of enum
 * postern_status; each function says which ones it may. Any other value is
 * treated as POSTERN_TEMPFAIL.
 */
#ifndef POSTERN_ABI_H
#define POSTERN_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define POSTERN_ABI_VERSION 1u

/* Results shared by every plugin call. */
enum postern_status {
    POSTERN_OK = 0,       /* done / found */
    POSTERN_NOTFOUND = 1, /* lookup: no such key */
    POSTERN_TEMPFAIL = 2, /* try again later (I/O error, backend down) */
    POSTERN_PERMFAIL = 3  /* will never work (bad config, bad data) */
};

/* The smallest `errlen` the core ever passes. */
#define POSTERN_ERRLEN_MIN 256u

/* The first byte past MEMBER in struct TYPE: a struct_size at least this
 * large holds MEMBER. */
#define POSTERN_END_OF(TYPE, MEMBER) (offsetof(TYPE, MEMBER) + sizeof(((TYPE*)0)->MEMBER))

/* Whether the struct at PTR (of type TYPE, with a struct_size member) is
 * large enough to hold MEMBER. PTR must not be NULL. */
#define POSTERN_HAS_MEMBER(PTR, TYPE, MEMBER) ((size_t)(PTR)->struct_size >= POSTERN_END_OF(TYPE, MEMBER))

#if defined(__GNUC__)
#define POSTERN_EXPORT __attribute__((visibility("default")))
#else
#define POSTERN_EXPORT
#endif

#ifdef __cplusplus
}
#endif

#endif /* POSTERN_ABI_H */
