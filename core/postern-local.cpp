// postern-local — the local delivery agent.
//
//   postern-local [--plugin-dir DIR] --method NAME --user U --home H [--options O]
//                 [--as UID:GID] --batch-fd FD [--secret-fd FD] --result-fd FD
//
// The daemon starts an agent for a batch of local deliveries that share an
// action and an account, and may give it more such batches later (see
// below). A daemon running as root starts it as root with
// --as: the agent loads its plugin while it can still read any folder (the
// binaries may sit in a checkout under a 0700 home), creates missing
// mailboxes (the PATH of a delivery marked so, a mailbox
// in the mbox folder: Debian's /var/mail is
// root:mail 2775, so a user cannot), and then becomes UID:GID for good
// before it reads a single message. --batch-fd names an inherited descriptor
// holding the batch (delivery/agent_batch.hpp): for each delivery, the
// inherited descriptor holding its spooled message, and its envelope. The
// envelopes are never in argv, which any local user reads in /proc. The
// agent loads delivery-NAME.so once and hands it each batch: whole, to its
// `deliver_batch`, when the plugin has one (a maildir flushes the batch's
// files together; a relay keeps its time budget and what it found
// unreachable for that batch alone); else its `deliver` for each delivery
// (or, for the recipients of one message side by side, its `deliver_many`
// once, when the plugin has one: the relay sends them in one transaction).
// A busy queue pays for one process start per agent, not per message, and a
// plugin that crashes costs the batch's attempts, never the daemon.
// --secret-fd names a pipe holding more option words (relay credentials),
// which must not appear in argv where any user can read them.
//
// --result-fd names the descriptor the results go to: one frame
// (util/frame.hpp) per delivery, as soon as it is known, holding its index
// in its batch and its result's fields (delivery/result.hpp: status, text,
// enhanced code, remote server and reply, whether the DSN request was
// handed on). The agent's stdout is pointed at its stderr before the plugin
// loads, and the result descriptor is closed on exec: nothing a plugin or a
// command it runs prints can pass for a result.
//
// More batches: once every delivery of its first batch has its
// result, the agent waits on the result descriptor for the next batch. When
// the daemon keeps agents, that descriptor is a SOCK_SEQPACKET socket and
// each batch comes on it as one packet with its messages' descriptors
// (delivery/agent_channel.hpp); the agent is no longer root by then, so the
// daemon sends no batch with a mailbox to create. The daemon closing the
// socket ends the agent (exit 0). On any other kind of descriptor (a pipe,
// a file, a stream socket) the agent exits after its first batch.
//
// Exit status 0 when every delivery was tried; 75 (EX_TEMPFAIL)
// with one line on stderr when none could be (the plugin cannot be loaded: a
// site configuration error, so the mail waits in the queue), or a result
// could not be reported, or a batch from the daemon made no sense; 1 with
// the usage on stderr for bad arguments. A delivery without its result (the
// agent died) counts as a temporary failure.
//
// Depends on: util/plugin (the loader), util/frame, delivery/result (compiled
// in), delivery/agent_channel.hpp and agent_batch.hpp, the delivery ABI in
// postern/delivery.h.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "delivery/agent_batch.hpp"
#include "delivery/agent_channel.hpp"
#include "delivery/kind.hpp"
#include "delivery/result.hpp"
#include "postern/delivery.h"
#include "util/fd.hpp"
#include "util/frame.hpp"
#include "util/plugin.hpp"
#include "util/privileges.hpp"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitUsage = 1;
constexpr int kExitTempFail = 75;

constexpr const char* kUsage = "usage: postern-local [--plugin-dir DIR] --method NAME --user U --home H [--options O]\n"
                               "                     [--as UID:GID] --batch-fd FD [--secret-fd FD] --result-fd FD\n";

struct Delivery {
    int fd = -1;
    std::string sender, rcpt, dest, path, msgid;
    std::string mail_params, rcpt_params;  // --dsn, for a relay
    bool create_mbox = false;              // PATH is a mailbox root makes if missing
};

