// filters/lib/link.hpp — the filter's end of the protocol: reads the
// daemon's lines, keeps the sessions, writes the answers (filter.hpp).
// Internal to the library.
#pragma once

#include <uv.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "filter.hpp"

namespace postern::filterlib {

class Link : public std::enable_shared_from_this<Link> {
public:
    Link(uv_loop_t* loop, Filter& filter, RunOptions options);
    ~Link();
    Link(const Link&) = delete;
    Link& operator=(const Link&) = delete;

    bool start();  // false: the descriptors cannot be used (the reason is on stderr)
    int status() const { return status_; }
    void write_line(std::string_view line);
    void fail(const std::string& why);  // give up: status 1, stop reading, let the loop end

private:
    struct SessionRecord {
        Session session;
        std::optional<DataStream> stream;  // the message under way
    };
    struct Pipe;

    void on_read(ssize_t n, const uv_buf_t* buf);
    void take(std::string_view line);
    void take_report(const filter::DaemonReport& r);
    void take_request(const filter::DaemonRequest& r);
    void book(Session& s, const filter::DaemonReport& r, const std::vector<std::string_view>& p);
    void flush();
    void finish();
    SessionRecord& record(std::uint64_t id);

    uv_loop_t* loop_;
    Filter& filter_;
    RunOptions options_;
    Registration registration_;  // the filter's own
    Pipe* in_ = nullptr;
    Pipe* out_ = nullptr;
    std::string inbuf_;
    std::string outbuf_;
    bool writing_ = false;
    bool ready_ = false;
    int status_ = 0;
    bool finished_ = false;
    std::map<std::uint64_t, SessionRecord> sessions_;
};

}  // namespace postern::filterlib
