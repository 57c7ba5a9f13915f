// postern/support/delivery_guard.hpp — the C ABI edge of a delivery plugin.
// Part of the plugin SDK: header-only, C++17.
//
// Every delivery plugin's `deliver` does the same at the boundary: check the
// request (not NULL, at least the members of its first ABI 1 version), run
// the C++ delivery, turn a failure or an exception (no exception may cross
// the C ABI) into a status and a one-line reason in err. Plugins call
// guarded_deliver() and write only their `run`; a `run` that reads a request
// member added later checks it first with POSTERN_HAS_MEMBER (abi.h).
#pragma once

#include <cstdio>
#include <exception>
#include <string>

#include "postern/delivery.h"

namespace postern::util {

struct DeliveryFailure {
    int status;
    std::string reason;
};

// `run(const postern_delivery_request&, DeliveryFailure*)` returns true when
// delivered; otherwise it has filled the failure.
template <typename Run>
int guarded_deliver(const char* plugin, const postern_delivery_request* req, char* err, size_t errlen,
                    Run run) noexcept {
    DeliveryFailure f{POSTERN_TEMPFAIL, std::string(plugin) + ": unexpected error"};
    try {
        if (!req || req->struct_size < POSTERN_DELIVERY_REQUEST_MIN_SIZE) {
            f.reason = std::string(plugin) + ": request struct too small";
        } else if (run(*req, &f)) {
            return POSTERN_OK;
        }
    } catch (const std::exception& e) {  // bad_alloc: nothing may cross the C ABI
        f = {POSTERN_TEMPFAIL, std::string(plugin) + ": " + e.what()};
    } catch (...) {
    }
    if (err && errlen) std::snprintf(err, errlen, "%s", f.reason.c_str());
    return f.status;
}

}  // namespace postern::util
