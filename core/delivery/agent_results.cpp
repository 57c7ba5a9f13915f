// Reading an agent's results; see agent_results.hpp.
#include "delivery/agent_results.hpp"

#include "util/frame.hpp"

namespace postern::delivery {
namespace {

constexpr std::size_t kMaxLastWords = 512;

std::string last_line(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (auto nl = text.rfind('\n'); nl != std::string::npos) text.erase(0, nl + 1);
    if (text.size() > kMaxLastWords) text.resize(kMaxLastWords);
    for (char& c : text)
        if (c == '\r' || c == '\0') c = ' ';
    return text;
}

// A delivery's index as the agent wrote it: decimal, at most 6 digits.
bool parse_index(const std::string& text, std::size_t* out) {
    if (text.empty() || text.size() > 6 || text.find_first_not_of("0123456789") != std::string::npos) return false;
    *out = std::stoul(text);
    return true;
}

}  // namespace

bool BatchResults::take(std::string& in, std::vector<std::size_t>* taken) {
    std::vector<std::string> f;
    bool bad = false;
    while (util::decode_frame(in, &f, &bad)) {
        std::size_t index = 0;
        if (f.size() != 1 + kResultFields || !parse_index(f[0], &index) || index >= got_.size() || got_[index])
            return false;
        Result r;
        std::string why;
        if (!parse_result(&f[1], &r, &why))
            r = {Result::Status::TempFail, "delivery agent sent an invalid result (" + why + ")"};
        got_[index] = std::move(r);
        ++have_;
        if (taken) taken->push_back(index);
    }
    return !bad;
}

std::vector<Result> BatchResults::finish(const std::string& why) {
    std::vector<Result> out;
    out.reserve(got_.size());
    for (auto& r : got_) out.push_back(r ? std::move(*r) : Result{Result::Status::TempFail, why});
    return out;
}

// A garbled agent is killed for it: its signal is ours, not its reason.
std::string failure_reason(const AgentEnd& end) {
    if (end.timed_out) return "delivery agent timed out";
    if (end.garbled) return "delivery agent sent garbled results";
    if (!end.cause.empty()) return end.cause;
    if (end.term_signal != 0) return "delivery agent killed by signal " + std::to_string(end.term_signal);
    if (std::string last = last_line(end.err); !last.empty()) return last;
    return "delivery agent exited " + std::to_string(end.exit_status) + " without a result";
}

}  // namespace postern::delivery
