// The DATA phase encoder: a stored LF-ended message as SMTP DATA text
// (RFC 5321 4.5.2), the inverse of DataReader. Used by the relay client and
// by the tests that check DataReader round trips.

#include "smtp/data_reader.hpp"

namespace postern::smtp {

std::string encode_data(std::string_view message) {
    std::string out;
    // Each line grows by one byte (the CR), a few by a stuffing dot.
    out.reserve(message.size() + message.size() / 32 + 8);
    while (!message.empty()) {
        std::size_t lf = message.find('\n');
        std::string_view line = message.substr(0, lf);
        if (line.starts_with('.')) out.push_back('.');  // a line "." must not end the data
        out.append(line);
        out.append("\r\n");
        message.remove_prefix(lf == std::string_view::npos ? message.size() : lf + 1);
    }
    out.append(".\r\n");
    return out;
}

}  // namespace postern::smtp
