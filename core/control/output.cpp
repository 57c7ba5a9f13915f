// control/output.cpp — printing replies as text or JSON; see output.hpp.
#include "control/output.hpp"

#include <charconv>
#include <cstdint>
#include <nlohmann/json.hpp>

namespace postern::control {
namespace {

// ordered_json keeps keys in the order the daemon sent them (nlohmann::json
// would sort them), which the documented key order relies on.
using Json = nlohmann::ordered_json;

// Length of the valid UTF-8 sequence at s[i], or 0 if the bytes there are not
// one (stray continuation, overlong form, surrogate, beyond U+10FFFF, cut off).
size_t utf8_length(std::string_view s, size_t i) {
    auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    auto cont = [&](size_t k, unsigned lo = 0x80, unsigned hi = 0xbf) {
        return k < s.size() && at(k) >= lo && at(k) <= hi;
    };
    unsigned c = at(i);
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) return cont(i + 1) ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        return cont(i + 1, lo, hi) && cont(i + 2) ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        return cont(i + 1, lo, hi) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    }
    return 0;
}

std::string hex_escape(const char* prefix, unsigned char c) {
    static constexpr char kHex[] = "0123456789abcdef";
    return std::string(prefix) + kHex[c >> 4] + kHex[c & 0xf];
}

// `s` as valid UTF-8: a byte that is not part of a valid sequence becomes
// the character of its Latin-1 reading. The JSON library would refuse (or
// blur into U+FFFD) such bytes; this keeps every value, and the document
// valid.
std::string utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        if (size_t n = utf8_length(s, i); n > 0) {
            out.append(s.substr(i, n));
            i += n - 1;
            continue;
        }
        auto c = static_cast<unsigned char>(s[i]);  // >= 0x80: ASCII is always valid
        out += static_cast<char>(0xc0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3f));
    }
    return out;
}

Json json_string(std::string_view s) { return Json(utf8(s)); }

Json object(const Record& rec) {
    Json j = Json::object();
    for (const auto& [k, v] : rec) j[utf8(k)] = json_string(v);
    return j;
}

// One line. The replacement handler cannot be reached (utf8() made every
// string valid); it is there so that dump() never throws.
std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n"; }

std::string confirmation(const std::vector<std::string>& w, const Reply& reply) {
    for (const auto& r : reply.records)
        if (const auto* m = field(r, "message")) return *m;
    if (w[0] == "schedule") return "scheduled " + w[1];
    if (w[0] == "remove") return "removed " + w[1];
    if (w[0] == "pause") return w[1] + " paused";
    if (w[0] == "resume") return w[1] + " resumed";
    if (w[0] == "log") return w[1] == "verbose" ? "verbose logging on" : "verbose logging off";
    if (w[0] == "update") return "table " + w[2] + " updated";
    return "done";
}

// ---- show status ----

// A count or a number of seconds from the daemon; null when it sent none
// ("" or a missing key: an empty queue has no oldest message).
Json number(const Record& rec, std::string_view key) {
    const std::string* v = field(rec, key);
    std::uint64_t n = 0;
    if (!v || v->empty()) return nullptr;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    if (ec != std::errc() || end != v->data() + v->size()) return nullptr;
    return n;
}

Json flag(const Record& rec, std::string_view key) {
    const std::string* v = field(rec, key);
    return v && *v == "yes";
}

// How the daemon's strings go into the status object: made valid UTF-8 for
// JSON (json_string), or as they are for text, which escapes them itself (raw).
using Str = Json (*)(std::string_view);
Json raw(std::string_view s) { return Json(std::string(s)); }

Json text_or_null(const Record& rec, std::string_view key, Str str) {
    const std::string* v = field(rec, key);
    if (!v || v->empty()) return nullptr;
    return str(*v);
}

Json text_of(const Record& rec, std::string_view key, Str str) {
    const std::string* v = field(rec, key);
    return str(v ? *v : "");
}

