// queue/ids.cpp — fresh message and envelope ids from the OS random source.
//
// A message id is 32 random bits as 8 lowercase hex digits; an envelope id is
// its message id followed by 32 more random bits, so the spool folder of an
// envelope is known from its id alone. Ids are unpredictable (getrandom(2))
// so that a client cannot guess the name of another client's spool file.
#include <sys/random.h>

#include <cerrno>
#include <cstdint>
#include <random>

#include "queue/envelope.hpp"

namespace postern::queue {
namespace {

std::uint32_t random32() {
    std::uint32_t value = 0;
    for (int attempt = 0; attempt < 8; ++attempt) {
        ssize_t n = ::getrandom(&value, sizeof value, 0);
        if (n == static_cast<ssize_t>(sizeof value)) return value;
        if (n < 0 && errno != EINTR) break;  // ENOSYS on very old kernels
    }
    // std::random_device reads the same kernel source by another path.
    std::random_device device;
    return device();
}

std::string hex8(std::uint32_t value) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out(8, '0');
    for (int i = 7; i >= 0; --i, value >>= 4) out[i] = kHex[value & 0xf];
    return out;
}

}  // namespace

std::string new_message_id() { return hex8(random32()); }

std::string new_envelope_id(std::string_view msgid) {
    std::string id(msgid);
    id += hex8(random32());
    return id;
}

}  // namespace postern::queue
