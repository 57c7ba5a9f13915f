// postern/support/address.hpp — the two halves of a mail address, split at
// its last '@' (a quoted local part may hold another). An address without
// '@' (a local user name) is all local part. Part of the plugin SDK:
// header-only, C++17, pure functions.
#pragma once

#include <string_view>

namespace postern::util {

constexpr std::string_view local_part(std::string_view address) {
    std::size_t at = address.rfind('@');
    return at == std::string_view::npos ? address : address.substr(0, at);
}

constexpr std::string_view domain_part(std::string_view address) {
    std::size_t at = address.rfind('@');
    return at == std::string_view::npos ? std::string_view{} : address.substr(at + 1);
}

}  // namespace postern::util
