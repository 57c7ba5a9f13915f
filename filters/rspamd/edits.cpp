// filters/rspamd/edits.cpp — applying header edits (see edits.hpp).

#include "edits.hpp"

#include <algorithm>
#include <cstddef>

#include "postern/support/ascii.hpp"

namespace postern::rspamd {

namespace {

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

// One field: its name (empty for stray continuation lines before the first
// field) and its lines.
struct Field {
    std::string name;
    std::vector<std::string> lines;
};

std::string field_name(std::string_view line) {
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return {};
    std::string_view name = line.substr(0, colon);
    // RFC 5322's obsolete syntax allows blanks before the colon.
    while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
    return std::string(name);
}

std::vector<Field> split_fields(const std::vector<std::string>& lines) {
    std::vector<Field> fields;
    for (const auto& line : lines) {
        if (!line.empty() && is_wsp(line.front()) && !fields.empty()) {
            fields.back().lines.push_back(line);
        } else {
            fields.push_back({is_wsp(line.empty() ? 'x' : line.front()) ? std::string() : field_name(line), {line}});
        }
    }
    return fields;
}

void remove_fields(std::vector<Field>& fields, const HeaderRemove& r) {
    std::vector<std::size_t> matches;
    for (std::size_t i = 0; i < fields.size(); ++i)
        if (!fields[i].name.empty() && util::iequals(fields[i].name, r.name)) matches.push_back(i);
    std::vector<std::size_t> doomed;
    if (r.which == 0) {
        doomed = matches;
    } else if (r.which > 0 && static_cast<std::size_t>(r.which) <= matches.size()) {
        doomed.push_back(matches[static_cast<std::size_t>(r.which) - 1]);
    } else if (r.which < 0 && static_cast<std::size_t>(-static_cast<long>(r.which)) <= matches.size()) {
        doomed.push_back(matches[matches.size() - static_cast<std::size_t>(-static_cast<long>(r.which))]);
    }
    for (auto it = doomed.rbegin(); it != doomed.rend(); ++it)
        fields.erase(fields.begin() + static_cast<std::ptrdiff_t>(*it));
}

void rewrite_subject(std::vector<Field>& fields, const std::string& subject) {
    Field replacement{"Subject", field_lines("Subject", subject)};
    for (auto& f : fields) {
        if (util::iequals(f.name, "Subject")) {
            f = std::move(replacement);
            return;
        }
    }
    fields.push_back(std::move(replacement));
}

std::size_t position(int order, std::size_t count) {
    long n = static_cast<long>(count);
    long p = order >= 0 ? order : n + order + 1;
    return static_cast<std::size_t>(std::clamp(p, 0L, n));
}

}  // namespace

std::vector<std::string> field_lines(std::string_view name, std::string_view value) {
    std::vector<std::string> lines{std::string(name) + ":"};
    std::string* line = &lines.back();
    bool first = true;
    bool line_start = true;  // at the start of the value or of a continuation line
    for (std::size_t i = 0; i < value.size(); ++i) {
        char c = value[i];
        if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < value.size() && value[i + 1] == '\n') ++i;
            lines.emplace_back();
            line = &lines.back();
            first = false;
            line_start = true;
            continue;
        }
        auto u = static_cast<unsigned char>(c);
        if ((u < 0x20 && c != '\t') || u == 0x7f) continue;
        if (line_start) {
            if (first) *line += ' ';
            else if (!is_wsp(c)) *line += '\t';
            line_start = false;
        }
        *line += c;
    }
    // A continuation line that is only blank would end the header section
    // for some readers: drop empty ones.
    lines.erase(std::remove_if(lines.begin() + 1, lines.end(),
                               [](const std::string& l) {
                                   return std::all_of(l.begin(), l.end(), [](char ch) { return is_wsp(ch); });
                               }),
                lines.end());
    return lines;
}

std::vector<std::string> apply_edits(const Edits& edits, const std::vector<std::string>& lines) {
    std::vector<Field> fields = split_fields(lines);
    for (const auto& r : edits.remove) remove_fields(fields, r);
    if (edits.subject) rewrite_subject(fields, *edits.subject);

    // Where each addition goes, counted on the fields left now; stable, so
    // additions at one place keep the order they were given in.
    std::vector<std::pair<std::size_t, const HeaderAdd*>> adds;
    for (const auto& a : edits.add) adds.emplace_back(position(a.order, fields.size()), &a);
    std::stable_sort(adds.begin(), adds.end(), [](const auto& x, const auto& y) { return x.first < y.first; });

    std::vector<std::string> out;
    auto next = adds.begin();
    auto emit_adds_at = [&](std::size_t p) {
        for (; next != adds.end() && next->first == p; ++next)
            for (auto& l : field_lines(next->second->name, next->second->value)) out.push_back(std::move(l));
    };
    for (std::size_t i = 0; i < fields.size(); ++i) {
        emit_adds_at(i);
        for (const auto& l : fields[i].lines) out.push_back(l);
    }
    emit_adds_at(fields.size());
    return out;
}

}  // namespace postern::rspamd
