// tables/proc/line_codec.cpp — see line_codec.hpp.
#include "line_codec.hpp"

namespace postern::proctable::line {
namespace {

std::string_view op_word(Op op) {
    switch (op) {
    case Op::Update: return "update";
    case Op::Check: return "check";
    case Op::Lookup: return "lookup";
    case Op::Fetch: return "fetch";
    case Op::Open: break;
    }
    return "open";
}

// Cut `prefix` off the front of `s`; false when it is not there.
bool take(std::string_view& s, std::string_view prefix) {
    if (s.substr(0, prefix.size()) != prefix) return false;
    s.remove_prefix(prefix.size());
    return true;
}

// A short, printable excerpt of a line for an error text (it ends up in logs).
std::string excerpt(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 80)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (s.size() > 80) out += "...";
    return out;
}

Garbage garbage(std::string what, std::string_view line) {
    return Garbage{std::move(what) + ": \"" + excerpt(line) + "\""};
}

}  // namespace

std::string encode_handshake(std::string_view smtpd_version, std::string_view table) {
    std::string out;
    out.append("config|smtpd-version|").append(smtpd_version).append("\n");
    out.append("config|protocol|").append(kVersion).append("\n");
    out.append("config|tablename|").append(table).append("\n");
    out.append("config|ready\n");
    return out;
}

std::string encode_request(Op op, uint32_t service, std::string_view key, std::string_view table, std::string_view id,
                           int64_t sec, long usec) {
    std::string micro = std::to_string(usec);
    if (micro.size() < 6) micro.insert(0, 6 - micro.size(), '0');
    std::string out = "table|";
    out.append(kVersion).append("|").append(std::to_string(sec)).append(".").append(micro);
    out.append("|").append(table).append("|").append(op_word(op));
    if (op != Op::Update) out.append("|").append(service_name(service));
    out.append("|").append(id);
    if (op == Op::Check || op == Op::Lookup) out.append("|").append(key);
    out.append("\n");
    return out;
}

Cut cut_line(std::string_view buffer, std::size_t max) {
    std::size_t nl = buffer.find('\n');
    if (nl == std::string_view::npos) return {buffer.size() > max ? Cut::State::TooLong : Cut::State::NeedMore, 0, 0};
    std::size_t len = nl;
    if (len > 0 && buffer[len - 1] == '\r') --len;  // a program written with CRLF line ends
    if (len > max) return {Cut::State::TooLong, 0, 0};
    return {Cut::State::Line, len, nl + 1};
}

std::variant<Registered, Garbage> decode_register(std::string_view line) {
    std::string_view rest = line;
    if (!take(rest, "register|")) return garbage("not a registration", line);
    if (rest == "ready") return Registered{true, 0};
    auto service = service_from_name(rest);
    if (!service) return garbage("unknown service", line);
    return Registered{false, *service};
}

Decoded decode_reply(std::string_view line, Op op, std::string_view id) {
    if (line.find('\0') != std::string_view::npos) return garbage("NUL byte in reply", line);
    std::string_view rest = line;
    if (!take(rest, op_word(op)) || !take(rest, "-result|"))
        return garbage("expected " + std::string(op_word(op)) + "-result", line);
    if (!take(rest, id) || !take(rest, "|"))
        return garbage("reply for another request (expected id " + std::string(id) + ")", line);

    if (rest == "error") return Reply{Reply::Status::Error, {}};
    if (take(rest, "error|")) return Reply{Reply::Status::Error, std::string(rest)};
    if (op == Op::Update) {
        if (rest == "ok") return Reply{Reply::Status::Found, {}};
        return garbage("expected ok or error", line);
    }
    if (rest == "not-found") return Reply{Reply::Status::NotFound, {}};
    if (op == Op::Check) {
        // OpenSMTPD takes anything after "found" in a check reply; so do we.
        if (rest == "found" || take(rest, "found|")) return Reply{Reply::Status::Found, {}};
        return garbage("expected found, not-found or error", line);
    }
    if (!take(rest, "found|")) return garbage("expected found|VALUE, not-found or error", line);
    if (rest.empty()) return garbage("found with an empty value", line);
    return Reply{Reply::Status::Found, std::string(rest)};
}

std::string encode_reply(Op op, std::string_view id, const Reply& reply) {
    std::string out(op_word(op));
    out.append("-result|").append(id).append("|");
    switch (reply.status) {
    case Reply::Status::Found:
        if (op == Op::Update) out.append("ok");
        else if (op == Op::Check) out.append("found");
        else out.append("found|").append(reply.text);
        break;
    case Reply::Status::NotFound: out.append("not-found"); break;
    case Reply::Status::Error:
        out.append("error");
        if (!reply.text.empty()) out.append("|").append(reply.text);
        break;
    }
    return out;
}

}  // namespace postern::proctable::line
