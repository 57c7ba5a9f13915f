// The DATA phase decoder: SMTP text in, the stored message out.
//
// Fed the raw bytes that follow the 354 reply, in whatever pieces the network
// delivers them, it finds the end of the message, undoes dot-stuffing and
// stores lines with LF endings. Only <CRLF>.<CRLF> ends the message (also when
// the message is empty: the "." line right after the 354). A bare LF or a bare
// CR anywhere in the data never ends it: the decoder reads on to the real end
// and reports bare_newline(), and the session refuses the message. This closes
// SMTP smuggling (<LF>.<LF>, <LF>.<CRLF>, <CR>.<CR> ...), the choice Postfix 3.9
// makes with smtpd_forbid_bare_newline.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

// The reverse, encode_data, is the relay's: it lives in the plugin SDK.
#include "postern/support/smtp_data.hpp"

namespace postern::smtp {

class DataReader {
public:
    DataReader(std::size_t max_size, std::size_t max_line);

    // Consume bytes of `in` up to and including the end-of-data line; returns
    // how many were consumed (bytes after the end belong to the next command).
    std::size_t feed(std::string_view in);

    bool done() const { return done_; }
    // The message (LF line ends, unstuffed). Empty once too_big() is set.
    std::string& message() { return message_; }

    bool too_big() const { return too_big_; }            // over max_size
    bool bare_newline() const { return bare_newline_; }  // a bare CR or LF was seen
    // A line over max_line bytes as sent (stuffing dot counted, CRLF not;
    // a bare LF also ends a line for this count).
    bool line_too_long() const { return line_too_long_; }
    std::size_t size() const { return size_; }  // bytes of message counted, stuffing removed

private:
    // Where the scan stands between two feeds.
    enum class State {
        LineStart,  // just after a CRLF (and at the very start)
        Dot,        // a "." at the start of a line
        DotCR,      // ".\r" at the start of a line: the end if "\n" follows
        InLine,     // inside a line
        CR,         // a "\r" inside a line: CRLF or a bare CR, the next byte says
    };

    std::size_t in_line(std::string_view in);  // return the bytes used
    std::size_t partial_line(std::string_view in, const char* from);
    void store(std::string_view bytes);
    void store_line(const char* body, std::size_t n);
    void drop();
    void count_line(std::size_t n);
    void bare_cr();

    std::size_t max_size_, max_line_;
    std::string message_;
    bool done_ = false, too_big_ = false, bare_newline_ = false, line_too_long_ = false;
    std::size_t size_ = 0;
    State state_ = State::LineStart;
    std::size_t line_len_ = 0;  // bytes of the current line as sent, its CRLF excluded
};

}  // namespace postern::smtp
