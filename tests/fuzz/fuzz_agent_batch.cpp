// Fuzz target: the batch a delivery agent starts with (delivery/agent_batch.hpp),
// read by postern-local from --batch-fd while it is still root. Whatever
// decodes must encode to bytes that decode the same, with distinct
// descriptors of 3 or more, and no more deliveries than the bound.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "delivery/agent_batch.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    namespace first_batch = postern::delivery::first_batch;
    std::string bytes(reinterpret_cast<const char*>(data), size);
    std::vector<first_batch::Item> items;
    std::string why;
    if (!first_batch::decode(bytes, &items, &why)) {
        if (why.empty()) __builtin_trap();  // a refusal says why
        return 0;
    }
    if (items.empty() || items.size() > first_batch::kMaxItems) __builtin_trap();
    std::set<int> fds;
    for (const auto& i : items)
        if (i.fd < 3 || !fds.insert(i.fd).second) __builtin_trap();
    std::vector<first_batch::Item> again;
    if (!first_batch::decode(first_batch::encode(items), &again, &why) || again.size() != items.size())
        __builtin_trap();
    for (size_t k = 0; k < items.size(); ++k) {
        const auto &a = items[k], &b = again[k];
        if (a.fd != b.fd || a.create_mbox != b.create_mbox || a.fields.sender != b.fields.sender ||
            a.fields.rcpt != b.fields.rcpt || a.fields.dest != b.fields.dest || a.fields.path != b.fields.path ||
            a.fields.msgid != b.fields.msgid || a.fields.mail_params != b.fields.mail_params ||
            a.fields.rcpt_params != b.fields.rcpt_params)
            __builtin_trap();
    }
    return 0;
}
