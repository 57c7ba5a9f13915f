// dkim/sign_filter.hpp — filter-dkim's signing mode as a filter of the
// filter library (filters/lib): every message that passes is held until its
// end (a signature goes on top, and covers the whole body), then written
// back with one DKIM-Signature per key the key table gives for its From
// domain. A message with no key for its domain goes on unsigned, silently
// (that is what the key table says); one that cannot be signed (no From, a
// crypto failure) goes on unsigned with the reason on stderr.
//
// Depends on: dkim (signer, key_table, headers, canon), filters/lib.
#pragma once

#include <string>
#include <vector>

#include "dkim/key_table.hpp"
#include "dkim/signer.hpp"
#include "filter.hpp"

namespace postern::dkim {

struct SignConfig {
    KeyTable keys;
    Canon body_canon = Canon::Relaxed;
    SignOptions options;
};

class SignFilter final : public filterlib::Filter {
public:
    explicit SignFilter(SignConfig config) : config_(std::move(config)) {}
    filterlib::Registration registration() const override { return {{filterlib::Phase::DataLine}, {}}; }
    void on_data_line(filterlib::Session& s, std::string_view line, filterlib::DataStream& out) override;
    void on_data_end(filterlib::Session& s, filterlib::DataStream& out) override;

private:
    // One message on its way through: the header section as written and as
    // fields, the body as written and hashed as it comes.
    struct Message {
        explicit Message(Canon c) : hasher(c) {}
        bool in_headers = true;
        std::vector<std::string> header_lines;
        HeaderCollector fields;
        std::string body;  // lines joined with '\n', the blank line first
        BodyHasher hasher;
    };
    Message& message(filterlib::Session& s);
    std::vector<std::string> signatures(const Message& m, const BodyHash& bh) const;

    SignConfig config_;
};

}  // namespace postern::dkim
