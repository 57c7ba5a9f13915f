// metrics/http_server.hpp — serves GET /metrics (the registry's text
// exposition) over HTTP with GNU libmicrohttpd, on a thread of its own.
//
// `metrics listen on ADDRESS port N` starts it in the unprivileged process,
// after the fork (a thread started before would not survive it). Only GET
// and HEAD of /metrics are answered; anything else is 404 or 405. The HTTP
// parsing is libmicrohttpd's, a library maintained for exactly that.
#pragma once

#include <memory>
#include <string>

#include "metrics/registry.hpp"

struct MHD_Daemon;

namespace postern::metrics {

class HttpServer {
public:
    explicit HttpServer(const Registry& registry) : registry_(registry) {}
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Listen on `address` (an IPv4 or IPv6 literal) and `port`; false with
    // the reason when it cannot.
    bool start(const std::string& address, unsigned port, std::string* error);
    const Registry& registry() const { return registry_; }

private:
    const Registry& registry_;
    MHD_Daemon* daemon_ = nullptr;
};

}  // namespace postern::metrics
