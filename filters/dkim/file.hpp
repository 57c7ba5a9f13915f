// dkim/file.hpp — reads the few small files the DKIM core reads (key files,
// the key table): whole, bounded, with errno's text when it cannot.
//
// Depends on: POSIX open/read.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace postern::dkim {

// Appends the file's bytes to `out`, at most `limit` + 1 of them (so the
// caller sees the file was larger). `out` is reserved to that size first,
// so that the bytes are never moved and no copy of a private key is left
// behind in freed memory; the caller wipes `out` itself. Returns nullopt, or
// strerror's text ("No such file or directory").
std::optional<std::string> read_file(const std::string& path, std::string& out, std::size_t limit);

}  // namespace postern::dkim
