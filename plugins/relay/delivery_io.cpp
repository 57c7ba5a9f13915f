// plugins/relay/delivery_io.cpp — see delivery_io.hpp.
#include "delivery_io.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>

namespace postern::relay_plugin {

namespace {
constexpr size_t kMaxMessage = size_t{1} << 30;
}

bool read_message(int fd, std::string_view tag, std::string* out, Failure* f) {
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) out->reserve(static_cast<size_t>(st.st_size));
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n == 0) return true;
        if (n < 0) {
            if (errno == EINTR) continue;
            *f = {POSTERN_TEMPFAIL, std::string(tag) + ": cannot read the message: " + std::strerror(errno)};
            return false;
        }
        if (out->size() + static_cast<size_t>(n) > kMaxMessage) {
            *f = {POSTERN_PERMFAIL, std::string(tag) + ": message too large"};
            return false;
        }
        out->append(buf, static_cast<size_t>(n));
    }
}

void put_result(postern_delivery_result* res, const Failure& f) {
    res->status = f.status;
    std::snprintf(res->text, sizeof res->text, "%s", f.reason.c_str());
    if (!POSTERN_HAS_MEMBER(res, struct postern_delivery_result, flags)) return;
    std::snprintf(res->enhanced, sizeof res->enhanced, "%s", f.enhanced.c_str());
    std::snprintf(res->remote_host, sizeof res->remote_host, "%s", f.host.c_str());
    std::snprintf(res->remote_addr, sizeof res->remote_addr, "%s", f.addr.c_str());
    res->remote_code = f.code;
    std::snprintf(res->remote_reply, sizeof res->remote_reply, "%s", f.reply.c_str());
    res->flags = f.dsn_handed_on ? POSTERN_RESULT_DSN_HANDED_ON : 0;
}

namespace {

// Every result a temporary failure until the plugin says otherwise; false
// when a request or result is too old a struct for the fields we use.
bool prepare_results(const std::string& who, const postern_delivery_request* const* reqs, size_t n,
                     postern_delivery_result* const* results) {
    for (size_t i = 0; i < n; ++i) {
        results[i]->status = POSTERN_TEMPFAIL;
        std::snprintf(results[i]->text, sizeof results[i]->text, "%s: unexpected error", who.c_str());
    }
    for (size_t i = 0; i < n; ++i)
        if (reqs[i]->struct_size < POSTERN_DELIVERY_REQUEST_MIN_SIZE ||
            !POSTERN_HAS_MEMBER(results[i], struct postern_delivery_result, text))
            return false;
    return true;
}

}  // namespace

void guarded_deliver_many(std::string_view tag, RunMany run, const postern_delivery_request* const* reqs, size_t n,
                          postern_delivery_result* const* results) noexcept {
    const std::string who(tag);
    if (!prepare_results(who, reqs, n, results)) return;
    try {
        run(reqs, n, results);
    } catch (const std::exception& e) {
        for (size_t i = 0; i < n; ++i)
            std::snprintf(results[i]->text, sizeof results[i]->text, "%s: %s", who.c_str(), e.what());
    } catch (...) {
    }
}

namespace {
std::string_view text(const char* s) { return s ? s : ""; }
}  // namespace

std::string route_key(const postern_delivery_request& r) {
    return std::string(text(r.path)) + '\n' + std::string(text(r.options));
}

std::vector<std::string> route_keys(const postern_delivery_request* const* reqs, size_t n) {
    std::vector<std::string> keys;
    for (size_t i = 0; i < n; ++i) {
        std::string k = route_key(*reqs[i]);
        if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(std::move(k));
    }
    return keys;
}

bool same_message(const postern_delivery_request& a, const postern_delivery_request& b) {
    auto mail_params = [](const postern_delivery_request& r) {
        return POSTERN_HAS_MEMBER(&r, struct postern_delivery_request, mail_params) ? text(r.mail_params)
                                                                                    : std::string_view();
    };
    return text(a.msgid) == text(b.msgid) && text(a.sender) == text(b.sender) && text(a.path) == text(b.path) &&
           text(a.options) == text(b.options) && mail_params(a) == mail_params(b);
}

void guarded_deliver_batch(std::string_view tag, RunBatch run, const postern_delivery_batch* batch,
                           const postern_delivery_request* const* reqs, size_t n,
                           postern_delivery_result* const* results) noexcept {
    const std::string who(tag);
    if (!prepare_results(who, reqs, n, results)) return;
    std::optional<Reporter> reporter;
    try {
        reporter.emplace(batch, n);
        run(batch, reqs, n, results, *reporter);
    } catch (const std::exception& e) {
        for (size_t i = 0; i < n; ++i)
            if (reporter && !reporter->reported(i))
                std::snprintf(results[i]->text, sizeof results[i]->text, "%s: %s", who.c_str(), e.what());
    } catch (...) {
    }
}

int deliver_one(void (*deliver_many)(const postern_delivery_request* const*, size_t, postern_delivery_result* const*),
                const postern_delivery_request* req, char* err, size_t errlen) noexcept {
    if (!req) return POSTERN_TEMPFAIL;
    postern_delivery_result r{};
    r.struct_size = sizeof r;
    postern_delivery_result* out = &r;
    deliver_many(&req, 1, &out);
    if (err && errlen) std::snprintf(err, errlen, "%s", r.text);
    return r.status;
}

}  // namespace postern::relay_plugin
