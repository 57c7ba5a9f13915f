// tables/proc/protocol.cpp — see protocol.hpp.
#include "protocol.hpp"

#include <array>
#include <utility>

namespace postern::proctable {
namespace {

// Names as OpenSMTPD's table_service_name() writes them on the line protocol.
constexpr std::array<std::pair<std::string_view, uint32_t>, 13> kServices{{
    {"alias", 0x001u},
    {"domain", 0x002u},
    {"credentials", 0x004u},
    {"netaddr", 0x008u},
    {"userinfo", 0x010u},
    {"source", 0x020u},
    {"mailaddr", 0x040u},
    {"addrname", 0x080u},
    {"mailaddrmap", 0x100u},
    {"relayhost", 0x200u},
    {"string", 0x400u},
    {"regex", kServiceRegex},
    {"auth", kServiceAuth},
}};

}  // namespace

std::string_view service_name(uint32_t service) {
    for (const auto& [name, bit] : kServices)
        if (bit == service) return name;
    return {};
}

std::optional<uint32_t> service_from_name(std::string_view name) {
    for (const auto& [n, bit] : kServices)
        if (n == name) return bit;
    return std::nullopt;
}

bool is_match_service(uint32_t service) {
    switch (service) {
    case 0x002u:  // domain
    case 0x008u:  // netaddr
    case 0x040u:  // mailaddr
    case 0x400u:  // string
    case kServiceRegex:
    case kServiceAuth: return true;
    default: return false;
    }
}

}  // namespace postern::proctable