struct Args {
    std::string plugin_dir, method, user, home, options;
    int batch_fd = -1;                          // the first batch's envelopes, kept out of argv
    int secret_fd = -1;                         // more option words, kept out of argv
    int result_fd = -1;                         // where the results go
    std::optional<std::pair<uid_t, gid_t>> as;  // --as: who to become after loading the plugin
    bool has_method = false, has_user = false, has_home = false;
    std::vector<Delivery> deliveries;
};

// "UID:GID", both decimal and below 2^31.
bool parse_ids(std::string_view text, std::pair<uid_t, gid_t>* out) {
    auto number = [](std::string_view t, unsigned long* v) {
        if (t.empty() || t.size() > 10 || t.find_first_not_of("0123456789") != std::string_view::npos) return false;
        *v = std::strtoul(std::string(t).c_str(), nullptr, 10);
        return *v <= 0x7fffffffUL;
    };
    auto colon = text.find(':');
    unsigned long uid = 0, gid = 0;
    if (colon == std::string_view::npos || !number(text.substr(0, colon), &uid) ||
        !number(text.substr(colon + 1), &gid))
        return false;
    *out = {static_cast<uid_t>(uid), static_cast<gid_t>(gid)};
    return true;
}

bool parse_fd(std::string_view text, int* fd) {
    if (text.empty() || text.size() > 6 || text.find_first_not_of("0123456789") != std::string_view::npos) return false;
    *fd = std::atoi(std::string(text).c_str());
    return *fd >= 3;  // 0-2 are the agent's own stdio
}

// Strict: every option known, given once (--delivery repeats), with its values.
std::optional<Args> parse(int argc, char** argv, std::string* error) {
    Args a;
    auto single = [&](std::string_view name, std::string* out, bool* seen, int& i) {
        if (seen && *seen) {
            *error = "option --" + std::string(name) + " given twice";
            return false;
        }
        if (i + 1 >= argc) {
            *error = "option --" + std::string(name) + " needs a value";
            return false;
        }
        *out = argv[++i];
        if (seen) *seen = true;
        return true;
    };
    bool has_dir = false, has_options = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view opt = argv[i];
        bool ok;
        if (opt == "--plugin-dir") ok = single("plugin-dir", &a.plugin_dir, &has_dir, i);
        else if (opt == "--method") ok = single("method", &a.method, &a.has_method, i);
        else if (opt == "--user") ok = single("user", &a.user, &a.has_user, i);
        else if (opt == "--home") ok = single("home", &a.home, &a.has_home, i);
        else if (opt == "--options") ok = single("options", &a.options, &has_options, i);
        else if (opt == "--batch-fd") {
            std::string text;
            bool seen = a.batch_fd >= 0;
            ok = single("batch-fd", &text, &seen, i) && parse_fd(text, &a.batch_fd);
            if (!ok && error->empty()) *error = "bad file descriptor \"" + text + "\" for --batch-fd";
        } else if (opt == "--as") {
            std::string text;
            std::pair<uid_t, gid_t> ids;
            bool seen = a.as.has_value();
            ok = single("as", &text, &seen, i) && parse_ids(text, &ids);
            if (ok) a.as = ids;
            else if (error->empty()) *error = "bad --as \"" + text + "\" (want UID:GID)";
        } else if (opt == "--secret-fd") {
            std::string text;
            ok = single("secret-fd", &text, nullptr, i) && parse_fd(text, &a.secret_fd);
            if (!ok && error->empty()) *error = "bad file descriptor \"" + text + "\" for --secret-fd";
        } else if (opt == "--result-fd") {
            std::string text;
            bool seen = a.result_fd >= 0;
            ok = single("result-fd", &text, &seen, i) && parse_fd(text, &a.result_fd);
            if (!ok && error->empty()) *error = "bad file descriptor \"" + text + "\" for --result-fd";
        } else {
            *error = "unknown argument \"" + std::string(opt) + "\"";
            return std::nullopt;
        }
        if (!ok) return std::nullopt;
    }
    const char* missing = !a.has_method     ? "--method"
                          : !a.has_user     ? "--user"
                          : !a.has_home     ? "--home"
                          : a.batch_fd < 0  ? "--batch-fd"
                          : a.result_fd < 0 ? "--result-fd"
                                            : nullptr;
    if (missing) {
        *error = std::string("missing option ") + missing;
        return std::nullopt;
    }
    if (a.batch_fd == a.result_fd || a.secret_fd == a.result_fd || a.secret_fd == a.batch_fd) {
        *error = "--batch-fd, --secret-fd and --result-fd must be three descriptors";
        return std::nullopt;
    }
    return a;
}

