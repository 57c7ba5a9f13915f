// Fuzz target: the privileged parent's request framing (delivery/privileged.cpp).
// The root parent reads these frames from the unprivileged process, so a
// compromised child must not be able to crash or confuse it with any bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "delivery/privileged.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string buffer(reinterpret_cast<const char*>(data), size);
    std::vector<std::string> fields;
    bool bad = false;
    size_t frames = 0;
    while (frames < 1000 && postern::delivery::decode_frame(buffer, &fields, &bad)) {
        // Whatever decodes must encode back to a frame that decodes the same.
        std::string again = postern::delivery::encode_frame(fields);
        std::vector<std::string> round;
        bool bad2 = false;
        if (!postern::delivery::decode_frame(again, &round, &bad2) || round != fields || !again.empty())
            __builtin_trap();
        ++frames;
    }
    return 0;
}
