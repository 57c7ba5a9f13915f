// plugins/relay/delivery_io.hpp — what the delivery plugins built on this
// SMTP/LMTP client (relay, lmtp) share at the ABI's edge: reading the
// spooled message into memory, and writing one recipient's Failure into its
// postern_delivery_result.
//
// Depends on: session.hpp (Failure), postern/delivery.h.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "session.hpp"

namespace postern::relay_plugin {

// The whole message from the agent's descriptor, at most 1 GiB (what we
// agree to hold in memory). On failure *f says why, as "TAG: ...".
bool read_message(int fd, std::string_view tag, std::string* out, Failure* f);

// One result: the text always, the typed fields only when the caller's
// struct has them (an agent built before them passes a shorter one).
void put_result(postern_delivery_result* res, const Failure& f);

// The plugin's work for one message's recipients (deliver_many's shape).
using RunMany = void (*)(const postern_delivery_request* const* reqs, size_t n,
                         postern_delivery_result* const* results);

// deliver_many at the C ABI's edge: every result starts as a temporary
// failure ("TAG: unexpected error"), structs too short to use are left so,
// and no exception crosses: one becomes every result's text.
void guarded_deliver_many(std::string_view tag, RunMany run, const postern_delivery_request* const* reqs, size_t n,
                          postern_delivery_result* const* results) noexcept;

// The route a kept connection belongs to (scache.hpp): the request's path
// and options (destination, TLS, credentials).
std::string route_key(const postern_delivery_request& r);
// The distinct routes of reqs[0..n), in order.
std::vector<std::string> route_keys(const postern_delivery_request* const* reqs, size_t n);

// Whether reqs a and b are the same message, to go in one transaction:
// the same msgid, sender, path, options and DSN parameters of MAIL.
bool same_message(const postern_delivery_request& a, const postern_delivery_request& b);

// The results of a deliver_batch call, each handed to the agent once
// (postern_delivery_batch::report) as soon as it is final.
class Reporter {
public:
    Reporter(const postern_delivery_batch* batch, size_t n) : batch_(batch), done_(n, false) {}
    // False once the agent says results no longer reach the daemon: then
    // no new delivery may start (postern/delivery.h).
    bool report(size_t i) {
        if (i < done_.size() && !done_[i]) {
            done_[i] = true;
            if (batch_ && batch_->report && batch_->report(batch_, i) != POSTERN_OK) heard_ = false;
        }
        return heard_;
    }
    bool reported(size_t i) const { return i < done_.size() && done_[i]; }

private:
    const postern_delivery_batch* batch_;
    std::vector<bool> done_;
    bool heard_ = true;
};

// The plugin's work for a whole batch (deliver_batch's shape).
using RunBatch = void (*)(const postern_delivery_batch* batch, const postern_delivery_request* const* reqs, size_t n,
                          postern_delivery_result* const* results, Reporter& reporter);

// deliver_batch at the C ABI's edge, as guarded_deliver_many: every result
// starts as a temporary failure, and an exception becomes the text of the
// results not reported yet.
void guarded_deliver_batch(std::string_view tag, RunBatch run, const postern_delivery_batch* batch,
                           const postern_delivery_request* const* reqs, size_t n,
                           postern_delivery_result* const* results) noexcept;

// deliver for one recipient through the same path; a success's text (the
// server and its reply) goes into err too. The typed fields only come
// through deliver_many, which postern-local uses.
int deliver_one(void (*deliver_many)(const postern_delivery_request* const*, size_t, postern_delivery_result* const*),
                const postern_delivery_request* req, char* err, size_t errlen) noexcept;

}  // namespace postern::relay_plugin
