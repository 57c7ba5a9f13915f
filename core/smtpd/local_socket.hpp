// Where the local enqueue socket (`listen on socket`) lives: in the control
// socket's folder, under a fixed name, so that the daemon and
// postern-sendmail(8) find it from the one setting they already share
// (`control socket`, default /run/postern/control.sock). Header-only:
// postern-sendmail includes it without linking the SMTP server.
#pragma once

#include <string>
#include <string_view>

namespace postern::smtpd {

inline constexpr std::string_view kLocalSocketName = "submit.sock";

inline std::string local_socket_path(std::string_view control_socket) {
    size_t slash = control_socket.rfind('/');
    std::string dir = slash == std::string_view::npos ? std::string(".") : std::string(control_socket.substr(0, slash));
    if (dir.empty()) dir = "/";  // a control socket right under /
    return (dir == "/" ? dir : dir + "/") + std::string(kLocalSocketName);
}

}  // namespace postern::smtpd