// The secret option words: read whole, then the descriptor is closed so
// that nothing the plugin starts inherits it.
bool read_secret(int fd, std::string* out) {
    constexpr size_t kMax = 60 * 1024;  // as the launcher's kMaxSecret
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 || out->size() + static_cast<size_t>(n) > kMax) break;
        if (n == 0) {
            ::close(fd);
            return true;
        }
        out->append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return false;
}

// The first batch (delivery/agent_batch.hpp): read whole, bounded, then the
// descriptor is closed. Its message descriptors must not be the agent's own.
bool read_batch(Args& a, std::string* error) {
    namespace first_batch = postern::delivery::first_batch;
    std::string bytes;
    char buf[16384];
    for (;;) {
        ssize_t n = ::read(a.batch_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            *error = "cannot read the batch on descriptor " + std::to_string(a.batch_fd) + ": " + std::strerror(errno);
            ::close(a.batch_fd);
            return false;
        }
        if (n == 0) break;
        bytes.append(buf, static_cast<size_t>(n));
        if (bytes.size() > first_batch::kMaxBytes) break;  // decode() says so
    }
    ::close(a.batch_fd);
    std::vector<first_batch::Item> items;
    std::string why;
    if (!first_batch::decode(std::move(bytes), &items, &why)) {
        *error = why + " on descriptor " + std::to_string(a.batch_fd);
        return false;
    }
    a.deliveries.clear();
    for (auto& i : items) {
        if (i.fd == a.batch_fd || i.fd == a.secret_fd || i.fd == a.result_fd) {
            *error = "message descriptor " + std::to_string(i.fd) + " is also --batch-fd, --secret-fd or --result-fd";
            return false;
        }
        auto& f = i.fields;
        a.deliveries.push_back({i.fd, std::move(f.sender), std::move(f.rcpt), std::move(f.dest), std::move(f.path),
                                std::move(f.msgid), std::move(f.mail_params), std::move(f.rcpt_params), i.create_mbox});
    }
    if (!a.as &&
        std::any_of(a.deliveries.begin(), a.deliveries.end(), [](const Delivery& d) { return d.create_mbox; })) {
        *error = "a mailbox to create needs --as";
        return false;
    }
    return true;
}

using postern::delivery::Result;
using postern::util::Fd;

// A string from one of a plugin's fixed buffers: up to its NUL or its end,
// line breaks made spaces.
std::string field(const char* buf, size_t size) {
    std::string out(buf, ::strnlen(buf, size));
    for (char& c : out)
        if (c == '\n' || c == '\r') c = ' ';
    return out;
}

postern_delivery_request request_for(const Args& a, const Delivery& d) {
    postern_delivery_request req{};
    req.struct_size = sizeof req;
    req.message_fd = d.fd;
    req.sender = d.sender.c_str();
    req.rcpt = d.rcpt.c_str();
    req.dest = d.dest.c_str();
    req.user = a.user.c_str();
    req.home = a.home.c_str();
    req.path = d.path.c_str();
    req.options = a.options.c_str();
    req.msgid = d.msgid.c_str();
    req.mail_params = d.mail_params.c_str();
    req.rcpt_params = d.rcpt_params.c_str();
    return req;
}

// A plugin's answer made safe to send: a known status, some text, and the
// typed fields (deliver_many's) only when every one of them is what the
// launcher accepts; else they are dropped, and said so on stderr.
// What a deliver_many result holds until the plugin sets it: no status of the ABI's.
constexpr int kNoStatus = -1;

