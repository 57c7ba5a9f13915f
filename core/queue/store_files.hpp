// Small file-system helpers shared by the spool's files (queue/store*.cpp):
// plain POSIX calls relative to folder descriptors, each owned by util::Fd.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/fd.hpp"

namespace postern::queue::files {

std::string sys_error(std::string_view path, std::string_view call, int err);
std::string sys_error(std::string_view path, std::string_view call);  // with errno

bool is_lower_hex(std::string_view s, std::size_t len);
// The number a run of lowercase hex digits spells (the caller checked them).
std::uint64_t hex_value(std::string_view s);
std::string hex_text(std::uint64_t value, std::size_t digits);

util::Fd open_dir(int parent, const std::string& name);
bool fsync_fd(int fd);
// Names in a folder, without "." and "..". False with errno on failure.
bool list_dir(int dirfd, std::vector<std::string>& names);
// Deletes parent/name, a folder, with the files in it.
bool remove_folder(int parent, const std::string& name, std::string* error);
// Creates `path` as a folder (mode 0700) unless it exists; checks it is one.
bool make_folder(const std::string& path, std::string* error);
// A whole file of at most `limit` bytes. False with `err` (EFBIG: too big
// or not a regular file).
bool read_file(int dirfd, const std::string& name, std::size_t limit, std::string& out, int& err);
// The whole of `from` (read from its start) after what `to` holds.
bool copy_from(int from, int to);

}  // namespace postern::queue::files
