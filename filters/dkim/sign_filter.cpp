// dkim/sign_filter.cpp — see sign_filter.hpp.
#include "dkim/sign_filter.hpp"

#include <cstdio>
#include <optional>

namespace postern::dkim {

SignFilter::Message& SignFilter::message(filterlib::Session& s) {
    if (!s.data.has_value()) s.data = std::make_shared<Message>(config_.body_canon);
    return *std::any_cast<std::shared_ptr<Message>&>(s.data);
}

void SignFilter::on_data_line(filterlib::Session& s, std::string_view line, filterlib::DataStream&) {
    Message& m = message(s);
    if (m.in_headers) {
        if (!line.empty()) {
            m.header_lines.emplace_back(line);
            m.fields.line(line);
            return;
        }
        m.in_headers = false;  // the blank line belongs to the body's text, not its hash
        return;
    }
    m.hasher.line(line);
    m.body.append(line);
    m.body += '\n';
}

std::vector<std::string> SignFilter::signatures(const Message& m, const BodyHash& bh) const {
    std::vector<std::string> out;
    auto domain = from_domain(m.fields.fields());
    if (!domain) {
        std::fprintf(stderr, "filter-dkim: message without a From domain: not signed\n");
        return out;
    }
    for (const KeyMatch& k : config_.keys.lookup(*domain)) {
        auto lines = sign(m.fields.fields(), bh, {k.domain, k.selector, *k.key}, config_.options);
        if (!lines) {
            std::fprintf(stderr, "filter-dkim: %s: not signed with selector %.*s: %s\n", domain->c_str(),
                         static_cast<int>(k.selector.size()), k.selector.data(), lines.error().text.c_str());
            continue;
        }
        for (auto& l : lines.value()) out.push_back(std::move(l));
    }
    return out;
}

void SignFilter::on_data_end(filterlib::Session& s, filterlib::DataStream& out) {
    Message& m = message(s);
    const BodyHash bh = m.hasher.finish();
    for (const auto& l : signatures(m, bh)) out.line(l);
    for (const auto& l : m.header_lines) out.line(l);
    if (!m.in_headers) out.line("");
    std::string_view body = m.body;
    for (std::size_t pos = 0; pos < body.size();) {
        std::size_t nl = body.find('\n', pos);
        out.line(body.substr(pos, nl - pos));
        pos = nl + 1;
    }
    out.end();
    s.data.reset();  // the next message of the session starts afresh
}

}  // namespace postern::dkim