Result checked(const postern::util::DeliveryPlugin& plugin, int status, std::string text,
               const postern_delivery_result* typed = nullptr) {
    if (status == kNoStatus) return {Result::Status::TempFail, plugin.path() + ": no result for this delivery"};
    if (status != POSTERN_OK && status != POSTERN_TEMPFAIL && status != POSTERN_PERMFAIL)
        return {Result::Status::TempFail,
                plugin.path() + ": deliver returned unknown status " + std::to_string(status)};
    Result r;
    r.status = status == POSTERN_OK         ? Result::Status::Ok
               : status == POSTERN_PERMFAIL ? Result::Status::PermFail
                                            : Result::Status::TempFail;
    if (!text.empty()) r.text = std::move(text);  // on success, where it went, if the plugin says
    else r.text = status == POSTERN_OK ? "Delivered" : "delivery failed (no reason given)";
    if (!typed) return r;
    r.enhanced = field(typed->enhanced, sizeof typed->enhanced);
    r.remote.host = field(typed->remote_host, sizeof typed->remote_host);
    r.remote.addr = field(typed->remote_addr, sizeof typed->remote_addr);
    r.remote.code = typed->remote_code;
    r.remote.reply = field(typed->remote_reply, sizeof typed->remote_reply);
    r.dsn_handed_on = (typed->flags & POSTERN_RESULT_DSN_HANDED_ON) != 0;
    if (std::string why = postern::delivery::check_result(r); !why.empty()) {
        std::fprintf(stderr, "postern-local: %s: invalid %s in a result, typed fields dropped\n", plugin.path().c_str(),
                     why.c_str());
        r = Result{r.status, std::move(r.text)};
    }
    return r;
}

bool has_message(const Delivery& d) {
    struct stat st {};
    return ::fstat(d.fd, &st) == 0;
}

Result deliver_one(const postern::util::DeliveryPlugin& plugin, const Args& a, const Delivery& d) {
    if (!has_message(d)) return {Result::Status::TempFail, "no message on descriptor " + std::to_string(d.fd)};
    postern_delivery_request req = request_for(a, d);
    char err[1024] = "";
    int status = plugin->deliver(&req, err, sizeof err);
    return checked(plugin, status, field(err, sizeof err));
}

// Deliveries of one message that deliver_many may take together.
bool same_message(const Delivery& a, const Delivery& b) {
    return a.msgid == b.msgid && a.sender == b.sender && a.path == b.path && a.mail_params == b.mail_params;
}

// Deliveries first .. first+n of one message through deliver_many (n may be 1).
std::vector<Result> deliver_together(const postern::util::DeliveryPlugin& plugin,
                                     decltype(postern_delivery_plugin::deliver_many) many, const Args& a, size_t first,
                                     size_t n) {
    std::vector<Result> out;
    if (!has_message(a.deliveries[first])) {
        for (size_t k = 0; k < n; ++k) out.push_back(deliver_one(plugin, a, a.deliveries[first + k]));
        return out;
    }
    std::vector<postern_delivery_request> reqs;
    for (size_t k = 0; k < n; ++k) reqs.push_back(request_for(a, a.deliveries[first + k]));
    // Zeroed, so typed fields a plugin leaves alone stay empty; but the
    // status starts as no status at all: a result the plugin never set is a
    // temporary failure, not a delivery (POSTERN_OK is 0).
    std::vector<postern_delivery_result> results(n);
    std::vector<const postern_delivery_request*> req_ptrs;
    std::vector<postern_delivery_result*> result_ptrs;
    for (size_t k = 0; k < n; ++k) {
        results[k].struct_size = sizeof results[k];
        results[k].status = kNoStatus;
        req_ptrs.push_back(&reqs[k]);
        result_ptrs.push_back(&results[k]);
    }
    many(req_ptrs.data(), n, result_ptrs.data());
    for (auto& r : results) out.push_back(checked(plugin, r.status, field(r.text, sizeof r.text), &r));
    return out;
}

// One result frame: the delivery's index, then the result's fields.
bool send_result(int fd, size_t index, const Result& r) {
    std::vector<std::string> fields = {std::to_string(index)};
    postern::delivery::append_result_fields(r, &fields);
    return postern::util::write_all(fd, postern::util::encode_frame(fields));
}

