// dkim/headers.hpp — the message's header fields as DKIM sees them: how they
// are held, which instances an h= list picks (RFC 6376 5.4.2), the header
// hash input (3.7), and the From domain a signer picks its keys by.
//
// Depends on: dkim/canon.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/canon.hpp"

namespace postern::dkim {

// One header field, as the message has it.
//   "Subject: Is dinner\r\n ready?\r\n"  ->  name "Subject",
//                                            value " Is dinner\r\n ready?"
// name:  the bytes before the first colon, untouched (a sloppy "Subject :"
//        keeps its space; relaxed canonicalization drops it).
// value: every byte after that colon, the leading space included; each
//        continuation line follows a CRLF, whatever line ends the message
//        used, with its leading SP or HTAB; no final line end.
struct HeaderField {
    std::string name;
    std::string value;
    bool operator==(const HeaderField&) const = default;
};

// The field name without the WSP a sloppy writer left before the colon:
// what h= names are compared with (case-insensitively).
std::string_view field_name(const HeaderField& f);

// Collects the fields of a header section from its lines, as they come and
// without their line ends: a line starting with SP or HTAB continues the
// field before it, any other line starts a field. A line without a colon
// (not a header field at all) is dropped: it can neither be signed nor
// match an h= name. Stop feeding at the empty line that ends the section.
class HeaderCollector {
public:
    void line(std::string_view text);
    const std::vector<HeaderField>& fields() const { return fields_; }
    std::vector<HeaderField> take() { return std::move(fields_); }

private:
    std::vector<HeaderField> fields_;
    bool continuing_ = false;  // the last line started a field we kept
};

// The header hash input of RFC 6376 3.7: for each name of `names` in order,
// the canonical form of the last instance of that field not yet used (a
// name with no instance left adds nothing: that is how over-signing works),
// then the canonical signature field itself without its final CRLF.
// `signature` is the DKIM-Signature field with its b= value blanked, under
// the name the message gives it (simple canonicalization keeps its case).
// `skip`: a field never picked (a verifier's own signature field).
std::string header_hash_input(const std::vector<HeaderField>& fields, const std::vector<std::string>& names, Canon c,
                              const HeaderField& signature, std::optional<std::size_t> skip = {});

// How many fields are named `name` (case-insensitive).
std::size_t count_fields(const std::vector<HeaderField>& fields, std::string_view name);

// The domain of the From field's (first) address, lowercased:
//   From: "Joe (the boss)" <joe@Football.Example.com> (home)
// gives "football.example.com". nullopt when there is no From field or more
// than one, no address, or a domain that is not a host name (an address
// literal, an IDN not in A-label form...): such mail is not signed.
std::optional<std::string> from_domain(const std::vector<HeaderField>& fields);

// Letters, digits, hyphens in dot-separated labels (RFC 1035 host names,
// underscores allowed as DKIM's own _domainkey needs), at most 253 bytes.
bool is_domain_name(std::string_view s);

}  // namespace postern::dkim
