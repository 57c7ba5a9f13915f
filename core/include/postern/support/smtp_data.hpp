// postern/support/smtp_data.hpp — a message as SMTP or LMTP DATA text
// (RFC 5321 4.5.2): what the delivery agent hands a plugin (LF line ends, no
// dot-stuffing, see postern/delivery.h) turned into what goes on the wire.
// The inverse of the daemon's DataReader, which tests the round trip.
// Header-only; C++17.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace postern::smtp {

// An LF-ended stored message as DATA text: CRLF line ends, dot-stuffed, a
// final CRLF added if missing, then ".\r\n".
inline std::string encode_data(std::string_view message) {
    std::string out;
    // Each line grows by one byte (the CR), a few by a stuffing dot.
    out.reserve(message.size() + message.size() / 32 + 8);
    while (!message.empty()) {
        std::size_t lf = message.find('\n');
        std::string_view line = message.substr(0, lf);
        if (!line.empty() && line.front() == '.') out.push_back('.');  // a line "." must not end the data
        out.append(line);
        out.append("\r\n");
        message.remove_prefix(lf == std::string_view::npos ? message.size() : lf + 1);
    }
    out.append(".\r\n");
    return out;
}

}  // namespace postern::smtp
