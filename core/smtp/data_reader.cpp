// The DATA phase decoder (RFC 5321 4.1.1.4, 4.5.2): finds <CRLF>.<CRLF>,
// removes dot-stuffing and stores CRLF-ended lines as LF-ended ones.
//
// This is the hot path of every accepted message, so whole line bodies are
// found with memchr and appended as ranges; the byte-wise states only cover
// the few bytes around a line start and a CR split across two feeds.
//
// Bare line ends are stored as data and never end a line: a bare LF or CR is
// kept as the byte it is, the next byte is not a line start (so no dot is
// unstuffed after it and it cannot start an end-of-data line). The session
// refuses such a message anyway (bare_newline()); what matters is that no
// byte after a bare line end can be read as the end of the message.

#include "smtp/data_reader.hpp"

#include <cstring>

namespace postern::smtp {

DataReader::DataReader(std::size_t max_size, std::size_t max_line) : max_size_(max_size), max_line_(max_line) {}

std::size_t DataReader::feed(std::string_view in) {
    std::size_t i = 0;
    while (i < in.size() && !done_) {
        char c = in[i];
        switch (state_) {
        case State::LineStart:
            if (c == '.') {
                count_line(1);  // the stuffing dot was sent: it counts for the line
                state_ = State::Dot;
                ++i;
            } else {
                state_ = State::InLine;
            }
            break;
        case State::Dot:  // the dot is dropped whatever follows
            if (c == '\r') {
                state_ = State::DotCR;
                ++i;
            } else {
                state_ = State::InLine;
            }
            break;
        case State::DotCR:
            if (c == '\n') {
                done_ = true;
                ++i;
            } else {
                bare_cr();  // the CR after the dot; `c` is line data
                state_ = State::InLine;
            }
            break;
        case State::CR:
            if (c == '\n') {
                store("\n");
                line_len_ = 0;
                state_ = State::LineStart;
                ++i;
            } else {
                bare_cr();  // `c` (even another CR) is read again as line data
                state_ = State::InLine;
            }
            break;
        case State::InLine: i += in_line(in.substr(i)); break;
        }
    }
    return i;
}

// Reads line data: whole lines in a row while no line starts with a dot,
// then a partial line up to the end of `in` (holding back a final CR, which
// may be the start of a CRLF). Returns the bytes used.
std::size_t DataReader::in_line(std::string_view in) {
    const char* p = in.data();
    const char* const end = p + in.size();
    for (;;) {
        const auto* lf = static_cast<const char*>(std::memchr(p, '\n', std::size_t(end - p)));
        if (!lf) return partial_line(in, p);
        bool crlf = lf > p && lf[-1] == '\r';
        std::size_t body = std::size_t(lf - p) - (crlf ? 1 : 0);
        if (std::memchr(p, '\r', body)) bare_newline_ = true;
        count_line(body);
        store_line(p, body);
        line_len_ = 0;  // a bare LF also ends a line for the length limit
        p = lf + 1;
        if (!crlf) {
            bare_newline_ = true;  // stay in the line: what follows is no line start
            continue;
        }
        if (p == end || *p == '.') {
            state_ = State::LineStart;
            return std::size_t(p - in.data());
        }
    }
}

// The rest of `in` from `p` holds no LF: store it as the start of a line.
std::size_t DataReader::partial_line(std::string_view in, const char* p) {
    std::size_t body = in.size() - std::size_t(p - in.data());
    if (body > 0 && p[body - 1] == '\r') {
        --body;
        state_ = State::CR;
    }
    if (std::memchr(p, '\r', body)) bare_newline_ = true;
    count_line(body);
    store(std::string_view(p, body));
    return in.size();
}

// `n` bytes of line body at `p`, followed in the input by its CR or LF.
void DataReader::store_line(const char* p, std::size_t n) {
    size_ += n + 1;
    if (too_big_) return;
    if (size_ > max_size_) {
        drop();
        return;
    }
    message_.append(p, n + 1);  // one copy with the line end, which becomes "\n"
    message_.back() = '\n';
}

void DataReader::store(std::string_view bytes) {
    size_ += bytes.size();
    if (too_big_) return;
    if (size_ > max_size_) {
        drop();
        return;
    }
    message_.append(bytes);
}

void DataReader::drop() {
    too_big_ = true;
    std::string().swap(message_);  // give the memory back now, not after the dot
}

void DataReader::count_line(std::size_t n) {
    line_len_ += n;
    if (line_len_ > max_line_) line_too_long_ = true;
}

// A CR not followed by LF: kept as data.
void DataReader::bare_cr() {
    bare_newline_ = true;
    count_line(1);
    store("\r");
}

}  // namespace postern::smtp
