// metrics/registry.hpp — the daemon's counters, gauges and histograms, and
// their Prometheus text exposition (format 0.0.4).
//
// Every value is an atomic, so the loop and worker threads update them
// without locks and the metrics server's thread reads them while they do.
// A family (one metric name) has children by label values; taking a child
// locks the family's map once, so callers on hot paths keep the reference
// they get (children are never removed: their addresses stay valid).
//
// Names follow Prometheus' conventions: postern_ prefix, _total for
// counters, base units (seconds).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace postern::metrics {

class Counter {
public:
    void inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> value_{0};
};

class Gauge {
public:
    void set(std::int64_t v) { value_.store(v, std::memory_order_relaxed); }
    void add(std::int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
    std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::int64_t> value_{0};
};

// Observations in seconds, counted in cumulative buckets (upper bounds).
class Histogram {
public:
    explicit Histogram(std::vector<double> bounds);
    void observe(double seconds);
    void observe(std::chrono::steady_clock::duration d) { observe(std::chrono::duration<double>(d).count()); }
    const std::vector<double>& bounds() const { return bounds_; }
    // Per-bucket counts (not cumulative; the last is +Inf), count and sum.
    std::vector<std::uint64_t> buckets() const;
    std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
    double sum() const { return static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1e6; }

private:
    std::vector<double> bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds_.size() + 1
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::uint64_t> sum_us_{0};  // microseconds: an atomic integer, no lock
};

// Bounds for latencies from a millisecond to ten minutes.
std::vector<double> latency_bounds();

using Labels = std::vector<std::pair<std::string, std::string>>;

class Registry {
public:
    // The child of family `name` with these label values, made on first use.
    // A name keeps the type and help it was first given.
    Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
    Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});
    Histogram& histogram(std::string_view name, std::string_view help, const Labels& labels = {},
                         std::vector<double> bounds = latency_bounds());
    // A gauge whose value is the age in seconds of a Unix time it holds
    // (0: none), rendered at scrape time: the oldest queued message.
    Gauge& age_gauge(std::string_view name, std::string_view help);

    // Everything, in the text format, families sorted by name.
    std::string render(std::int64_t now_unix) const;

private:
    enum class Type { Counter, Gauge, Age, Histogram };
    struct Child {
        Labels labels;
        std::unique_ptr<Counter> counter;
        std::unique_ptr<Gauge> gauge;
        std::unique_ptr<Histogram> histogram;
    };
    struct Family {
        Type type;
        std::string help;
        std::map<Labels, Child> children;
    };
    Child& child(std::string_view name, std::string_view help, Type type, const Labels& labels);

    mutable std::mutex mutex_;
    std::map<std::string, Family, std::less<>> families_;
};

// The registry of this process: every part of the daemon counts into it, the
// metrics server renders it. One per process, as a Prometheus client's
// default registry, so that counting needs no plumbing through every
// constructor; tests make registries of their own.
Registry& process();

// The label value as the text format writes it (\\, \", \n escaped).
std::string escape_label(std::string_view value);

}  // namespace postern::metrics
