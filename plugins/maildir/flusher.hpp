// plugins/maildir/flusher.hpp — fsync for many files at once.
//
// A batch's messages are written first and flushed together: writeback of
// every file is started (sync_file_range), then their fsyncs run side by
// side on a few threads, so that the file system commits them in a few
// journal transactions instead of one per file (ext4 and XFS group the
// fsyncs that wait at the same time). The calling thread takes its share.
//
// The threads start on first use, after the agent has become the recipient
// (a thread never holds root's identity), and live as long as the plugin is
// loaded: a batch does not pay for starting them. Only fsync runs on them;
// the descriptors stay the caller's.
//
// Depends on: POSIX threads (std::thread), Linux's sync_file_range.
#pragma once

#include <cstddef>
#include <vector>

namespace postern::maildir_plugin {

// fsync(fds[i]) for every i, at once on up to kFlushThreads threads (the
// caller's among them); returns the errno of each, 0 for success.
std::vector<int> fsync_all(const std::vector<int>& fds);

inline constexpr std::size_t kFlushThreads = 4;

}  // namespace postern::maildir_plugin
