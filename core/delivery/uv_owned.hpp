// delivery/uv_owned.hpp — UvOwned<T>, the owner of one libuv handle.
//
// libuv still touches a handle after uv_close, until its close callback
// runs on the loop, so the handle cannot live inside an object that goes
// away at once. UvOwned keeps it on the heap and lets libuv free it in that
// callback; the owner may be destroyed right after closing it. Its data
// pointer is cleared on close: a callback already queued finds nobody
// (callbacks check data before using it).
#pragma once

#include <uv.h>

#include <memory>
#include <utility>

namespace postern::delivery {

template <class T>
class UvOwned {
public:
    UvOwned() = default;
    ~UvOwned() { close(); }
    UvOwned(const UvOwned&) = delete;
    UvOwned& operator=(const UvOwned&) = delete;

    // Makes a handle and initialises it with init(T*), which returns 0 or
    // a libuv error. A handle init failed on is freed unless `always_open`
    // (uv_spawn initialises the process handle even when it fails: it must
    // be closed all the same). `data` goes into the handle before init.
    template <class Init>
    int open(void* data, Init&& init, bool always_open = false) {
        close();
        auto fresh = std::make_unique<T>();
        fresh->data = data;
        int rc = init(fresh.get());
        if (rc == 0 || always_open) handle_ = fresh.release();  // freed by close()'s callback
        return rc;
    }

    T* get() const { return handle_; }
    explicit operator bool() const { return handle_ != nullptr; }

    void close() {
        if (!handle_) return;
        auto* h = reinterpret_cast<uv_handle_t*>(std::exchange(handle_, nullptr));
        h->data = nullptr;
        uv_close(h, [](uv_handle_t* closed) { std::unique_ptr<T> owned(reinterpret_cast<T*>(closed)); });
    }

private:
    T* handle_ = nullptr;
};

}  // namespace postern::delivery
