// filters/rspamd/client.cpp — libcurl's multi interface driven by libuv
// (see client.hpp).
//
// The standard pairing: curl's socket callback starts, changes and stops a
// uv_poll_t per socket; its timer callback arms one uv_timer_t; both feed
// events back with curl_multi_socket_action, after which finished transfers
// are collected with curl_multi_info_read and their `done` called.
//
// Ownership: the client's Impl owns the multi handle, one Transfer per scan
// (its easy handle, header list, body reader and answer), and the libuv
// handles. A libuv handle is freed in its close callback, which owns it from
// the moment uv_close is called.

#include "client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

namespace postern::rspamd {

std::string_view kind_name(Failure::Kind k) {
    switch (k) {
    case Failure::Kind::Connect: return "connect";
    case Failure::Kind::Timeout: return "timeout";
    case Failure::Kind::HttpStatus: return "http status";
    case Failure::Kind::BadReply: return "bad reply";
    case Failure::Kind::Transfer: return "transfer";
    }
    return "failure";
}

namespace {

struct EasyDeleter {
    void operator()(CURL* e) const { curl_easy_cleanup(e); }
};
struct MultiDeleter {
    void operator()(CURLM* m) const { curl_multi_cleanup(m); }
};
struct SlistDeleter {
    void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlEasy = std::unique_ptr<CURL, EasyDeleter>;
using CurlMulti = std::unique_ptr<CURLM, MultiDeleter>;
using CurlSlist = std::unique_ptr<curl_slist, SlistDeleter>;

// Hands a libuv handle's owner to uv_close: the close callback frees it.
template <typename T>
void close_owned(std::unique_ptr<T> owner, uv_handle_t* handle) {
    handle->data = owner.release();
    uv_close(handle, [](uv_handle_t* h) { std::unique_ptr<T> gone(static_cast<T*>(h->data)); });
}

// libcurl's global state, made once before the first client: the call is
// not safe while other threads use curl, and a filter starts no such thread.
CURLcode global_init() {
    static const CURLcode status = curl_global_init(CURL_GLOBAL_DEFAULT);
    return status;
}

// Bytes of an answer quoted in a failure's text.
constexpr std::size_t kQuote = 200;

std::string quote(std::string_view body) {
    std::string out;
    for (char c : body.substr(0, kQuote)) {
        auto u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u == 0x7f) ? ' ' : c;
    }
    if (body.size() > kQuote) out += "...";
    return out;
}

}  // namespace

struct RspamdClient::Impl {
    struct Poll {
        uv_poll_t handle{};
        curl_socket_t fd = CURL_SOCKET_BAD;
        Impl* impl = nullptr;
    };
    struct Timer {
        uv_timer_t handle{};
        Impl* impl = nullptr;
    };
    struct Transfer {
        ScanId id = 0;
        CurlEasy easy;
        CurlSlist headers;
        BodyReader body;
        std::string answer;
        Done done;
        std::size_t max_answer = 0;
        char error[CURL_ERROR_SIZE] = {};
        bool too_large = false;
        int body_errno = 0;
        bool in_multi = false;
        std::optional<Failure> failure;  // decided before or instead of curl's result
        CURLcode result = CURLE_OK;
    };

    uv_loop_t* loop;
    Options options;
    std::string endpoint;
    CurlMulti multi;
    std::unique_ptr<Timer> curl_timer;
    // Fires at once, to report scans that failed before curl had them (so
    // that `done` is never called from within scan()).
    std::unique_ptr<Timer> early_timer;
    std::unordered_map<curl_socket_t, std::unique_ptr<Poll>> polls;
    std::unordered_map<ScanId, std::unique_ptr<Transfer>> transfers;
    std::vector<ScanId> early;
    ScanId next_id = 1;

    Impl(uv_loop_t* l, Options o) : loop(l), options(std::move(o)) {
        endpoint = options.url;
        while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
        endpoint += "/checkv2";
        curl_timer = make_timer();
        early_timer = make_timer();
        if (global_init() != CURLE_OK) return;
        multi.reset(curl_multi_init());
        if (!multi) return;
        curl_multi_setopt(multi.get(), CURLMOPT_SOCKETFUNCTION, &Impl::on_socket);
        curl_multi_setopt(multi.get(), CURLMOPT_SOCKETDATA, this);
        curl_multi_setopt(multi.get(), CURLMOPT_TIMERFUNCTION, &Impl::on_curl_timer);
        curl_multi_setopt(multi.get(), CURLMOPT_TIMERDATA, this);
    }