// The way a system MDA makes a mailbox nobody has yet: created by root,
// then handed to the user, mode 0600; in a set-group-ID folder such as
// Debian's /var/mail (root:mail 2775) it takes the folder's group (mail).
// O_EXCL and O_NOFOLLOW: an existing file or a planted link is never
// touched; the plugin opens what is there as the user.
bool create_mailbox(const std::string& path, uid_t uid, std::string* error) {
    postern::util::Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) {
        if (errno == EEXIST) return true;
        *error = "mbox: create " + path + ": " + std::strerror(errno);
        return false;
    }
    if (::fchown(fd.get(), uid, static_cast<gid_t>(-1)) != 0 || ::fsync(fd.get()) != 0) {
        *error = "mbox: hand " + path + " over: " + std::strerror(errno);
        ::unlink(path.c_str());
        return false;
    }
    return true;
}

// Root's part of the run: missing mailboxes, then root is gone for good.
bool root_steps(const Args& a, std::string* error) {
    if (!a.as) return true;
    for (const auto& d : a.deliveries)
        if (d.create_mbox && !d.path.empty() && !create_mailbox(d.path, a.as->first, error)) return false;
    if (::geteuid() != 0) {
        if (::geteuid() == a.as->first) return true;
        *error = "--as " + std::to_string(a.as->first) + " needs root";
        return false;
    }
    return postern::util::become(a.as->first, a.as->second, {}, error);
}

// The plugin's deliver_batch, or nullptr when it has none (NULL, or an
// older, shorter struct without the member).
decltype(postern_delivery_plugin::deliver_batch) deliver_batch_of(const postern::util::DeliveryPlugin& p) {
    if (!POSTERN_HAS_MEMBER(&p.api(), postern_delivery_plugin, deliver_batch)) return nullptr;
    return p->deliver_batch;
}

// A deliver_batch call's results and their reporting: each result goes to
// the daemon as soon as the plugin says it is final (report(), from any of
// its threads, one at a time under the lock), the rest when the call
// returns. report() finds the call through the batch's `agent`, and takes
// only a batch that is the call's own.
struct BatchCall {
    postern_delivery_batch abi{};
    std::mutex lock;
    const postern::util::DeliveryPlugin& plugin;
    int fd;
    std::vector<size_t> index;  // the batch's index of the call's k-th delivery
    std::vector<postern_delivery_result> results;
    std::vector<bool> sent;
    bool failed = false;  // a result could not be sent
    int error = 0;        // errno of that failure

    BatchCall(const postern::util::DeliveryPlugin& p, int result_fd) : plugin(p), fd(result_fd) {}

    void send(size_t k);
    static int report(const postern_delivery_batch* batch, size_t k) noexcept;
};

// Sends the call's k-th result once; the caller holds the lock.
void BatchCall::send(size_t k) {
    if (k >= sent.size() || sent[k]) return;
    sent[k] = true;
    const postern_delivery_result& r = results[k];
    if (!failed && !send_result(fd, index[k], checked(plugin, r.status, field(r.text, sizeof r.text), &r))) {
        failed = true;
        error = errno;
    }
}

// POSTERN_TEMPFAIL once a result could not be sent: the plugin is to
// start no more deliveries, which nobody would hear of.
int BatchCall::report(const postern_delivery_batch* batch, size_t k) noexcept {
    if (!batch) return POSTERN_TEMPFAIL;
    auto* call = static_cast<BatchCall*>(batch->agent);
    if (!call || &call->abi != batch) return POSTERN_TEMPFAIL;
    try {
        std::lock_guard<std::mutex> hold(call->lock);
        call->send(k);
        return call->failed ? POSTERN_TEMPFAIL : POSTERN_OK;
    } catch (...) {  // nothing may cross the C ABI back into the plugin
        call->failed = true;
        return POSTERN_TEMPFAIL;
    }
}

// How long the daemon gives a batch of this method (delivery/kind.hpp,
// the rule the daemon's timer follows).
uint64_t time_limit_ms(const std::string& method) {
    return static_cast<uint64_t>(postern::delivery::info(method).timeout.count());
}

