// dkim/verify_filter.hpp — filter-dkim's verifying mode (-V) as a filter of
// the filter library (filters/lib): every message that passes is held until
// its end (the result goes on top), its DKIM signatures are checked (the
// keys looked up side by side on the filter's loop, so that a slow name
// server holds up this message only), and it is written back under an
//
//   Authentication-Results: AUTHSERV-ID; dkim=pass header.d=... header.s=...
//
// field (RFC 8601; "dkim=none" for an unsigned message). Nothing is refused:
// what to do with a failure is for whoever reads the field.
//
// The authserv-id names this host: the -a option, else the `admd` the
// daemon gives in its config lines, else the host name. Authentication-
// Results fields that arrive claiming that authserv-id are forgeries (the
// sender wrote them, not us) and are removed, as RFC 8601 section 5 asks of
// a border MTA; the signatures are checked on the message as it came.
//
// Depends on: dkim (verify, auth_results, headers), dkim/dns, filters/lib.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/dns.hpp"
#include "dkim/headers.hpp"
#include "dkim/verify.hpp"
#include "filter.hpp"

namespace postern::dkim {

// An authserv-id we can write bare: an RFC 2045 token (a host name is one),
// at most 255 bytes.
bool is_authserv_id(std::string_view id);

// The authserv-id an Authentication-Results field's value starts with
// (after any comments), unquoted; nullopt when there is none.
std::optional<std::string> authserv_id_of(std::string_view value);

struct VerifyConfig {
    std::string authserv_id;  // -a; "" for the daemon's admd, else the host name
    VerifyOptions verify;
};

class VerifyFilter final : public filterlib::Filter {
public:
    VerifyFilter(std::unique_ptr<TxtResolver> resolver, VerifyConfig config);
    filterlib::Registration registration() const override { return {{filterlib::Phase::DataLine}, {}}; }
    void on_config(std::string_view key, std::string_view value) override;
    void on_data_line(filterlib::Session& s, std::string_view line, filterlib::DataStream& out) override;
    void on_data_end(filterlib::Session& s, filterlib::DataStream& out) override;
    void on_session_end(filterlib::Session& s) override;

    // The authserv-id in use now.
    const std::string& authserv_id() const;

private:
    struct Message;
    Message& message(filterlib::Session& s);
    void look_up_keys(std::shared_ptr<Message> m, filterlib::DataStream out);
    void write_back(Message& m, filterlib::DataStream& out) const;
    void write_headers(const Message& m, filterlib::DataStream& out) const;

    VerifyConfig config_;
    std::string admd_;
    std::string host_name_;
    // Last, so destroyed first: no lookup reports to a half-gone filter.
    std::unique_ptr<TxtResolver> resolver_;
};

}  // namespace postern::dkim
