// util/frame.hpp — the one framing postern's processes use to talk to each
// other: a frame is a netstring of netstrings ("13:1:a,5:hello,,"), so a
// field may hold any bytes, and a reader knows where a frame ends without
// trusting its content.
//
// Two channels use it: the privileged parent and the unprivileged process
// (delivery/privileged.cpp), and a delivery agent reporting its results to
// the launcher (postern-local.cpp, delivery/launcher.cpp). In both, the
// reader may face a hostile writer (a compromised unprivileged process, an
// agent running as the recipient), so decoding is bounded and fuzzed
// (tests/fuzz/fuzz_frame.cpp). Pure: no I/O, no libuv.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace postern::util {

// The largest frame either side reads.
inline constexpr std::size_t kMaxFrame = std::size_t{1} << 20;

std::string encode_frame(const std::vector<std::string>& fields);

// Takes one complete frame off the front of `buffer`. Returns false when more
// bytes are needed; sets `bad` when the bytes can never form a frame.
bool decode_frame(std::string& buffer, std::vector<std::string>* fields, bool* bad);

}  // namespace postern::util
