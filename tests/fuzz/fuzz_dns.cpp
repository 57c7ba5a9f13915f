// Fuzz target: DNS answers as postern reads them. Whoever runs a domain's
// name servers (or spoofs their answers) writes these bytes. The input's
// first byte picks the record type; the rest is the whole DNS message.
//  - MX (plugins/relay: resolver.cpp reads c-ares' parse, mx.cpp orders it):
//    the list to try is never longer than the records, holds no empty name,
//    no final dot, no name twice (without case) and never our own name; a
//    null MX gives nothing to try;
//  - TXT (filters/dkim/dns.cpp, txt_answer_records): a record found holds
//    its strings joined, no record is lost or made up, and a TempFail says
//    why; each record then goes to the DKIM key record parser as a verifier
//    would (a key found is a key).
// The messages themselves are parsed by c-ares. TLSA: postern has no DANE
// yet, so no TLSA reader to fuzz; its target belongs with it.

#include <ares.h>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "dkim/dns.hpp"
#include "dkim/record.hpp"
#include "plugins/relay/mx.hpp"
#include "postern/support/ascii.hpp"

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

void check_mx(const unsigned char* msg, int len) {
    ares_mx_reply* list = nullptr;
    if (ares_parse_mx_reply(msg, len, &list) != ARES_SUCCESS) return;
    std::vector<postern::relay::MxRecord> records;
    for (ares_mx_reply* r = list; r; r = r->next) records.push_back({r->priority, r->host ? r->host : ""});
    ares_free_data(list);
    std::mt19937 rng(1);
    bool null_mx = false;
    const std::string self = "mx.self.test";
    std::vector<std::string> hosts = postern::relay::order_mx(records, self, rng, &null_mx);
    check(hosts.size() <= records.size());
    if (null_mx) check(hosts.empty());
    for (std::size_t i = 0; i < hosts.size(); ++i) {
        check(!hosts[i].empty() && hosts[i].back() != '.');
        check(postern::util::lowercase(hosts[i]) != self);
        for (std::size_t j = 0; j < i; ++j)
            check(postern::util::lowercase(hosts[i]) != postern::util::lowercase(hosts[j]));
    }
}

void check_txt(const unsigned char* msg, int len) {
    postern::dkim::TxtResult r = postern::dkim::txt_answer_records(msg, len);
    if (const auto* t = std::get_if<postern::dkim::TxtTempFail>(&r)) {
        check(!t->text.empty());
        return;
    }
    const auto* found = std::get_if<postern::dkim::TxtFound>(&r);
    if (!found) return;
    check(!found->records.empty());
    // c-ares' own reading, for the count: the strings and where records start.
    ares_txt_ext* raw = nullptr;
    check(ares_parse_txt_reply_ext(msg, len, &raw) == ARES_SUCCESS);
    std::size_t records = 0, bytes = 0, joined = 0;
    for (ares_txt_ext* s = raw; s; s = s->next) {
        if (s->record_start || records == 0) ++records;
        bytes += s->length;
    }
    ares_free_data(raw);
    for (const std::string& rec : found->records) {
        joined += rec.size();
        auto key = postern::dkim::parse_key_record(rec);
        if (key) check(key.value().pkey != nullptr);
        else check(!key.error().text.empty());
    }
    check(found->records.size() == records && joined == bytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1 || size > 65536) return 0;
    const unsigned char* msg = data + 1;
    const int len = static_cast<int>(size - 1);
    if (data[0] & 1) check_txt(msg, len);
    else check_mx(msg, len);
    return 0;
}
