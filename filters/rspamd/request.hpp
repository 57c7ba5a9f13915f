// filters/rspamd/request.hpp — what filter-rspamd sends to rspamd: the
// envelope as HTTP headers of POST /checkv2, and the message as its body.
//
// The headers are rspamd's protocol (rspamd.com/doc/developers/protocol.html):
// From (the envelope sender, "<>" for the null sender), one Rcpt per
// recipient, IP (the client's address, without port or brackets), Hostname
// (its reverse DNS name, when it has one), Helo, User (the authenticated
// user), Queue-Id, MTA-Name (our host name, which rspamd writes into
// Authentication-Results) and Settings-ID when configured. No "Pass: all":
// rspamd may then stop early on a pre-result (GTUBE, a ratelimit), which is
// what we want. Empty fields are left out. Control bytes are dropped from
// values, so nothing from the session can start a header of its own.
//
// rspamd needs the whole message before it answers, so the program holds it:
// MessageBuffer takes it as it arrives (chunks or lines) and keeps it in
// memory until it grows past a threshold, then in an unlinked temporary file.
// A BodyReader reads it back from the start, independently of any other
// reader: one for the HTTP request, one for writing the message back out.
//
// Depends on: postern/support/fd.hpp (the SDK's Fd).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "postern/support/fd.hpp"

namespace postern::rspamd {

struct Envelope {
    std::string mail_from;  // without <>; "" for the null sender
    std::vector<std::string> rcpts;
    std::string ip;        // "192.0.2.1", "2001:db8::1" (see client_ip)
    std::string hostname;  // the client's reverse DNS name; "" or "<unknown>" if none
    std::string helo;
    std::string user;      // "" unless the client authenticated
    std::string queue_id;  // the transaction's id, for rspamd's log
    std::string mta_name;  // our own host name
    std::string settings_id;
};

// "Name: value" lines, in the order sent.
std::vector<std::string> request_headers(const Envelope& envelope);

// The address rspamd wants from the filter protocol's src field
// ("192.0.2.1:25", "[2001:db8::1]:25"); "127.0.0.1" for the local socket
// ("unix:..."), as the enqueuer on this host is local; nullopt for anything
// else.
std::optional<std::string> client_ip(std::string_view src);

// The message bytes, in memory or in a file, shared by the readers.
struct BodyStorage;

class BodyReader {
public:
    BodyReader() = default;  // an empty body
    explicit BodyReader(std::shared_ptr<const BodyStorage> storage);

    std::uint64_t size() const { return size_; }
    std::uint64_t offset() const { return offset_; }
    // Up to `n` bytes into `out`: how many (0 at the end), or -1 with errno
    // set when the file cannot be read. A file is read with pread, on the
    // calling thread: it was written moments ago by this process and is in
    // the page cache, so this copies memory as a read from memory does.
    long read(char* out, std::size_t n);
    void rewind() { offset_ = 0; }

private:
    std::shared_ptr<const BodyStorage> storage_;
    std::uint64_t size_ = 0;  // the size when this reader was made
    std::uint64_t offset_ = 0;
};

class MessageBuffer {
public:
    struct Options {
        // Past this many bytes the message moves to a file.
        std::size_t spill_threshold = 1024 * 1024;
        std::string temp_dir = "/tmp";
    };

    MessageBuffer();
    explicit MessageBuffer(Options options);

    // Appends bytes; on failure (the file cannot be made or written) an
    // error text, and the buffer keeps what it had.
    std::optional<std::string> append(std::string_view bytes);
    // Appends one line of the message and "\r\n".
    std::optional<std::string> append_line(std::string_view line);

    std::uint64_t size() const;
    bool in_file() const;
    // A reader from the start, over what the buffer holds now.
    BodyReader reader() const;

private:
    Options options_;
    std::shared_ptr<BodyStorage> storage_;

    std::optional<std::string> spill();
};

}  // namespace postern::rspamd