// The whole batch through deliver_batch. A delivery whose message is not
// there fails at once and is not passed on.
bool deliver_whole(const postern::util::DeliveryPlugin& plugin, decltype(postern_delivery_plugin::deliver_batch) batch,
                   const Args& a) {
    BatchCall call(plugin, a.result_fd);
    std::vector<postern_delivery_request> reqs;
    for (size_t i = 0; i < a.deliveries.size(); ++i) {
        const Delivery& d = a.deliveries[i];
        if (!has_message(d)) {
            Result missing{Result::Status::TempFail, "no message on descriptor " + std::to_string(d.fd)};
            if (!send_result(a.result_fd, i, missing)) return false;
            continue;
        }
        call.index.push_back(i);
        reqs.push_back(request_for(a, d));
    }
    const size_t n = reqs.size();
    if (n == 0) return true;
    // Zeroed, the status no POSTERN_* one (as deliver_together's).
    call.results.resize(n);
    call.sent.assign(n, false);
    std::vector<const postern_delivery_request*> req_ptrs;
    std::vector<postern_delivery_result*> result_ptrs;
    for (size_t k = 0; k < n; ++k) {
        call.results[k].struct_size = sizeof call.results[k];
        call.results[k].status = kNoStatus;
        req_ptrs.push_back(&reqs[k]);
        result_ptrs.push_back(&call.results[k]);
    }
    call.abi.struct_size = sizeof call.abi;
    call.abi.time_limit_ms = time_limit_ms(a.method);
    call.abi.report = &BatchCall::report;
    call.abi.agent = &call;
    batch(&call.abi, req_ptrs.data(), n, result_ptrs.data());
    // Whatever the plugin did not report; its threads are done (delivery.h).
    std::lock_guard<std::mutex> hold(call.lock);
    for (size_t k = 0; k < n; ++k) call.send(k);
    if (call.failed) errno = call.error;
    return !call.failed;
}

// Delivers a.deliveries and reports each result. A plugin with
// deliver_batch gets the batch whole. Else one with deliver_many takes the
// recipients of one message together, and only deliver_many gives typed
// results: it is used for one recipient too. False when a result cannot be
// reported: with nobody left to read them, delivering on would only deliver
// twice.
bool deliver_batch(const postern::util::DeliveryPlugin& plugin, const Args& a) {
    if (auto whole = deliver_batch_of(plugin)) {
        if (deliver_whole(plugin, whole, a)) return true;
        std::fprintf(stderr, "postern-local: cannot report a result: %s\n", std::strerror(errno));
        return false;
    }
    auto many = postern::util::deliver_many_of(plugin);
    const auto& all = a.deliveries;
    for (size_t i = 0; i < all.size();) {
        size_t n = 1;
        while (many && i + n < all.size() && same_message(all[i], all[i + n])) ++n;
        std::vector<Result> out = many ? deliver_together(plugin, many, a, i, n)
                                       : std::vector<Result>{deliver_one(plugin, a, all[i])};
        // Each result as soon as it is known: a crash later loses none.
        for (size_t k = 0; k < n; ++k)
            if (!send_result(a.result_fd, i + k, out[k])) {
                std::fprintf(stderr, "postern-local: cannot report a result: %s\n", std::strerror(errno));
                return false;
            }
        i += n;
    }
    return true;
}

// Whether the daemon may send more batches on the result descriptor: only
// its channel does, a SOCK_SEQPACKET socket (delivery/agent_channel.hpp).
// On a pipe, a file or a stream socket the agent serves one batch.
bool takes_more_batches(int fd) {
    int type = 0;
    socklen_t len = sizeof type;
    return ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_SEQPACKET;
}

enum class Next { Batch, End, Bad };

