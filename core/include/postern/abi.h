/*
 * postern plugin ABI — common definitions.
 *
 * A plugin is a shared object that exports exactly one entry symbol, named in
 * table.h or delivery.h, returning a pointer to a static, versioned struct of
 * function pointers. Only C types cross this boundary: no C++ types, no
 * exceptions, no ownership transfer of memory (strings passed in are valid for
 * the duration of the call; results are copied out through caller buffers or
 * callbacks).
 *
 * Versioning: `abi_version` must equal the core's POSTERN_ABI_VERSION. New
 * members are only ever appended; `struct_size` lets the core tell an older
 * (shorter) struct from a newer one within the same ABI version.
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

#if defined(__GNUC__)
#define POSTERN_EXPORT __attribute__((visibility("default")))
#else
#define POSTERN_EXPORT
#endif

#ifdef __cplusplus
}
#endif

#endif /* POSTERN_ABI_H */
