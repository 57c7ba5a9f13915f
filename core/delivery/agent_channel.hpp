// delivery/agent_channel.hpp — how a delivery agent that lives on gets its
// next batch (the pool's side: agent_pool.hpp; the agent's: postern-local.cpp).
//
// An agent is started with its first batch on a descriptor (agent_batch.hpp) and a result
// descriptor (--result-fd). When the launcher keeps agents (agent_pool.hpp),
// that descriptor is the agent's end of a SOCK_SEQPACKET socketpair (the
// only kind on which an agent waits for more: on a pipe or a stream socket
// it serves its first batch and exits), and on it the parent sends each
// later batch as one packet: one frame
// (util/frame.hpp) "batch", then kItemFields fields per delivery, with the
// delivery's message descriptors, opened by the parent exactly as for the
// first batch, in the same packet (SCM_RIGHTS), one per delivery in order.
// The agent reports results on the same socket, one frame per packet, as it
// does on a pipe (delivery/result.hpp; the index counts within the batch).
// It asks for a batch only once it has reported every delivery of the one
// before, so the parent sends a batch only to an agent that has no other.
// The parent closing its end is the agent's signal to exit.
//
// A packet is bounded by the socket's send buffer (net.core.wmem_default,
// 208 KiB on Linux by default): a batch that does not fit kMaxPacket goes
// to a new agent, as its first batch, instead.
//
// Header-only and pure (no I/O): postern-local compiles it in with util/frame.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "util/frame.hpp"

namespace postern::delivery::channel {

// One delivery's envelope as the agent gets it (without the descriptor).
struct Item {
    std::string sender, rcpt, dest, path, msgid;
    std::string mail_params, rcpt_params;  // DSN parameters for a relay, "" = none
};

inline constexpr std::string_view kBatch = "batch";
inline constexpr std::size_t kItemFields = 7;
// Descriptors per packet: the kernel takes at most 253 (SCM_MAX_FD); a
// batch is at most 32 deliveries (delivery/kind.hpp).
inline constexpr std::size_t kMaxItems = 128;
inline constexpr std::size_t kMaxPacket = 128 * 1024;

inline std::string encode_batch(const std::vector<Item>& items) {
    std::vector<std::string> fields = {std::string(kBatch)};
    for (const auto& i : items)
        fields.insert(fields.end(), {i.sender, i.rcpt, i.dest, i.path, i.msgid, i.mail_params, i.rcpt_params});
    return util::encode_frame(fields);
}

// A packet as it came with `descriptors` descriptors: false with *why when
// it is no batch of that many deliveries (exactly one frame, nothing after).
inline bool decode_batch(std::string packet, std::size_t descriptors, std::vector<Item>* out, std::string* why) {
    std::vector<std::string> f;
    bool bad = false;
    if (!util::decode_frame(packet, &f, &bad) || !packet.empty() || f.empty() || f[0] != kBatch ||
        (f.size() - 1) % kItemFields != 0) {
        *why = "malformed batch from the daemon";
        return false;
    }
    std::size_t n = (f.size() - 1) / kItemFields;
    if (n == 0 || n > kMaxItems || n != descriptors) {
        *why = "batch of " + std::to_string(n) + " deliveries came with " + std::to_string(descriptors) +
               " message descriptors";
        return false;
    }
    out->clear();
    for (std::size_t k = 0; k < n; ++k) {
        const std::string* i = &f[1 + k * kItemFields];
        out->push_back({i[0], i[1], i[2], i[3], i[4], i[5], i[6]});
    }
    return true;
}

}  // namespace postern::delivery::channel