// The next batch on the channel (delivery/agent_channel.hpp): its
// deliveries in *out, their messages owned by *messages. End when the
// daemon has closed it.
Next next_batch(int fd, std::vector<Delivery>* out, std::vector<Fd>* messages, std::string* why) {
    namespace channel = postern::delivery::channel;
    // Made once: the agent reads one batch at a time, in its only thread.
    static std::vector<char> buf(channel::kMaxPacket + 1);
    static std::vector<char> control(CMSG_SPACE(sizeof(int) * channel::kMaxItems));
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    ssize_t n;
    do {
        n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n == 0) return Next::End;
    if (n < 0) {
        *why = std::string("cannot read the next batch: ") + std::strerror(errno);
        return Next::Bad;
    }
    messages->clear();
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t k = 0; k < count; ++k) {
            int got = -1;
            std::memcpy(&got, CMSG_DATA(c) + k * sizeof(int), sizeof got);
            messages->emplace_back(got);
        }
    }
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        *why = "a batch too large to read";
        return Next::Bad;
    }
    std::vector<channel::Item> items;
    if (!channel::decode_batch(std::string(buf.data(), static_cast<size_t>(n)), messages->size(), &items, why))
        return Next::Bad;
    out->clear();
    for (size_t k = 0; k < items.size(); ++k) {
        auto& i = items[k];
        out->push_back({(*messages)[k].get(), std::move(i.sender), std::move(i.rcpt), std::move(i.dest),
                        std::move(i.path), std::move(i.msgid), std::move(i.mail_params), std::move(i.rcpt_params),
                        false});
    }
    return Next::Batch;
}

// Batch after batch, as the daemon sends them, until it closes the channel.
// The plugin stays loaded: its state carries over (postern/delivery.h).
int serve(const postern::util::DeliveryPlugin& plugin, Args& args) {
    for (;;) {
        std::vector<Fd> messages;
        std::string why;
        switch (next_batch(args.result_fd, &args.deliveries, &messages, &why)) {
        case Next::End: return kExitOk;
        case Next::Bad: std::fprintf(stderr, "postern-local: %s\n", why.c_str()); return kExitTempFail;
        case Next::Batch: break;
        }
        if (!deliver_batch(plugin, args)) return kExitTempFail;
    }
}

}  // namespace

int main(int argc, char** argv) {
    // A plugin writing to a socket whose peer went away (lmtp) must see EPIPE,
    // not die of SIGPIPE: that would turn a clear error into a bare signal.
    ::signal(SIGPIPE, SIG_IGN);
    // Whatever the daemon held back is not the agent's (nor its mda commands').
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);

    std::string error;
    auto args = parse(argc, argv, &error);
    if (!args) {
        std::fprintf(stderr, "postern-local: %s\n%s", error.c_str(), kUsage);
        return kExitUsage;
    }
    if (!read_batch(*args, &error)) {
        std::fprintf(stderr, "postern-local: %s\n%s", error.c_str(), kUsage);
        return kExitUsage;
    }
    // The result pipe is ours alone: closed on exec, so no command a plugin
    // starts (mda) inherits it; and stdout becomes stderr before the plugin
    // is loaded, so whatever it prints goes to the log, never among results.
    if (::fcntl(args->result_fd, F_SETFD, FD_CLOEXEC) != 0 || ::dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
        std::fprintf(stderr, "postern-local: no result descriptor %d: %s\n", args->result_fd, std::strerror(errno));
        return kExitTempFail;
    }
    if (args->secret_fd >= 0) {
        std::string secret;
        if (!read_secret(args->secret_fd, &secret)) {
            std::fprintf(stderr, "postern-local: cannot read the secret options\n");
            return kExitTempFail;
        }
        if (!secret.empty()) args->options += (args->options.empty() ? "" : " ") + secret;
    }
    std::string dir = postern::util::plugin_dir(args->plugin_dir);
    auto plugin = postern::util::load_delivery_plugin(dir, args->method, &error);
    if (!plugin) {
        std::fprintf(stderr, "postern-local: %s\n", error.c_str());
        return kExitTempFail;
    }
    if (!root_steps(*args, &error)) {
        std::fprintf(stderr, "postern-local: %s\n", error.c_str());
        return kExitTempFail;
    }

    if (!deliver_batch(*plugin, *args)) return kExitTempFail;
    if (!takes_more_batches(args->result_fd)) return kExitOk;
    // The first batch's messages are done with: no later call sees them.
    for (const auto& d : args->deliveries) ::close(d.fd);
    return serve(*plugin, *args);
}
