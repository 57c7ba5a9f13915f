// Netstring frames; see frame.hpp.
#include "util/frame.hpp"

#include <string_view>

namespace postern::util {
namespace {

std::string netstring(std::string_view s) { return std::to_string(s.size()) + ":" + std::string(s) + ","; }

// Parses one netstring at the front of `in`: 1 done, 0 need more, -1 malformed.
int take_netstring(std::string_view& in, std::string_view* out, size_t max) {
    size_t len = 0, i = 0;
    while (i < in.size() && in[i] >= '0' && in[i] <= '9') {
        if (i >= 8) return -1;
        len = len * 10 + static_cast<size_t>(in[i] - '0');
        ++i;
    }
    if (i == in.size()) return 0;
    if (i == 0 || in[i] != ':' || len > max) return -1;
    if (in.size() < i + 1 + len + 1) return 0;
    if (in[i + 1 + len] != ',') return -1;
    *out = in.substr(i + 1, len);
    in.remove_prefix(i + 1 + len + 1);
    return 1;
}

}  // namespace

std::string encode_frame(const std::vector<std::string>& fields) {
    std::string payload;
    for (const auto& f : fields) payload += netstring(f);
    return netstring(payload);
}

bool decode_frame(std::string& buffer, std::vector<std::string>* fields, bool* bad) {
    *bad = false;
    std::string_view in(buffer);
    std::string_view payload;
    int r = take_netstring(in, &payload, kMaxFrame);
    if (r <= 0) {
        *bad = r < 0;
        return false;
    }
    fields->clear();
    while (!payload.empty()) {
        std::string_view f;
        if (take_netstring(payload, &f, kMaxFrame) != 1) {
            *bad = true;
            return false;
        }
        fields->emplace_back(f);
    }
    buffer.erase(0, buffer.size() - in.size());
    return true;
}

}  // namespace postern::util
