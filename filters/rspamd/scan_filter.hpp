// rspamd/scan_filter.hpp — filter-rspamd as a filter of the filter library
// (filters/lib): each message is held (in memory, then in a temporary
// file: rspamd needs all of it), sent to rspamd with its envelope when it
// ends, and written back as rspamd's verdict says: headers added, removed
// or the Subject rewritten for mail it accepts; for mail it refuses (reject,
// soft reject, greylist) the message goes back unchanged and the commit
// phase answers with the refusal. Scans run side by side on the filter's
// loop: a slow one holds up its own session only.
//
// When rspamd cannot be asked (down, timeout, a reply we cannot read) the
// message is refused for now (451 4.7.1), unless `accept_unscanned` says
// to let it through unscanned, which is logged.
//
// Depends on: rspamd (client, request, verdict, edits), filters/lib.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "filter.hpp"
#include "rspamd/client.hpp"
#include "rspamd/verdict.hpp"

namespace postern::rspamd {

struct ScanConfig {
    RspamdClient::Options client;
    Policy policy;
    bool accept_unscanned = false;
    std::string settings_id;
    std::string temp_dir = "/tmp";
};

class ScanFilter final : public filterlib::Filter {
public:
    ScanFilter(uv_loop_t* loop, ScanConfig config);
    filterlib::Registration registration() const override {
        return {{filterlib::Phase::DataLine, filterlib::Phase::Commit}, {}};
    }
    void on_config(std::string_view key, std::string_view value) override;
    void on_request(filterlib::Session& s, filterlib::Phase phase, std::string_view param,
                    filterlib::Answer answer) override;
    void on_data_line(filterlib::Session& s, std::string_view line, filterlib::DataStream& out) override;
    void on_data_end(filterlib::Session& s, filterlib::DataStream& out) override;
    void on_session_end(filterlib::Session& s) override;

private:
    struct Message;
    Message& message(filterlib::Session& s);
    Envelope envelope(const filterlib::Session& s) const;
    void scanned(std::shared_ptr<Message> m, ScanResult result, filterlib::DataStream out);
    static void write_back(Message& m, const std::vector<std::string>& headers, filterlib::DataStream& out);

    ScanConfig config_;
    std::string mta_name_;
    RspamdClient client_;
};

}  // namespace postern::rspamd
