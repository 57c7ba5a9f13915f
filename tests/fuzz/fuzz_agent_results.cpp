// Fuzz target: an agent's results as the launcher reads them, batch by batch
// (delivery/agent_results.cpp). The agent runs as the recipient and, when it
// lives on, speaks on its channel for many batches: no bytes may crash the
// reader, give a delivery two results or one no check would pass. The first
// byte is the batch's size (1..32), the rest what the agent sent.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "delivery/agent_results.hpp"
#include "delivery/result.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const size_t n = 1 + data[0] % 32;
    std::string in(reinterpret_cast<const char*>(data + 1), size - 1);
    postern::delivery::BatchResults results(n);
    // Fed in two pieces, as packets may come.
    std::string rest = in.substr(in.size() / 2);
    in.resize(in.size() / 2);
    bool ok = results.take(in);
    if (ok) {
        in += rest;
        ok = results.take(in);
    }
    // A placeholder no agent can send (a result's text is one line).
    const std::string none = "\n";
    std::vector<postern::delivery::Result> out = results.finish(none);
    if (out.size() != n) __builtin_trap();
    size_t missing = 0;
    for (const auto& r : out) {
        if (r.text == none) ++missing;
        else if (!postern::delivery::check_result(r).empty()) __builtin_trap();
    }
    if (results.complete() != (missing == 0)) __builtin_trap();
    return 0;
}
