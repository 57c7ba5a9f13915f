// Fuzz target: the envelope file format (core/queue/envelope.cpp).
// Whatever decode() accepts must survive a round trip: encode(decode(x))
// decodes again to the very same envelope and re-encodes to the same text.
// A refusal must say why.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "queue/envelope.hpp"

using namespace postern::queue;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

bool same(const Envelope& a, const Envelope& b) {
    return a.id == b.id && a.msgid == b.msgid && a.action == b.action && a.sender == b.sender && a.rcpt == b.rcpt &&
           a.dest == b.dest && a.user == b.user && a.helo == b.helo && a.client == b.client &&
           a.hostname == b.hostname && a.tag == b.tag && a.ctime == b.ctime && a.expire == b.expire &&
           a.last_try == b.last_try && a.next_try == b.next_try && a.retry == b.retry && a.errorline == b.errorline;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    std::string error;
    auto first = decode(input, &error);
    if (!first) {
        check(!error.empty());
        check(error.find('\n') == std::string::npos);  // errors quote input escaped
        return 0;
    }
    check(first->id.size() == 16 && first->msgid.size() == 8 && first->id.starts_with(first->msgid));
    std::string text = encode(*first);
    std::string error2;
    auto second = decode(text, &error2);
    check(second.has_value());
    check(same(*first, *second));
    check(encode(*second) == text);
    return 0;
}
