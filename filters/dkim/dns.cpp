// dkim/dns.cpp — c-ares driven by libuv (see dns.hpp).
//
// The pairing: c-ares' socket state callback starts, changes and stops a
// uv_poll_t per socket; after every step (a lookup started, a socket ready,
// the timer) one uv_timer_t is set to c-ares' next deadline; both feed
// ares_process_fd. Answers are parsed in c-ares' callback (its buffer lives
// only that long) and reported from a zero timer, outside c-ares.
//
// Ownership: Impl owns the channel, one Query per running lookup, and the
// libuv handles. A libuv handle is freed in its close callback, which owns it
// from the moment uv_close is called.
#include "dkim/dns.hpp"

#include <ares.h>
#include <arpa/nameser.h>

#include <optional>
#include <type_traits>
#include <unordered_map>
#include <utility>

namespace postern::dkim {

namespace {

struct ChannelDeleter {
    void operator()(ares_channel c) const { ares_destroy(c); }
};
using Channel = std::unique_ptr<std::remove_pointer_t<ares_channel>, ChannelDeleter>;

struct TxtListDeleter {
    void operator()(ares_txt_ext* l) const { ares_free_data(l); }
};
using TxtList = std::unique_ptr<ares_txt_ext, TxtListDeleter>;

// Hands a libuv handle's owner to uv_close: the close callback frees it.
template <typename T>
void close_owned(std::unique_ptr<T> owner, uv_handle_t* handle) {
    handle->data = owner.release();
    uv_close(handle, [](uv_handle_t* h) { std::unique_ptr<T> gone(static_cast<T*>(h->data)); });
}

// c-ares' global state, made once before the first channel (a filter runs
// no other thread that could be using c-ares meanwhile).
int library_init() {
    static const int status = ares_library_init(ARES_LIB_INIT_ALL);
    return status;
}

}  // namespace

TxtResult txt_answer_records(const unsigned char* abuf, int alen) {
    ares_txt_ext* raw = nullptr;
    int rc = ares_parse_txt_reply_ext(abuf, alen, &raw);
    TxtList list(raw);
    if (rc == ARES_ENODATA) return TxtNotFound{};  // an answer without TXT (a CNAME alone)
    if (rc != ARES_SUCCESS) return TxtTempFail{std::string("unreadable answer: ") + ares_strerror(rc)};
    TxtFound found;
    for (const ares_txt_ext* s = list.get(); s; s = s->next) {
        if (s->record_start || found.records.empty()) found.records.emplace_back();
        found.records.back().append(reinterpret_cast<const char*>(s->txt), s->length);
    }
    if (found.records.empty()) return TxtNotFound{};
    return found;
}

namespace {

TxtResult result_of(int status, const unsigned char* abuf, int alen) {
    switch (status) {
    case ARES_SUCCESS: return txt_answer_records(abuf, alen);
    case ARES_ENOTFOUND:  // NXDOMAIN
    case ARES_ENODATA:    // the name exists, without TXT records
        return TxtNotFound{};
    default:  // timeout, SERVFAIL, refused, no server reachable
        return TxtTempFail{ares_strerror(status)};
    }
}

}  // namespace

struct TxtResolver::Impl {
    struct Poll {
        uv_poll_t handle{};
        ares_socket_t fd = ARES_SOCKET_BAD;
        Impl* impl = nullptr;
    };
    struct Timer {
        uv_timer_t handle{};
        Impl* impl = nullptr;
    };
    struct Query {
        std::uint64_t id = 0;
        Impl* impl = nullptr;
        Done done;
        std::optional<TxtResult> result;
    };

    uv_loop_t* loop;
    Channel channel;
    std::unique_ptr<Timer> ares_timer;   // c-ares' next retransmission or timeout
    std::unique_ptr<Timer> ready_timer;  // reports answered lookups, from the loop
    std::unordered_map<ares_socket_t, std::unique_ptr<Poll>> polls;
    std::unordered_map<std::uint64_t, std::unique_ptr<Query>> queries;  // in c-ares
    std::vector<std::unique_ptr<Query>> ready;                          // answered, to report
    std::uint64_t next_id = 1;
    bool closing = false;

    explicit Impl(uv_loop_t* l) : loop(l) {
        ares_timer = make_timer();
        ready_timer = make_timer();
    }

    ~Impl() {
        // ares_destroy ends the running queries (their callbacks return at
        // once: `closing`) and closes its sockets, telling on_sock_state
        // first, which stops and closes their polls.
        closing = true;
        channel.reset();
        for (auto& [fd, p] : polls) close_poll(std::move(p));
        polls.clear();
        close_timer(std::move(ares_timer));
        close_timer(std::move(ready_timer));
    }

    std::unique_ptr<Timer> make_timer() {
        auto t = std::make_unique<Timer>();
        uv_timer_init(loop, &t->handle);
        t->impl = this;
        t->handle.data = t.get();
        return t;
    }

    static void close_timer(std::unique_ptr<Timer> t) {
        if (!t) return;
        uv_timer_stop(&t->handle);
        uv_handle_t* h = reinterpret_cast<uv_handle_t*>(&t->handle);
        close_owned(std::move(t), h);
    }

    static void close_poll(std::unique_ptr<Poll> p) {
        uv_poll_stop(&p->handle);
        uv_handle_t* h = reinterpret_cast<uv_handle_t*>(&p->handle);
        close_owned(std::move(p), h);
    }

    // --- c-ares' callbacks ------------------------------------------------

