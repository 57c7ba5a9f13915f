// dkim/headers.cpp — header fields, their selection and the From domain.

#include "dkim/headers.hpp"

#include "postern/support/ascii.hpp"

namespace postern::dkim {

namespace {

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && (is_wsp(s.front()) || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
    while (!s.empty() && (is_wsp(s.back()) || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
    return s;
}

// The first mailbox of an address list with its comments removed and its
// quoted strings blanked ("x"), so that an '@', '<' or ',' inside them is
// not taken for syntax.
std::string first_mailbox(std::string_view value) {
    std::string out;
    int comment = 0;
    bool quoted = false, angle = false, escaped = false;
    for (char c : value) {
        if (escaped) {
            escaped = false;
            continue;
        }
        if ((quoted || comment > 0) && c == '\\') {
            escaped = true;
            continue;
        }
        if (quoted) {
            if (c == '"') quoted = false;
            continue;
        }
        if (comment > 0) {
            if (c == '(') ++comment;
            if (c == ')') --comment;
            continue;
        }
        if (c == '"') {
            quoted = true;
            out += 'x';
        } else if (c == '(') {
            comment = 1;
            out += ' ';
        } else if (c == ',' && !angle) {
            break;
        } else {
            if (c == '<') angle = true;
            if (c == '>') angle = false;
            out += c;
        }
    }
    return out;
}

}  // namespace

std::string_view field_name(const HeaderField& f) {
    std::string_view n = f.name;
    while (!n.empty() && is_wsp(n.back())) n.remove_suffix(1);
    return n;
}

void HeaderCollector::line(std::string_view text) {
    if (!text.empty() && is_wsp(text.front())) {
        if (continuing_) {
            fields_.back().value += "\r\n";
            fields_.back().value.append(text);
        }
        return;
    }
    std::size_t colon = text.find(':');
    continuing_ = colon != std::string_view::npos;
    if (continuing_) fields_.push_back({std::string(text.substr(0, colon)), std::string(text.substr(colon + 1))});
}

std::size_t count_fields(const std::vector<HeaderField>& fields, std::string_view name) {
    std::size_t n = 0;
    for (const HeaderField& f : fields)
        if (util::iequals(field_name(f), name)) ++n;
    return n;
}

std::string header_hash_input(const std::vector<HeaderField>& fields, const std::vector<std::string>& names, Canon c,
                              const HeaderField& signature, std::optional<std::size_t> skip) {
    // used[i]: field i was picked by an earlier name. Each name takes the
    // bottom-most field of its name not yet used (5.4.2).
    std::vector<bool> used(fields.size(), false);
    if (skip && *skip < used.size()) used[*skip] = true;
    std::string input;
    for (const std::string& name : names) {
        for (std::size_t i = fields.size(); i-- > 0;) {
            if (used[i] || !util::iequals(field_name(fields[i]), name)) continue;
            used[i] = true;
            input += canon_header(c, fields[i].name, fields[i].value);
            break;
        }
    }
    input += canon_header(c, signature.name, signature.value);
    input.resize(input.size() - 2);  // the signature field's own CRLF is not hashed
    return input;
}

bool is_domain_name(std::string_view s) {
    if (s.empty() || s.size() > 253) return false;
    std::size_t begin = 0;
    while (true) {
        std::size_t dot = s.find('.', begin);
        std::string_view label = s.substr(begin, dot == std::string_view::npos ? std::string_view::npos : dot - begin);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
        for (char c : label)
            if (!util::is_alnum(c) && c != '-' && c != '_') return false;
        if (dot == std::string_view::npos) return true;
        begin = dot + 1;
    }
}

std::optional<std::string> from_domain(const std::vector<HeaderField>& fields) {
    const HeaderField* from = nullptr;
    for (const HeaderField& f : fields) {
        if (!util::iequals(field_name(f), "from")) continue;
        if (from != nullptr) return std::nullopt;  // two From fields: RFC 5322 allows one
        from = &f;
    }
    if (from == nullptr) return std::nullopt;
    std::string mailbox = first_mailbox(from->value);
    std::string_view addr = mailbox;
    if (std::size_t lt = addr.find('<'); lt != std::string_view::npos) {
        addr.remove_prefix(lt + 1);
        addr = addr.substr(0, addr.find('>'));
    }
    std::size_t at = addr.rfind('@');
    if (at == std::string_view::npos) return std::nullopt;
    std::string domain = util::lowercase(trim(addr.substr(at + 1)));
    if (!is_domain_name(domain)) return std::nullopt;
    return domain;
}

}  // namespace postern::dkim
