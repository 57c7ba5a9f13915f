// tables/sqlite/rotation.hpp — the values `fetch` hands out in turn (relay
// `src <t>`): fetch_source's rows, read again after fetch_source_expire
// seconds or fetch_source_refresh fetches, as table-sqlite does.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace postern::sqlite {

class Rotation {
public:
    using Clock = std::chrono::steady_clock;

    Rotation(std::chrono::seconds expire, uint64_t refresh) : expire_(expire), refresh_(refresh) {}

    bool stale(Clock::time_point now) const { return !loaded_ || calls_ >= refresh_ || now - *loaded_ >= expire_; }

    // New rows: the turn goes on from where it was, so that a refresh does
    // not send every fetch back to the first row.
    void replace(std::vector<std::string> values, Clock::time_point now) {
        values_ = std::move(values);
        loaded_ = now;
        calls_ = 0;
        if (!values_.empty()) next_ %= values_.size();
    }

    // The next value, nullopt when there are none.
    std::optional<std::string> take() {
        ++calls_;
        if (values_.empty()) return std::nullopt;
        std::string v = values_[next_];
        next_ = (next_ + 1) % values_.size();
        return v;
    }

private:
    std::chrono::seconds expire_;
    uint64_t refresh_;
    std::vector<std::string> values_;
    size_t next_ = 0;
    uint64_t calls_ = 0;
    std::optional<Clock::time_point> loaded_;
};

}  // namespace postern::sqlite
