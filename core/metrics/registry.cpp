// Counters, gauges, histograms and their text exposition; see registry.hpp.
#include "metrics/registry.hpp"

#include <cmath>
#include <cstdio>

namespace postern::metrics {
namespace {

std::string number(double v) {
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

// {a="x",b="y"}, with `extra` (le="...") last; "" when there are none.
std::string label_text(const Labels& labels, std::string_view extra = {}) {
    if (labels.empty() && extra.empty()) return {};
    std::string out = "{";
    for (const auto& [k, v] : labels) {
        if (out.size() > 1) out += ',';
        out += k + "=\"" + escape_label(v) + "\"";
    }
    if (!extra.empty()) {
        if (out.size() > 1) out += ',';
        out += extra;
    }
    return out + "}";
}

}  // namespace

std::string escape_label(std::string_view value) {
    std::string out;
    for (char c : value) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {}

void Histogram::observe(double seconds) {
    std::size_t i = 0;
    while (i < bounds_.size() && seconds > bounds_[i]) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    if (seconds > 0) sum_us_.fetch_add(static_cast<std::uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

std::vector<std::uint64_t> Histogram::buckets() const {
    std::vector<std::uint64_t> out(bounds_.size() + 1);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = counts_[i].load(std::memory_order_relaxed);
    return out;
}

Registry& process() {
    static Registry registry;
    return registry;
}

std::vector<double> latency_bounds() {
    return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
}

Registry::Child& Registry::child(std::string_view name, std::string_view help, Type type, const Labels& labels) {
    std::lock_guard lock(mutex_);
    auto it = families_.find(name);
    if (it == families_.end()) it = families_.emplace(std::string(name), Family{type, std::string(help), {}}).first;
    auto [c, made] = it->second.children.try_emplace(labels);
    if (made) c->second.labels = labels;
    return c->second;
}

Counter& Registry::counter(std::string_view name, std::string_view help, const Labels& labels) {
    Child& c = child(name, help, Type::Counter, labels);
    std::lock_guard lock(mutex_);
    if (!c.counter) c.counter = std::make_unique<Counter>();
    return *c.counter;
}

Gauge& Registry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
    Child& c = child(name, help, Type::Gauge, labels);
    std::lock_guard lock(mutex_);
    if (!c.gauge) c.gauge = std::make_unique<Gauge>();
    return *c.gauge;
}

Gauge& Registry::age_gauge(std::string_view name, std::string_view help) {
    Child& c = child(name, help, Type::Age, {});
    std::lock_guard lock(mutex_);
    if (!c.gauge) c.gauge = std::make_unique<Gauge>();
    return *c.gauge;
}

Histogram& Registry::histogram(std::string_view name, std::string_view help, const Labels& labels,
                               std::vector<double> bounds) {
    Child& c = child(name, help, Type::Histogram, labels);
    std::lock_guard lock(mutex_);
    if (!c.histogram) c.histogram = std::make_unique<Histogram>(std::move(bounds));
    return *c.histogram;
}

std::string Registry::render(std::int64_t now_unix) const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& [name, f] : families_) {
        static constexpr const char* kTypes[] = {"counter", "gauge", "gauge", "histogram"};
        out += "# HELP " + name + " " + f.help + "\n";
        out += "# TYPE " + name + " " + kTypes[static_cast<int>(f.type)] + "\n";
        for (const auto& [labels, c] : f.children) {
            switch (f.type) {
            case Type::Counter:
                out += name + label_text(labels) + " " + std::to_string(c.counter->value()) + "\n";
                break;
            case Type::Gauge: out += name + label_text(labels) + " " + std::to_string(c.gauge->value()) + "\n"; break;
            case Type::Age: {
                std::int64_t t = c.gauge->value();
                out += name + label_text(labels) + " " + std::to_string(t > 0 && now_unix > t ? now_unix - t : 0) +
                       "\n";
                break;
            }
            case Type::Histogram: {
                const Histogram& h = *c.histogram;
                auto counts = h.buckets();
                std::uint64_t cumulative = 0;
                for (std::size_t i = 0; i < counts.size(); ++i) {
                    cumulative += counts[i];
                    double le = i < h.bounds().size() ? h.bounds()[i] : INFINITY;
                    out += name + "_bucket" + label_text(labels, "le=\"" + number(le) + "\"") + " " +
                           std::to_string(cumulative) + "\n";
                }
                out += name + "_sum" + label_text(labels) + " " + number(h.sum()) + "\n";
                out += name + "_count" + label_text(labels) + " " + std::to_string(cumulative) + "\n";
                break;
            }
            }
        }
    }
    return out;
}

}  // namespace postern::metrics
