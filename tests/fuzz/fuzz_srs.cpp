// Fuzz target: the Sender Rewriting Scheme (core/relay/srs.cpp), which reads
// the recipient of every bounce sent to us and the sender of every message we
// forward. The input is "KEY\nADDRESS" (no newline: a fixed key and the whole
// input as address). Reversal must stay within the input and write only on
// success; whatever forwarding accepts must reverse to what it was given (or,
// for an SRS1 sender, to the first forwarder's SRS0 address), expire on time,
// and be left alone when forwarded again by us.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "relay/srs.hpp"

using namespace postern::relay;

namespace {

constexpr std::int64_t kNow = 1700000000;
constexpr std::int64_t kDay = 86400;
constexpr int kTtl = 4;
constexpr std::string_view kOurDomain = "fwd.example";

void check(bool ok) {
    if (!ok) std::abort();
}

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
        if ((x >= 'A' && x <= 'Z' ? x + 32 : x) != (y >= 'A' && y <= 'Z' ? y + 32 : y)) return false;
    }
    return true;
}

// "SRS0" + inner + "@" + host for SRS1<sep>HASH=host=inner@..., else "".
std::string srs1_shortcut(std::string_view address) {
    std::string_view local = address.substr(0, address.rfind('@'));
    if (local.size() < 5 || !iequal(local.substr(0, 4), "SRS1")) return {};
    std::string_view rest = local.substr(5);
    std::size_t i = rest.find('=');
    if (i == std::string_view::npos) return {};
    std::size_t j = rest.find('=', i + 1);
    if (j == std::string_view::npos) return {};
    return "SRS0" + std::string(rest.substr(j + 1)) + "@" + std::string(rest.substr(i + 1, j - i - 1));
}

void check_reverse(std::string_view address, const SrsKeys& keys, std::int64_t now, int ttl) {
    std::string original = "\x01";
    SrsResult r = srs_reverse(address, keys, now, ttl, &original);
    if (r != SrsResult::Ok) {
        check(original == "\x01");
        return;
    }
    check(original.size() <= address.size() && original.find('@') != std::string::npos);
    std::string again;
    check(srs_reverse(address, keys, now, ttl, nullptr) == SrsResult::Ok);
    check(srs_reverse(address, SrsKeys{"", keys.key}, now, ttl, &again) == SrsResult::Ok && again == original);
}

void check_forward(std::string_view sender, const SrsKeys& keys) {
    std::string error;
    auto out = srs_forward(sender, kOurDomain, keys, kNow, &error);
    if (!out) {
        check(!error.empty());
        return;
    }
    if (sender.empty()) {
        check(out->empty());
        return;
    }
    check(!keys.key.empty() && out->size() <= kSrsMaxAddress);
    std::string_view domain = sender.substr(sender.rfind('@') + 1);
    if (iequal(domain, kOurDomain)) {
        check(*out == sender);
        return;
    }
    check(out->size() > kOurDomain.size() &&
          iequal(std::string_view(*out).substr(out->size() - kOurDomain.size() - 1), "@fwd.example"));

    std::string original;
    check(srs_reverse(*out, keys, kNow, kTtl, &original) == SrsResult::Ok);
    bool same = original == sender;
    bool srs0 = sender.size() >= 4 && original == "SRS0" + std::string(sender.substr(4));
    bool shortcut = original == srs1_shortcut(sender);
    check(same || srs0 || shortcut);
    // An SRS0 address we made expires; an SRS1 one has no timestamp.
    SrsResult later = srs_reverse(*out, keys, kNow + (kTtl + 1) * kDay, kTtl, nullptr);
    check(later == ((*out)[3] == '0' ? SrsResult::Expired : SrsResult::Ok));
    // Forwarded again by us: left alone.
    auto twice = srs_forward(*out, kOurDomain, keys, kNow, &error);
    check(twice && *twice == *out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::size_t nl = in.find('\n');
    SrsKeys keys{"fuzz-key", ""};
    std::string_view address = in;
    if (nl != std::string_view::npos) {
        keys.key = std::string(in.substr(0, nl));
        address = in.substr(nl + 1);
    }
    check_reverse(address, keys, kNow, kTtl);
    check_reverse(address, keys, kNow + static_cast<std::int64_t>(size) * kDay, static_cast<int>(size % 7) - 1);
    check_forward(address, keys);
    return 0;
}
