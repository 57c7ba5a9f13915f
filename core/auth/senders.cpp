// The `senders` (mailaddrmap) check of MAIL FROM after AUTH; see senders.hpp.
#include "auth/senders.hpp"

namespace postern::auth {

namespace {

std::string_view trim(std::string_view s) {
    auto blank = [](char c) { return c == ' ' || c == '\t'; };
    while (!s.empty() && blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && blank(s.back())) s.remove_suffix(1);
    return s;
}

}  // namespace

std::vector<std::string_view> split_patterns(std::string_view value) {
    std::vector<std::string_view> out;
    while (!value.empty()) {
        auto comma = value.find(',');
        std::string_view item = trim(value.substr(0, comma));
        if (!item.empty()) out.push_back(item);
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
    }
    return out;
}

Check sender_allowed(table::Table* table, std::string_view user, std::string_view mail_from, std::string* error) {
    if (table == nullptr) {
        if (error) *error = "no senders table";
        return Check::TempFail;
    }
    if (mail_from.size() >= 2 && mail_from.front() == '<' && mail_from.back() == '>')
        mail_from = mail_from.substr(1, mail_from.size() - 2);
    std::string value, lookup_error;
    switch (table->lookup(table::Service::Mailaddrmap, table::lowercase(user), &value, &lookup_error)) {
    case table::Result::TempFail:
        if (error) *error = "table " + table->name() + ": " + (lookup_error.empty() ? "lookup failed" : lookup_error);
        return Check::TempFail;
    case table::Result::NotFound: return Check::Bad;
    case table::Result::Found: break;
    }
    for (std::string_view pattern : split_patterns(value))
        if (table::mailaddr_matches(pattern, mail_from)) return Check::Ok;
    return Check::Bad;
}

}  // namespace postern::auth