Json listener_json(const Record& rec, Str str) {
    Json members = Json::array();
    for (const auto& [k, v] : rec)
        if (k == "member") members.push_back(str(v));
    return Json{{"address", text_of(rec, "listener", str)},
                {"port", number(rec, "port")},
                {"path", text_or_null(rec, "path", str)},
                {"tls", flag(rec, "tls")},
                {"tls-require", flag(rec, "tls-require")},
                {"smtps", flag(rec, "smtps")},
                {"auth", flag(rec, "auth")},
                {"auth-optional", flag(rec, "auth-optional")},
                {"filter", text_or_null(rec, "filter", str)},
                {"filters", std::move(members)}};
}

Json filter_json(const Record& rec, Str str) {
    return Json{{"name", text_of(rec, "filter", str)},
                {"kind", text_of(rec, "kind", str)},
                {"state", text_of(rec, "state", str)},
                {"pid", number(rec, "pid")},
                {"restart-in-ms", number(rec, "restart-in-ms")}};
}

// The reply of `show status` (protocol.hpp: the daemon's record, then one per
// listener, then one per filter) as one object.
Json status_json(const Reply& reply, Str str) {
    Record daemon;
    Json listeners = Json::array(), filters = Json::array();
    for (const auto& r : reply.records) {
        if (r.empty()) continue;
        if (r.front().first == "listener") listeners.push_back(listener_json(r, str));
        else if (r.front().first == "filter") filters.push_back(filter_json(r, str));
        else daemon.insert(daemon.end(), r.begin(), r.end());
    }
    return Json{{"version", text_of(daemon, "version", str)},
                {"uptime", number(daemon, "uptime")},
                {"mda", text_of(daemon, "mda", str)},
                {"mta", text_of(daemon, "mta", str)},
                {"smtp", text_of(daemon, "smtp", str)},
                {"queue", Json{{"messages", number(daemon, "queue.messages")},
                               {"envelopes", number(daemon, "queue.envelopes")},
                               {"oldest-age", number(daemon, "queue.oldest-age")}}},
                {"listeners", std::move(listeners)},
                {"filters", std::move(filters)}};
}

// "45s", "2m 5s", "1h 0m 5s", "3d 1h 0m 5s".
std::string duration(std::uint64_t s) {
    std::uint64_t d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60;
    std::string out;
    if (d) out += std::to_string(d) + "d ";
    if (d || h) out += std::to_string(h) + "h ";
    if (d || h || m) out += std::to_string(m) + "m ";
    return out + std::to_string(s % 60) + "s";
}

std::string plural(const Json& n, const char* what) {
    if (!n.is_number_unsigned()) return std::string("? ") + what + "s";
    auto v = n.get<std::uint64_t>();
    return std::to_string(v) + " " + what + (v == 1 ? "" : "s");
}

std::string text_of(const Json& j) { return j.is_string() ? text_value(j.get<std::string>()) : "?"; }

std::string listener_line(const Json& l) {
    std::string out = "listener " + text_of(l["address"]);
    if (l["port"].is_number()) out += " port " + std::to_string(l["port"].get<std::uint64_t>());
    if (l["path"].is_string()) out += " " + text_of(l["path"]);
    std::string flags;
    for (const char* f : {"tls", "tls-require", "smtps", "auth", "auth-optional"}) {
        if (!l[f].get<bool>()) continue;
        if (std::string_view(f) == "tls" && l["tls-require"].get<bool>()) continue;  // said by tls-require
        flags += (flags.empty() ? "" : " ") + std::string(f);
    }
    std::string filters;
    for (const auto& n : l["filters"]) filters += (filters.empty() ? "" : ", ") + text_of(n);
    if (!flags.empty() || !filters.empty()) out += ":";
    if (!flags.empty()) out += " " + flags;
    if (!flags.empty() && !filters.empty()) out += ";";
    if (!filters.empty()) out += " filters " + filters;
    return out + "\n";
}

std::string filter_line(const Json& f) {
    std::string out = "filter " + text_of(f["name"]) + ": " + text_of(f["state"]);
    if (f["kind"] == "builtin") out += " (built-in)";
    if (f["pid"].is_number()) out += " (pid " + std::to_string(f["pid"].get<std::uint64_t>()) + ")";
    if (f["restart-in-ms"].is_number()) {  // in tenths of a second, cut down: "0.9s" is under a second
        auto ms = f["restart-in-ms"].get<std::uint64_t>();
        out += " in " + std::to_string(ms / 1000) + "." + std::to_string(ms % 1000 / 100) + "s";
    }
    return out + "\n";
}

