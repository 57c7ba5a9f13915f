// The order in which the outbound client tries a domain's mail exchangers
// (RFC 5321 §5.1, null MX of RFC 7505). Pure: the DNS answer comes in, the
// list of host names to try comes out; resolving them is the caller's job.
//
// The rules, in order:
//  - A null MX (the only record, preference 0, host "." or "") means the
//    domain accepts no mail: *null_mx is set and the list is empty; the caller
//    refuses permanently (5.1.10, RFC 7505 §4.2) and must not fall back to
//    A/AAAA. A "." record among others is a misconfiguration: it is skipped,
//    as is a name with an empty label ("..", ".a", "a..b").
//  - When our own name (`self_name`, compared without case or a final dot) is
//    one of the exchangers, we are a backup MX: only exchangers with a strictly
//    better (lower) preference than our best one remain, so that mail never
//    goes back to ourselves or to a worse backup (it would loop).
//  - What remains is sorted by preference; exchangers of equal preference are
//    shuffled with `rng` (RFC 5321 §5.1: spread the load among equals).
//  - A host listed twice keeps its best preference only; a final dot is
//    dropped from every host name.
//
// The implicit MX (RFC 5321 §5.1) is the caller's, not this function's: when
// the DNS answer holds *no* MX record at all (NODATA), the domain itself is
// the single exchanger, at preference 0, and its A/AAAA records are used.
// An empty result from a non-empty `records` (null MX, or nothing better than
// ourselves) never falls back to A/AAAA: the former is a permanent refusal,
// the latter a configuration error reported as a temporary failure.
#pragma once

#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace postern::relay {

struct MxRecord {
    int preference = 0;  // 0..65535
    std::string host;
};

std::vector<std::string> order_mx(std::vector<MxRecord> records, std::string_view self_name, std::mt19937& rng,
                                  bool* null_mx);

}  // namespace postern::relay
