// Fuzz target: the control socket's frames (control/protocol.cpp).
// posternd decodes requests from any local client that reaches the socket,
// and posternctl decodes whatever answers on it: neither may crash on any
// bytes, and whatever decodes must encode back to bytes that decode to the
// same value (and, the encoding being canonical, to the same bytes).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "control/protocol.hpp"

using namespace postern::control;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::string err;

    Request req;
    if (decode_request(in, &req, &err)) {
        std::string again = encode_request(req);
        Request round;
        if (again != in || !decode_request(again, &round, &err) || !(round == req)) __builtin_trap();
        (void)validate_request(req);
    } else if (err.empty()) {
        __builtin_trap();  // every refusal says why
    }

    err.clear();
    Reply reply;
    if (decode_reply(in, &reply, &err)) {
        std::string again = encode_reply(reply);
        Reply round;
        if (again != in || !decode_reply(again, &round, &err) || !(round == reply)) __builtin_trap();
    } else if (err.empty()) {
        __builtin_trap();
    }

    // The streaming check agrees with the whole-frame decoders.
    err.clear();
    FrameState st = scan_frame(in, kMaxReply, &err);
    if (st == FrameState::Incomplete && (decode_reply(in, &reply, &err) || decode_request(in, &req, &err)))
        __builtin_trap();
    return 0;
}
