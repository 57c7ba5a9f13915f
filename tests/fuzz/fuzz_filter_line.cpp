// Fuzz target: the filter protocol's line codec (core/filter/protocol.hpp),
// the code that reads what a filter process writes. Filters are programs the
// admin installed, but they crash, misbehave and are fed by mail, so a line
// from one is untrusted input. The input is one line (its '\n' already cut).
// Invariants: nothing crashes or reads past the line; a refusal is named; a
// line that parses is written back and parses to the same value; a
// registration set agrees with the parser; the same bytes carried as a data
// line go out and come back unchanged, or are refused for the reasons the
// protocol gives (a control byte, the length).

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "filter/protocol.hpp"
#include "util/ascii.hpp"

using namespace postern::filter;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

bool has_control(std::string_view s) {
    return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

void check_round_trip(std::string_view in, const FilterLine& line) {
    EncodeError err = EncodeError::None;
    auto again = encode_filter_line(line, &err);
    if (!again) {
        // Only a short timestamp written back with six digits can grow a line.
        check(err == EncodeError::TooLong && std::holds_alternative<FilterOriginReport>(line));
        return;
    }
    check(err == EncodeError::None && again->size() <= kMaxLine);
    ParseResult reparsed = parse_filter_line(*again);
    check(std::holds_alternative<FilterLine>(reparsed) && std::get<FilterLine>(reparsed) == line);
    // Writing is a fixed point: the written form writes back identically.
    check(encode_filter_line(std::get<FilterLine>(reparsed), nullptr) == again);
    // Nothing to normalise in these but the case of the ids' hex digits.
    if (std::holds_alternative<RegisterReady>(line)) check(*again == in);
    if (std::holds_alternative<FilterDataline>(line)) {
        constexpr std::size_t kIds = std::string_view("filter-dataline|0000000000000000|0000000000000000|").size();
        check(again->size() == in.size() && postern::util::iequals(again->substr(0, kIds), in.substr(0, kIds)));
        check(again->compare(kIds, std::string::npos, in.substr(kIds)) == 0);
    }
}

void check_registrations(std::string_view in, const ParseResult& parsed) {
    Registrations reg;
    auto refused = reg.add_line(in);
    const auto* line = std::get_if<FilterLine>(&parsed);
    bool is_register = line &&
                       (std::holds_alternative<RegisterReport>(*line) || std::holds_alternative<RegisterFilter>(*line));
    check(refused.has_value() != is_register);
    check(reg.empty() != is_register);
    if (const auto* e = std::get_if<ParseError>(&parsed)) check(refused == *e);
}

// The bytes as a message line: out to the filter and back in its answer.
void check_data_line(std::string_view in) {
    EncodeError err = EncodeError::None;
    auto out = encode_data_line(Version::V0_6, {1, 0}, 1, 2, in, &err);
    check(out.has_value() == !has_control(in) || (!out && err == EncodeError::TooLong));
    if (out) check(out->size() >= in.size() && out->compare(out->size() - in.size(), in.size(), in) == 0);

    std::string answer = "filter-dataline|0000000000000001|0000000000000002|" + std::string(in);
    ParseResult back = parse_filter_line(answer);
    if (has_control(in)) {
        check(std::get<ParseError>(back) == ParseError::ControlByte || answer.size() > kMaxLine);
    } else if (answer.size() > kMaxLine) {
        check(std::get<ParseError>(back) == ParseError::TooLong);
    } else {
        const auto& d = std::get<FilterDataline>(std::get<FilterLine>(back));
        check(d.session == 1 && d.token == 2 && d.line == in);
    }
    check(dot_unstuff(dot_stuff(in)) == in);
}

}  // namespace

// The same bytes read as a line the daemon wrote (the filter library's
// side): refused by name, or parsed into fields that are pieces of the line.
void check_daemon_line(std::string_view in) {
    DaemonParseResult parsed = parse_daemon_line(in);
    if (const auto* e = std::get_if<ParseError>(&parsed)) {
        check(!describe(*e).empty());
        return;
    }
    check(in.size() <= kMaxLine && !has_control(in));
    const DaemonLine& line = std::get<DaemonLine>(parsed);
    if (const auto* r = std::get_if<DaemonReport>(&line)) {
        check(r->minor >= 5 && in.find(r->params) != std::string_view::npos);
        for (std::size_t n = 0; n < 6; ++n) {
            auto parts = split_params(r->params, n);
            check(parts.size() <= std::max<std::size_t>(n, 1));
        }
    } else if (const auto* q = std::get_if<DaemonRequest>(&line)) {
        check(q->minor >= 5 && in.size() >= q->param.size() && in.substr(in.size() - q->param.size()) == q->param);
    }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    ParseResult parsed = parse_filter_line(in);
    if (const auto* e = std::get_if<ParseError>(&parsed)) {
        check(!describe(*e).empty());
    } else {
        check(in.size() <= kMaxLine && !has_control(in));
        check_round_trip(in, std::get<FilterLine>(parsed));
    }
    check_registrations(in, parsed);
    check_data_line(in);
    check_daemon_line(in);
    return 0;
}
