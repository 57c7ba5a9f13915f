// Fuzz target: the "deliver" request the root parent reads from the
// unprivileged process (delivery/privileged.cpp read_deliver_request, with
// delivery/rederive.cpp). The writer may be an attacker who owns that
// process: whatever is accepted must be a job the parent's configuration
// would make. Each input is frames (util/frame.hpp); each frame one request.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "delivery/privileged.hpp"
#include "delivery/rederive.hpp"
#include "util/frame.hpp"

namespace {

const postern::config::Config& config() {
    static const postern::config::Config cfg = [] {
        auto parsed = postern::config::parse_text(
            "table aliases { root = bob }\n"
            "mda wrapper guard \"/usr/bin/timeout 60 %{mda}\"\n"
            "action \"box\" maildir \"~/Mail\" junk alias <aliases>\n"
            "action \"spool\" mbox alias <aliases>\n"
            "action \"cmd\" mda \"/usr/bin/procmail -d %{user.username}\" wrapper guard\n"
            "action \"out\" relay\n"
            "match from any for domain \"example.com\" action \"box\"\n"
            "match from any for domain \"spool.example\" action \"spool\"\n"
            "match from any for domain \"cmd.example\" action \"cmd\"\n"
            "match from any for any action \"out\"\n",
            "fuzz_privileged.conf");
        if (!parsed.config) __builtin_trap();
        return *parsed.config;
    }();
    return cfg;
}

// "uid:gid:home" naming uid 0 or gid 0 (as numbers: "00" too); the home may
// hold anything, ":0:" included.
bool root_account(const std::string& a) {
    auto zero = [](const std::string& t) { return !t.empty() && t.find_first_not_of('0') == std::string::npos; };
    std::size_t c1 = a.find(':'), c2 = c1 == std::string::npos ? c1 : a.find(':', c1 + 1);
    if (c1 == std::string::npos) return false;
    return zero(a.substr(0, c1)) || (c2 != std::string::npos && zero(a.substr(c1 + 1, c2 - c1 - 1)));
}

void check(const std::vector<std::string>& fields) {
    namespace d = postern::delivery;
    const std::string spool = "/var/spool/postern";
    auto req = d::read_deliver_request(fields, config(), spool);
    if (!req) return;
    if (!req->refused.empty()) return;
    const d::Job& job = req->job;
    const auto* action = config().find_action(job.action);
    if (!action || job.items.size() != req->items || job.items.empty()) __builtin_trap();
    for (const auto& i : job.items) {
        if (i.msgid.size() != 8 || i.message_path.rfind(spool + "/", 0) != 0) __builtin_trap();
        if (!i.expanded && action->method != "relay" && i.path != action->path) __builtin_trap();
        if (i.expanded && (job.method != "mbox" && job.method != "mda")) __builtin_trap();
        if (i.expanded && (job.account.empty() || root_account(job.account))) __builtin_trap();
    }
    if (action->method == "relay" && (job.user != d::kRelayAgentUser || !job.account.empty())) __builtin_trap();
    if (action->method != "relay" && !job.secret.empty()) __builtin_trap();
    // What the parent accepted, sent again, is accepted as the same job.
    auto again = d::read_deliver_request(d::deliver_request(1, job), config(), spool);
    if (!again || !again->refused.empty() || again->job.items.size() != job.items.size()) __builtin_trap();
    for (size_t k = 0; k < job.items.size(); ++k)
        if (again->job.items[k].path != job.items[k].path) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string buffer(reinterpret_cast<const char*>(data), size);
    std::vector<std::string> fields;
    bool bad = false;
    for (int frames = 0; frames < 100 && postern::util::decode_frame(buffer, &fields, &bad); ++frames) check(fields);
    return 0;
}
