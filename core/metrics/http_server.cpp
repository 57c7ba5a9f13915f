// The /metrics endpoint on libmicrohttpd; see http_server.hpp.
#include "metrics/http_server.hpp"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <ctime>

namespace postern::metrics {
namespace {

MHD_Result reply(MHD_Connection* connection, unsigned status, const std::string& body, const char* type) {
    MHD_Response* r = MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()),
                                                      MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_Result ret = MHD_queue_response(connection, status, r);
    MHD_destroy_response(r);
    return ret;
}

MHD_Result handle(void* cls, MHD_Connection* connection, const char* url, const char* method, const char*, const char*,
                  size_t* upload_size, void**) {
    const auto* server = static_cast<const HttpServer*>(cls);
    if (*upload_size != 0) return MHD_NO;  // a body on a scrape: drop the connection
    if (std::strcmp(url, "/metrics") != 0) return reply(connection, MHD_HTTP_NOT_FOUND, "not found\n", "text/plain");
    if (std::strcmp(method, "GET") != 0 && std::strcmp(method, "HEAD") != 0)
        return reply(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only\n", "text/plain");
    return reply(connection, MHD_HTTP_OK, server->registry().render(std::time(nullptr)),
                 "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace

HttpServer::~HttpServer() {
    if (daemon_) MHD_stop_daemon(daemon_);
}

bool HttpServer::start(const std::string& address, unsigned port, std::string* error) {
    sockaddr_storage ss{};
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;  // errors: returned, not printed
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(static_cast<uint16_t>(port));
    } else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(static_cast<uint16_t>(port));
        flags |= MHD_USE_IPv6;
    } else {
        *error = "metrics: " + address + " is not an IP address";
        return false;
    }
    daemon_ = MHD_start_daemon(flags, static_cast<uint16_t>(port), nullptr, nullptr, &handle, this,
                               MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&ss), MHD_OPTION_CONNECTION_LIMIT, 16u,
                               MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!daemon_) {
        *error = "metrics: cannot listen on " + address + " port " + std::to_string(port) + ": " +
                 std::strerror(errno ? errno : EADDRINUSE);
        return false;
    }
    return true;
}

}  // namespace postern::metrics
