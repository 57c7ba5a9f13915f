// delivery/agent_batch.hpp — the batch a delivery agent starts with, as it
// reads it from a descriptor (postern-local's --batch-fd), never from its
// argv: any local user reads a process's argv in /proc/PID/cmdline (`ps`),
// and the envelope's addresses and an mda command are nobody's business.
//
// The launcher writes the batch into a sealed memory file (agent_spawn.cpp)
// that the agent inherits and reads once, whole, before its plugin loads.
// The bytes are one frame (util/frame.hpp): "first-batch", then per delivery
// kFirstItemFields fields:
//
//     FD CREATE SENDER RCPT DEST PATH MSGID MAILPARAMS RCPTPARAMS
//
// FD is the inherited descriptor holding the delivery's message (decimal,
// 3 or more, each once), CREATE is "1" when PATH is a mailbox the agent
// makes while it is root (else "0"), MAILPARAMS and RCPTPARAMS the DSN
// parameters a relay passes on ("" = none). Later batches come on the
// agent's channel without FD and CREATE (agent_channel.hpp).
//
// The agent reads what the daemon wrote, but decodes it as if it were
// hostile all the same: bounded in bytes and deliveries, exactly one frame
// and nothing after it (tests/fuzz/fuzz_agent_batch.cpp).
//
// Header-only and pure (no I/O): postern-local compiles it in with util/frame.
#pragma once

#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "delivery/agent_channel.hpp"
#include "util/frame.hpp"

namespace postern::delivery::first_batch {

struct Item {
    int fd = -1;               // the message's descriptor in the agent
    bool create_mbox = false;  // PATH is a mailbox the agent makes as root
    channel::Item fields;
};

inline constexpr std::string_view kTag = "first-batch";
inline constexpr std::size_t kFields = 9;
// A batch is at most 32 deliveries (delivery/kind.hpp); the agent reads at
// most this many bytes, and the launcher refuses to write more.
inline constexpr std::size_t kMaxItems = channel::kMaxItems;
inline constexpr std::size_t kMaxBytes = util::kMaxFrame;

inline std::string encode(const std::vector<Item>& items) {
    std::vector<std::string> f = {std::string(kTag)};
    for (const auto& i : items) {
        const channel::Item& e = i.fields;
        f.insert(f.end(), {std::to_string(i.fd), i.create_mbox ? "1" : "0", e.sender, e.rcpt, e.dest, e.path, e.msgid,
                           e.mail_params, e.rcpt_params});
    }
    return util::encode_frame(f);
}

// "3".."999999", no sign, no leading zero: 0-2 are the agent's stdio.
inline bool parse_fd(std::string_view text, int* fd) {
    if (text.empty() || text.size() > 6 || text[0] == '0' ||
        text.find_first_not_of("0123456789") != std::string_view::npos)
        return false;
    int n = 0;
    for (char c : text) n = n * 10 + (c - '0');
    *fd = n;
    return n >= 3;
}

// The bytes read from --batch-fd: false with *why when they are no batch.
inline bool decode(std::string bytes, std::vector<Item>* out, std::string* why) {
    if (bytes.size() > kMaxBytes) {
        *why = "batch longer than " + std::to_string(kMaxBytes) + " bytes";
        return false;
    }
    std::vector<std::string> f;
    bool bad = false;
    if (!util::decode_frame(bytes, &f, &bad) || !bytes.empty() || f.empty() || f[0] != kTag ||
        (f.size() - 1) % kFields != 0) {
        *why = "malformed batch";
        return false;
    }
    std::size_t n = (f.size() - 1) / kFields;
    if (n == 0 || n > kMaxItems) {
        *why = "batch of " + std::to_string(n) + " deliveries (want 1 to " + std::to_string(kMaxItems) + ")";
        return false;
    }
    std::set<int> seen;
    std::vector<Item> items;
    for (std::size_t k = 0; k < n; ++k) {
        std::string* i = &f[1 + k * kFields];
        Item item;
        if (!parse_fd(i[0], &item.fd) || !seen.insert(item.fd).second) {
            *why = "bad message descriptor \"" + i[0] + "\" in delivery " + std::to_string(k);
            return false;
        }
        if (i[1] != "0" && i[1] != "1") {
            *why = "bad mailbox flag \"" + i[1] + "\" in delivery " + std::to_string(k);
            return false;
        }
        item.create_mbox = i[1] == "1";
        item.fields = {std::move(i[2]), std::move(i[3]), std::move(i[4]), std::move(i[5]),
                       std::move(i[6]), std::move(i[7]), std::move(i[8])};
        items.push_back(std::move(item));
    }
    *out = std::move(items);
    return true;
}

}  // namespace postern::delivery::first_batch