    ~Impl() {
        if (multi) {
            for (auto& [id, t] : transfers)
                if (t->in_multi) curl_multi_remove_handle(multi.get(), t->easy.get());
            // From here on curl must not call back into what we are taking
            // apart: its cleanup closes the sockets of idle connections.
            curl_multi_setopt(multi.get(), CURLMOPT_SOCKETFUNCTION, static_cast<curl_socket_callback>(nullptr));
            curl_multi_setopt(multi.get(), CURLMOPT_TIMERFUNCTION, static_cast<curl_multi_timer_callback>(nullptr));
        }
        transfers.clear();
        // Stop watching before curl closes the descriptors.
        for (auto& [fd, p] : polls) {
            uv_poll_stop(&p->handle);
            uv_handle_t* h = reinterpret_cast<uv_handle_t*>(&p->handle);
            close_owned(std::move(p), h);
        }
        polls.clear();
        multi.reset();
        close_timer(std::move(curl_timer));
        close_timer(std::move(early_timer));
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

    // --- curl's callbacks -------------------------------------------------

    static int on_socket(CURL*, curl_socket_t fd, int what, void* userp, void*) {
        auto* self = static_cast<Impl*>(userp);
        if (what == CURL_POLL_REMOVE) {
            self->unwatch(fd);
            return 0;
        }
        Poll* p = self->watch(fd);
        if (!p) return -1;
        int events = 0;
        if (what & CURL_POLL_IN) events |= UV_READABLE;
        if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
        return uv_poll_start(&p->handle, events, &Impl::on_poll) == 0 ? 0 : -1;
    }

    static int on_curl_timer(CURLM*, long timeout_ms, void* userp) {
        auto* self = static_cast<Impl*>(userp);
        uv_timer_t* t = &self->curl_timer->handle;
        if (timeout_ms < 0) return uv_timer_stop(t) == 0 ? 0 : -1;
        // A zero timeout asks for an immediate call; from the loop, not
        // from inside curl (which must not be re-entered).
        return uv_timer_start(t, &Impl::on_timeout, static_cast<std::uint64_t>(timeout_ms), 0) == 0 ? 0 : -1;
    }

    static std::size_t on_read(char* buf, std::size_t size, std::size_t n, void* userp) {
        auto* t = static_cast<Transfer*>(userp);
        long got = t->body.read(buf, size * n);
        if (got < 0) {
            t->body_errno = errno;
            return CURL_READFUNC_ABORT;
        }
        return static_cast<std::size_t>(got);
    }

    // curl rewinds the body when it must send it again (a connection that
    // closed before it could be reused).
    static int on_seek(void* userp, curl_off_t offset, int origin) {
        auto* t = static_cast<Transfer*>(userp);
        if (origin != SEEK_SET || offset != 0) return CURL_SEEKFUNC_CANTSEEK;
        t->body.rewind();
        return CURL_SEEKFUNC_OK;
    }

    static std::size_t on_write(char* data, std::size_t size, std::size_t n, void* userp) {
        auto* t = static_cast<Transfer*>(userp);
        std::size_t len = size * n;
        if (t->answer.size() + len > t->max_answer) {
            t->too_large = true;
            return 0;  // curl stops with CURLE_WRITE_ERROR
        }
        t->answer.append(data, len);
        return len;
    }

    // --- libuv's callbacks ------------------------------------------------

    static void on_poll(uv_poll_t* handle, int status, int events) {
        auto* p = static_cast<Poll*>(handle->data);
        int flags = 0;
        if (status < 0) {
            flags = CURL_CSELECT_ERR;
        } else {
            if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
            if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
        }
        // `p` may be closed by curl during the call: read it first.
        Impl* self = p->impl;
        self->socket_action(p->fd, flags);
    }

    static void on_timeout(uv_timer_t* handle) {
        auto* t = static_cast<Timer*>(handle->data);
        t->impl->socket_action(CURL_SOCKET_TIMEOUT, 0);
    }

    static void on_early(uv_timer_t* handle) {
        auto* t = static_cast<Timer*>(handle->data);
        Impl* self = t->impl;
        std::vector<ScanId> ids;
        ids.swap(self->early);
        self->deliver(ids);
    }

    // --- the work -----------------------------------------------------------

    Poll* watch(curl_socket_t fd) {
        auto it = polls.find(fd);
        if (it != polls.end()) return it->second.get();
        auto p = std::make_unique<Poll>();
        if (uv_poll_init_socket(loop, &p->handle, fd) != 0) return nullptr;
        p->fd = fd;
        p->impl = this;
        p->handle.data = p.get();
        return polls.emplace(fd, std::move(p)).first->second.get();
    }

    void unwatch(curl_socket_t fd) {
        auto it = polls.find(fd);
        if (it == polls.end()) return;
        std::unique_ptr<Poll> p = std::move(it->second);
        polls.erase(it);
        uv_poll_stop(&p->handle);
        uv_handle_t* h = reinterpret_cast<uv_handle_t*>(&p->handle);
        close_owned(std::move(p), h);
    }

    void socket_action(curl_socket_t fd, int flags) {
        int running = 0;
        curl_multi_socket_action(multi.get(), fd, flags, &running);
        collect();
    }

    // Takes the finished transfers out of curl, then reports them; a `done`
    // may cancel another finished one, which is then not reported.
    void collect() {
        std::vector<ScanId> finished;
        int left = 0;
        while (CURLMsg* msg = curl_multi_info_read(multi.get(), &left)) {
            if (msg->msg != CURLMSG_DONE) continue;
            char* priv = nullptr;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            auto* t = reinterpret_cast<Transfer*>(priv);
            CURLcode result = msg->data.result;
            curl_multi_remove_handle(multi.get(), msg->easy_handle);
            if (!t) continue;
            t->in_multi = false;
            t->result = result;
            finished.push_back(t->id);
        }
        deliver(finished);
    }

    void deliver(const std::vector<ScanId>& ids) {
        for (ScanId id : ids) {
            auto it = transfers.find(id);
            if (it == transfers.end()) continue;  // cancelled meanwhile
            std::unique_ptr<Transfer> t = std::move(it->second);
            transfers.erase(it);
            ScanResult result = outcome(*t);
            Done done = std::move(t->done);
            t.reset();
            done(std::move(result));
        }
    }

    ScanResult outcome(Transfer& t) {
        using Kind = Failure::Kind;
        if (t.failure) return *t.failure;
        CURL* e = t.easy.get();
        std::string said = t.error[0] ? std::string(t.error) : std::string(curl_easy_strerror(t.result));
        switch (t.result) {
        case CURLE_OK: break;
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY: return Failure{Kind::Connect, said, 0};
        case CURLE_OPERATION_TIMEDOUT: {
            curl_off_t connected = 0;
            curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &connected);
            return Failure{connected == 0 ? Kind::Connect : Kind::Timeout, said, 0};
        }
        case CURLE_WRITE_ERROR:
            if (t.too_large)
                return Failure{Kind::BadReply, "reply larger than " + std::to_string(t.max_answer) + " bytes", 0};
            return Failure{Kind::Transfer, said, 0};
        default:
            if (t.body_errno != 0)
                return Failure{Kind::Transfer, std::string("cannot read the message: ") + std::strerror(t.body_errno),
                               0};
            return Failure{Kind::Transfer, said, 0};
        }
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200) {
            std::string text = "HTTP status " + std::to_string(status);
            if (!t.answer.empty()) text += ": " + quote(t.answer);
            return Failure{Kind::HttpStatus, text, status};
        }
        DecodeResult decoded = decode_reply(t.answer);
        if (auto* err = std::get_if<DecodeError>(&decoded)) {
            std::string text = err->message;
            if (err->offset != 0) text += " (at byte " + std::to_string(err->offset) + ")";
            return Failure{Kind::BadReply, text, 0};
        }
        return std::move(std::get<Reply>(decoded));
    }

