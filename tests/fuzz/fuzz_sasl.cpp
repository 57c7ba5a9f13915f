// Fuzz target: AUTH exchanges (core/auth/sasl.cpp). The input is split into
// lines: the first is the AUTH command's arguments, each other one a client
// response. Every step must be well formed, and base64 must round-trip.

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "auth/sasl.hpp"

using namespace postern::auth;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

// What any step must look like, whatever the input.
void check_step(const Step& s) {
    switch (s.kind) {
    case Step::Kind::Challenge: check(s.code == 334 && s.user.empty() && s.password.empty()); break;
    case Step::Kind::Done:
        check(!s.user.empty() && !s.password.empty());
        check(s.user.size() <= kMaxField && s.password.size() <= kMaxField);
        check(s.user.find_first_of(std::string_view("\0\r\n", 3)) == std::string::npos);
        check(s.password.find_first_of(std::string_view("\0\r\n", 3)) == std::string::npos);
        break;
    case Step::Kind::Error:
    case Step::Kind::Cancelled:
        check(s.code >= 500 && s.code <= 504 && s.text.size() > 6 && s.text[1] == '.');
        check(s.user.empty() && s.password.empty());
        break;
    }
}

void check_base64(std::string_view text) {
    auto decoded = base64_decode(text);
    if (decoded) check(base64_encode(*decoded) == text);  // strict: one text per byte string
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    Exchange exchange;
    bool first = true;
    // Bounded: at most one step per line, at most 64 lines.
    for (int lines = 0; lines < 64 && !input.empty(); ++lines) {
        auto nl = input.find('\n');
        std::string_view line = input.substr(0, nl);
        input = nl == std::string_view::npos ? std::string_view{} : input.substr(nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        check_base64(line);
        Step step = first ? exchange.start(line) : exchange.next(line);
        first = false;
        check_step(step);
        check(exchange.in_progress() == (step.kind == Step::Kind::Challenge));
    }
    return 0;
}
