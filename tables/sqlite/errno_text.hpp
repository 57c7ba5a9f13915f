// tables/sqlite/errno_text.hpp — strerror's text without strerror's shared
// buffer: lookups and reloads run on several threads.
#pragma once

#include <array>
#include <cstring>
#include <string>

namespace postern::sqlite {

inline std::string errno_text(int e) {
    std::array<char, 256> buf{};
    return strerror_r(e, buf.data(), buf.size());  // GNU: g++ defines _GNU_SOURCE
}

}  // namespace postern::sqlite
