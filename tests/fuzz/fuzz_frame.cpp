// Fuzz target: the frames postern's processes exchange (util/frame.cpp), and
// the results in them (delivery/result.cpp). The root parent reads frames
// from the unprivileged process, and the launcher reads an agent's results,
// which runs as the recipient: neither writer may crash or confuse the
// reader with any bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "delivery/result.hpp"
#include "util/frame.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string buffer(reinterpret_cast<const char*>(data), size);
    std::vector<std::string> fields;
    bool bad = false;
    size_t frames = 0;
    while (frames < 1000 && postern::util::decode_frame(buffer, &fields, &bad)) {
        // Whatever decodes must encode back to a frame that decodes the same.
        std::string again = postern::util::encode_frame(fields);
        std::vector<std::string> round;
        bool bad2 = false;
        if (!postern::util::decode_frame(again, &round, &bad2) || round != fields || !again.empty()) __builtin_trap();
        // An agent's result (index, then the fields): what is accepted passes
        // the checks again when the privileged parent sends it on.
        postern::delivery::Result r;
        std::string why;
        if (fields.size() == 1 + postern::delivery::kResultFields &&
            postern::delivery::parse_result(&fields[1], &r, &why) && !postern::delivery::check_result(r).empty())
            __builtin_trap();
        ++frames;
    }
    return 0;
}