    static void on_sock_state(void* data, ares_socket_t fd, int readable, int writable) {
        auto* self = static_cast<Impl*>(data);
        if (!readable && !writable) return self->unwatch(fd);
        Poll* p = self->watch(fd);
        // Not watched (libuv refused the descriptor): the lookup ends by
        // c-ares' timeout instead, as a temporary failure.
        if (!p) return;
        int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
        uv_poll_start(&p->handle, events, &Impl::on_poll);
    }

    static void on_answer(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
        auto* q = static_cast<Query*>(arg);
        Impl* self = q->impl;
        if (self->closing) return;  // ARES_EDESTRUCTION: nobody to tell
        auto it = self->queries.find(q->id);
        if (it == self->queries.end()) return;
        std::unique_ptr<Query> owned = std::move(it->second);
        self->queries.erase(it);
        owned->result = result_of(status, abuf, alen);
        self->ready.push_back(std::move(owned));
        uv_timer_start(&self->ready_timer->handle, &Impl::on_ready, 0, 0);
    }

    // --- libuv's callbacks --------------------------------------------------

    static void on_poll(uv_poll_t* handle, int status, int events) {
        auto* p = static_cast<Poll*>(handle->data);
        // `p` may be closed by c-ares during the call: read it first. An
        // error is handed over as readiness: c-ares' read or write then
        // fails and it moves on to the next server or try.
        Impl* self = p->impl;
        ares_socket_t fd = p->fd;
        bool in = status < 0 || (events & UV_READABLE);
        bool out = status < 0 || (events & UV_WRITABLE);
        ares_process_fd(self->channel.get(), in ? fd : ARES_SOCKET_BAD, out ? fd : ARES_SOCKET_BAD);
        self->rearm();
    }

    static void on_timeout(uv_timer_t* handle) {
        Impl* self = static_cast<Timer*>(handle->data)->impl;
        ares_process_fd(self->channel.get(), ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        self->rearm();
    }

    static void on_ready(uv_timer_t* handle) {
        Impl* self = static_cast<Timer*>(handle->data)->impl;
        std::vector<std::unique_ptr<Query>> answered;
        answered.swap(self->ready);
        for (auto& q : answered) {
            Done done = std::move(q->done);
            TxtResult result = std::move(*q->result);
            q.reset();
            done(std::move(result));
        }
    }

    // --- the work -----------------------------------------------------------

    Poll* watch(ares_socket_t fd) {
        auto it = polls.find(fd);
        if (it != polls.end()) return it->second.get();
        auto p = std::make_unique<Poll>();
        if (uv_poll_init_socket(loop, &p->handle, fd) != 0) return nullptr;
        p->fd = fd;
        p->impl = this;
        p->handle.data = p.get();
        return polls.emplace(fd, std::move(p)).first->second.get();
    }

    void unwatch(ares_socket_t fd) {
        auto it = polls.find(fd);
        if (it == polls.end()) return;
        std::unique_ptr<Poll> p = std::move(it->second);
        polls.erase(it);
        close_poll(std::move(p));
    }

    // The timer set to c-ares' next deadline, or stopped when it has none
    // (no query running).
    void rearm() {
        timeval tv{};
        if (!ares_timeout(channel.get(), nullptr, &tv)) {
            uv_timer_stop(&ares_timer->handle);
            return;
        }
        // Rounded up: woken a little early, c-ares would find nothing due.
        auto ms = static_cast<std::uint64_t>(tv.tv_sec) * 1000 + (static_cast<std::uint64_t>(tv.tv_usec) + 999) / 1000;
        uv_timer_start(&ares_timer->handle, &Impl::on_timeout, ms, 0);
    }

    void start(std::string_view name, Done done) {
        auto q = std::make_unique<Query>();
        q->id = next_id++;
        q->impl = this;
        q->done = std::move(done);
        Query* raw = q.get();
        queries.emplace(q->id, std::move(q));
        // c-ares may answer at once (no server to ask): on_answer queues it.
        ares_query(channel.get(), std::string(name).c_str(), ns_c_in, ns_t_txt, &Impl::on_answer, raw);
        rearm();
    }
};

Result<std::unique_ptr<TxtResolver>, ResolverError> TxtResolver::create(uv_loop_t* loop, Options options) {
    if (int rc = library_init(); rc != ARES_SUCCESS) return ResolverError{std::string("DNS: ") + ares_strerror(rc)};
    auto impl = std::make_unique<Impl>(loop);
    ares_options o{};
    o.flags = ARES_FLAG_NOSEARCH;
    o.timeout = static_cast<int>(options.timeout.count());
    o.tries = options.tries;
    o.sock_state_cb = &Impl::on_sock_state;
    o.sock_state_cb_data = impl.get();
    ares_channel raw = nullptr;
    int rc = ares_init_options(&raw, &o, ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB);
    if (rc != ARES_SUCCESS) return ResolverError{std::string("DNS: ") + ares_strerror(rc)};
    impl->channel.reset(raw);
    if (!options.servers.empty()) {
        rc = ares_set_servers_ports_csv(raw, options.servers.c_str());
        if (rc != ARES_SUCCESS)
            return ResolverError{"DNS: bad resolver address \"" + options.servers + "\": " + ares_strerror(rc)};
    }
    return std::make_unique<TxtResolver>(Key{}, std::move(impl));
}

TxtResolver::TxtResolver(Key, std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TxtResolver::~TxtResolver() = default;

void TxtResolver::lookup_txt(std::string_view name, Done done) { impl_->start(name, std::move(done)); }

std::size_t TxtResolver::running() const { return impl_->queries.size() + impl_->ready.size(); }

}  // namespace postern::dkim
