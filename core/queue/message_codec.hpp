// How a message file is kept at rest (`queue compression`, `queue
// encryption`): the bytes of messages/<msgid>, written and read back.
//
// A plain message file is the message itself. A framed one starts with an
// 18-byte header,
//
//     MAGIC(8) VERSION(1) FLAGS(1) PLAIN_SIZE(8, little-endian)
//
// then the message, compressed with zstd if FLAGS has kCompressed, and, if
// FLAGS has kEncrypted, encrypted with AES-256-GCM: a fresh random 12-byte
// nonce after the header, the ciphertext, then the 16-byte tag, the header
// being the authenticated data (so neither the flags nor the size can be
// changed unseen). MAGIC starts with a NUL byte, which no message begins
// with; a plain message that does is written framed with no flag, so that a
// file is framed exactly when it starts with MAGIC, whatever a client sent,
// and files written before either option was switched on or off stay
// readable.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "util/fd.hpp"

namespace postern::queue {

struct AtRest {
    bool compress = false;
    std::optional<std::array<unsigned char, 32>> key;  // AES-256-GCM
    // Encryption switched off with encrypted mail still queued: the key
    // opens what was written with it, and what is written now is plain.
    bool key_reads_only = false;

    bool encrypts() const { return key && !key_reads_only; }
};

inline constexpr std::string_view kFrameMagic{"\0postern", 8};
inline constexpr std::size_t kFrameHeader = 18;
inline constexpr unsigned char kCompressed = 1, kEncrypted = 2;
// What a framed file may claim to hold: beyond it, the file is refused
// before anything is decompressed (a small file that inflates without end).
inline constexpr std::uint64_t kMaxPlainSize = std::uint64_t{4} << 30;

// Writes one message file to `fd` (at its current offset). The message's
// size must be known up front: the header carries it.
class MessageWriter {
public:
    MessageWriter(int fd, const AtRest& how, std::uint64_t plain_size);
    ~MessageWriter();
    MessageWriter(const MessageWriter&) = delete;
    MessageWriter& operator=(const MessageWriter&) = delete;

    // False with `error()` set on a write or library failure; every later
    // call then fails too.
    bool write(std::string_view bytes);
    bool copy_from(int fd);  // the rest of `fd`, from its start
    // Ends the file; false when the bytes given were not `plain_size` or a
    // write failed.
    bool finish();
    std::uint64_t file_size() const { return written_; }  // bytes in the file
    const std::string& error() const { return error_; }

private:
    struct Impl;
    bool start();
    bool emit(std::string_view bytes);  // after compression, before encryption
    bool out(const unsigned char* p, std::size_t n);
    bool fail(std::string why);

    int fd_;
    AtRest how_;
    std::uint64_t plain_size_, given_ = 0, written_ = 0;
    std::string head_;  // the first bytes, until it is known whether to frame
    bool started_ = false, framed_ = false, failed_ = false;
    std::string error_;
    std::unique_ptr<Impl> impl_;
};

// The message's own bytes, from the start: `fd` itself, rewound, for a
// plain file; for a framed one, a sealed memfd holding what was decrypted
// and decompressed, once the tag and the size were checked. An invalid Fd
// with `why` for a damaged or cut file, a wrong or missing key.
util::Fd open_plain(util::Fd fd, const AtRest& how, std::string* why);

// A small record sealed whole (the journal's envelope records): a fresh
// random 12-byte nonce, the AES-256-GCM ciphertext of `plain`, the 16-byte
// tag; `aad` is authenticated with it, not stored.
std::string seal(const std::array<unsigned char, 32>& key, std::string_view aad, std::string_view plain);
// What seal() sealed; false with `why` when the tag does not match (another
// key, another `aad`, a changed byte) or it is cut short.
bool unseal(const std::array<unsigned char, 32>& key, std::string_view aad, std::string_view sealed, std::string& plain,
            std::string* why);

}  // namespace postern::queue