std::string status_text(const Reply& reply) {
    Json j = status_json(reply, raw);  // text_value escapes each string
    std::string out = "version: " + text_of(j["version"]) + "\n";
    out += "uptime: " + (j["uptime"].is_number() ? duration(j["uptime"].get<std::uint64_t>()) : "?") + "\n";
    for (const char* part : {"mda", "mta", "smtp"}) out += std::string(part) + ": " + text_of(j[part]) + "\n";
    const Json& q = j["queue"];
    out += "queue: " + plural(q["messages"], "message") + ", " + plural(q["envelopes"], "envelope");
    if (q["oldest-age"].is_number()) out += ", oldest " + duration(q["oldest-age"].get<std::uint64_t>());
    out += "\n";
    for (const auto& l : j["listeners"]) out += listener_line(l);
    for (const auto& f : j["filters"]) out += filter_line(f);
    return out;
}

}  // namespace

Shape shape_of(const std::vector<std::string>& w) {
    if (w[0] == "table") return Shape::Lookup;
    if (w[0] != "show") return Shape::Action;
    if (w[1] == "queue" || w[1] == "quarantine") return Shape::List;
    if (w[1] == "envelope") return Shape::KeyColon;
    if (w[1] == "message") return Shape::Text;
    if (w[1] == "status") return Shape::Status;
    return Shape::KeyEquals;
}

const std::string* field(const Record& rec, std::string_view key) {
    for (const auto& [k, v] : rec)
        if (k == key) return &v;
    return nullptr;
}

std::string text_value(std::string_view s, char separator) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f || (separator && c == static_cast<unsigned char>(separator))) {
            out += hex_escape("\\x", c);
        } else if (size_t n = utf8_length(s, i); n == 0) {
            out += hex_escape("\\x", c);
        } else {
            out.append(s.substr(i, n));
            i += n - 1;
        }
    }
    return out;
}

std::string record_json(const Record& rec) { return dump(object(rec)); }

std::string render_text(const std::vector<std::string>& words, const Reply& reply) {
    std::string out;
    switch (shape_of(words)) {
    case Shape::List:
        for (const auto& r : reply.records) {
            for (size_t i = 0; i < r.size(); ++i) out += (i ? "|" : "") + text_value(r[i].second, '|');
            out += "\n";
        }
        break;
    case Shape::KeyEquals:
    case Shape::KeyColon: {
        const char* sep = shape_of(words) == Shape::KeyEquals ? "=" : ": ";
        for (const auto& r : reply.records)
            for (const auto& [k, v] : r) out += text_value(k) + sep + text_value(v) + "\n";
        break;
    }
    case Shape::Text:  // the message file as it is, like smtpctl
        for (const auto& r : reply.records)
            if (const auto* t = field(r, "text")) out += *t;
        break;
    case Shape::Status: out = status_text(reply); break;
    case Shape::Action: out = text_value(confirmation(words, reply)) + "\n"; break;
    case Shape::Lookup: break;  // the caller's
    }
    return out;
}

std::string render_json(const std::vector<std::string>& words, const Reply& reply) {
    switch (shape_of(words)) {
    case Shape::List: {
        Json list = Json::array();
        for (const auto& r : reply.records) list.push_back(object(r));
        return dump(list);
    }
    case Shape::Status: return dump(status_json(reply, json_string));
    case Shape::Action: return dump(Json{{"message", json_string(confirmation(words, reply))}});
    case Shape::Lookup: return reply.records.empty() ? dump(Json::object()) : record_json(reply.records.front());
    case Shape::KeyEquals:
    case Shape::KeyColon:
    case Shape::Text: break;
    }
    // The records' keys and values as one object.
    Json all = Json::object();
    for (const auto& r : reply.records)
        for (const auto& [k, v] : r) all[utf8(k)] = json_string(v);
    return dump(all);
}

}  // namespace postern::control