    // Sets up the easy handle; the first thing that fails, as a text.
    std::optional<std::string> prepare(Transfer& t, const Envelope& env) {
        t.easy.reset(curl_easy_init());
        if (!t.easy) return "cannot make a curl handle";
        CURL* e = t.easy.get();
        for (const auto& h : request_headers(env))
            if (!append_header(t, h)) return "out of memory for the request's headers";
        // rspamd does not answer "100 Continue": without this curl waits a
        // second before sending a large message.
        if (!append_header(t, "Expect:")) return "out of memory for the request's headers";

        CURLcode rc = CURLE_OK;
        auto set = [&](CURLoption opt, auto value) {
            if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, value);
        };
        set(CURLOPT_URL, endpoint.c_str());
        if (!options.unix_socket.empty()) set(CURLOPT_UNIX_SOCKET_PATH, options.unix_socket.c_str());
        set(CURLOPT_PROXY, "");  // none, whatever the environment says
        set(CURLOPT_PROTOCOLS_STR, "http,https");
        set(CURLOPT_FOLLOWLOCATION, 0L);
        set(CURLOPT_NOSIGNAL, 1L);
        set(CURLOPT_TIMEOUT_MS, static_cast<long>(options.timeout.count()));
        set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout.count()));
        set(CURLOPT_USERAGENT, "postern filter-rspamd");
        set(CURLOPT_HTTPHEADER, t.headers.get());
        set(CURLOPT_POST, 1L);
        set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t.body.size()));
        set(CURLOPT_READFUNCTION, &Impl::on_read);
        set(CURLOPT_READDATA, &t);
        set(CURLOPT_SEEKFUNCTION, &Impl::on_seek);
        set(CURLOPT_SEEKDATA, &t);
        set(CURLOPT_WRITEFUNCTION, &Impl::on_write);
        set(CURLOPT_WRITEDATA, &t);
        set(CURLOPT_ERRORBUFFER, t.error);
        set(CURLOPT_PRIVATE, static_cast<void*>(&t));
        if (rc != CURLE_OK) return std::string("cannot set up the request: ") + curl_easy_strerror(rc);
        return std::nullopt;
    }

    static bool append_header(Transfer& t, const std::string& line) {
        curl_slist* head = curl_slist_append(t.headers.get(), line.c_str());
        if (!head) return false;
        if (!t.headers) t.headers.reset(head);
        return true;
    }

    ScanId scan(ScanRequest request, Done done) {
        auto t = std::make_unique<Transfer>();
        t->id = next_id++;
        t->body = std::move(request.body);
        t->done = std::move(done);
        t->max_answer = options.max_reply;
        std::optional<std::string> problem;
        if (!multi) problem = "libcurl could not be initialised";
        if (!problem) problem = prepare(*t, request.envelope);
        if (!problem) {
            CURLMcode mc = curl_multi_add_handle(multi.get(), t->easy.get());
            if (mc == CURLM_OK) t->in_multi = true;
            else problem = std::string("cannot start the request: ") + curl_multi_strerror(mc);
        }
        ScanId id = t->id;
        if (problem) {
            t->failure = Failure{Failure::Kind::Transfer, *problem, 0};
            early.push_back(id);
            uv_timer_start(&early_timer->handle, &Impl::on_early, 0, 0);
        }
        transfers.emplace(id, std::move(t));
        return id;
    }

    bool cancel(ScanId id) {
        auto it = transfers.find(id);
        if (it == transfers.end()) return false;
        if (it->second->in_multi) curl_multi_remove_handle(multi.get(), it->second->easy.get());
        transfers.erase(it);
        return true;
    }
};

RspamdClient::RspamdClient(uv_loop_t* loop, Options options)
    : impl_(std::make_unique<Impl>(loop, std::move(options))) {}

RspamdClient::~RspamdClient() = default;

RspamdClient::ScanId RspamdClient::scan(ScanRequest request, Done done) {
    return impl_->scan(std::move(request), std::move(done));
}

bool RspamdClient::cancel(ScanId id) { return impl_->cancel(id); }

std::size_t RspamdClient::running() const { return impl_->transfers.size(); }

const RspamdClient::Options& RspamdClient::options() const { return impl_->options; }

}  // namespace postern::rspamd
