// control/protocol.cpp — encoding, decoding and checking of control frames;
// the format is described in protocol.hpp.
#include "control/protocol.hpp"

#include <algorithm>

namespace postern::control {
namespace {

constexpr size_t kMaxLengthDigits = 9;  // 999,999,999 > kMaxReply: no overflow

void put(std::string& out, std::string_view s) {
    out += std::to_string(s.size());
    out += ':';
    out += s;
    out += ',';
}

enum class Take { Ok, Incomplete, Bad };

// Takes one netstring off the front of `in`. `what` names it in errors
// ("frame" or "field").
Take take(std::string_view& in, std::string_view* out, size_t max, std::string_view what, std::string* err) {
    size_t len = 0, i = 0;
    while (i < in.size() && in[i] >= '0' && in[i] <= '9') {
        if (i == kMaxLengthDigits) {
            *err = std::string(what) + " length has too many digits";
            return Take::Bad;
        }
        len = len * 10 + static_cast<size_t>(in[i] - '0');
        ++i;
    }
    if (i == in.size()) {
        *err = "truncated " + std::string(what);
        return Take::Incomplete;
    }
    if (i == 0) {
        *err = std::string(what) + " does not start with a length";
        return Take::Bad;
    }
    if (i > 1 && in[0] == '0') {
        *err = std::string(what) + " length has a leading zero";
        return Take::Bad;
    }
    if (in[i] != ':') {
        *err = "expected ':' after the " + std::string(what) + " length";
        return Take::Bad;
    }
    if (len > max) {
        *err = std::string(what) + " too large (" + std::to_string(len) + " bytes, max " + std::to_string(max) + ")";
        return Take::Bad;
    }
    if (in.size() - i - 1 < len + 1) {
        *err = "truncated " + std::string(what);
        return Take::Incomplete;
    }
    if (in[i + 1 + len] != ',') {
        *err = "expected ',' after the " + std::string(what);
        return Take::Bad;
    }
    *out = in.substr(i + 1, len);
    in.remove_prefix(i + 1 + len + 1);
    return Take::Ok;
}

// Inside a complete frame a field that runs past the end is "truncated", and
// no more can come: it is simply bad. (The frame already bounds its size.)
bool take_field(std::string_view& in, std::string_view* out, std::string* err) {
    return take(in, out, static_cast<size_t>(-1), "field", err) == Take::Ok;
}

// Unwraps the outer netstring and checks the version field; `payload` is
// left holding the fields after the version.
bool open_frame(std::string_view in, size_t max, std::string_view* payload, std::string* err) {
    if (take(in, payload, max, "frame", err) != Take::Ok) return false;
    if (!in.empty()) {
        *err = "trailing bytes after the frame";
        return false;
    }
    std::string_view version;
    if (payload->empty()) {
        *err = "missing protocol version";
        return false;
    }
    if (!take_field(*payload, &version, err)) return false;
    if (version != kVersion) {
        *err = "unsupported protocol version '" + printable(version) + "'";
        return false;
    }
    return true;
}

bool decode_record(std::string_view in, Record* rec, size_t index, std::string* err) {
    while (!in.empty()) {
        std::string_view key, value;
        if (!take_field(in, &key, err)) return false;
        if (in.empty()) {
            *err = "record " + std::to_string(index) + " has a key without a value";
            return false;
        }
        if (!take_field(in, &value, err)) return false;
        rec->emplace_back(key, value);
    }
    return true;
}

// ---- command forms ----

const std::vector<std::string_view> kForms = {
    "show queue",
    "show stats",
    "show status",
    "show message ID",
    "show envelope EVPID",
    "show quarantine",
    "release MSGID",
    "schedule ID|all",
    "remove ID|all",
    "pause mta|mda|smtp",
    "resume mta|mda|smtp",
    "log verbose|brief",
    "update table NAME",
    "table lookup NAME SERVICE KEY",
    "reload",
};

// OpenSMTPD's lookup services, as table::service_name() spells them. The
// protocol keeps its own copy so that posternctl need not link the tables;
// tests/unit/control checks that the two agree.
const std::vector<std::string_view> kServices = {
    "alias",  "credentials", "domain",      "netaddr",  "userinfo",  "source",
    "string", "mailaddr",    "mailaddrmap", "addrname", "relayhost",
};

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    size_t start = 0;
    for (size_t i = 0; i <= s.size(); ++i) {
        if (i == s.size() || s[i] == sep) {
            out.push_back(s.substr(start, i - start));
            start = i + 1;
        }
    }
    return out;
}

bool is_hex(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool is_placeholder(std::string_view alt) {
    return !alt.empty() && std::all_of(alt.begin(), alt.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

bool placeholder_matches(std::string_view kind, std::string_view word) {
    if (kind == "ID") return (word.size() == 8 || word.size() == 16) && is_hex(word);
    if (kind == "EVPID") return word.size() == 16 && is_hex(word);
    if (kind == "MSGID") return word.size() == 8 && is_hex(word);
    if (kind == "NAME")
        return !word.empty() && word.size() <= 255 &&
               std::all_of(word.begin(), word.end(), [](char c) { return c > ' ' && c < 0x7f; });
    if (kind == "SERVICE") return std::find(kServices.begin(), kServices.end(), word) != kServices.end();
    // Any key a table could hold: not empty, no NUL (the table C ABI takes C
    // strings), within the size of a key in a map file.
    if (kind == "KEY") return !word.empty() && word.size() <= kMaxKey && word.find('\0') == std::string_view::npos;
    return false;
}

bool token_matches(std::string_view token, std::string_view word) {
    for (auto alt : split(token, '|'))
        if (is_placeholder(alt) ? placeholder_matches(alt, word) : alt == word) return true;
    return false;
}

bool token_has_placeholder(std::string_view token) {
    auto alts = split(token, '|');
    return std::any_of(alts.begin(), alts.end(), is_placeholder);
}

std::string describe_bad(std::string_view token, std::string_view word) {
    std::string w = "'" + printable(word) + "'";
    if (token == "ID|all")
        return "invalid id " + w + ": expected a message id (8 hex digits), an envelope id (16) or all";
    if (token == "ID") return "invalid id " + w + ": expected a message id (8 hex digits) or an envelope id (16)";
    if (token == "EVPID") return "invalid envelope id " + w + ": expected 16 hex digits";
    if (token == "MSGID") return "invalid message id " + w + ": expected 8 hex digits";
    if (token == "NAME") return "invalid table name " + w;
    if (token == "SERVICE") {
        std::string all;
        for (auto s : kServices) all += (all.empty() ? "" : ", ") + std::string(s);
        return "invalid service " + w + ": expected one of " + all;
    }
    if (token == "KEY") return "invalid key " + w + ": expected 1 to " + std::to_string(kMaxKey) + " bytes, no NUL";
    return "invalid argument " + w;
}

}  // namespace

std::string encode_request(const Request& req) {
    std::string payload;
    put(payload, kVersion);
    for (const auto& w : req.words) put(payload, w);
    std::string out;
    put(out, payload);
    return out;
}

std::string encode_reply(const Reply& reply) {
    std::string payload;
    put(payload, kVersion);
    put(payload, reply.ok ? "ok" : "error");
    put(payload, reply.error);
    std::string rec;
    for (const auto& r : reply.records) {
        rec.clear();
        for (const auto& [k, v] : r) {
            put(rec, k);
            put(rec, v);
        }
        put(payload, rec);
    }
    std::string out;
    put(out, payload);
    return out;
}

bool decode_request(std::string_view in, Request* req, std::string* err) {
    std::string_view payload;
    if (!open_frame(in, kMaxRequest, &payload, err)) return false;
    req->words.clear();
    while (!payload.empty()) {
        if (req->words.size() == kMaxWords) {
            *err = "too many words (max " + std::to_string(kMaxWords) + ")";
            return false;
        }
        std::string_view word;
        if (!take_field(payload, &word, err)) return false;
        req->words.emplace_back(word);
    }
    if (req->words.empty()) {
        *err = "empty request";
        return false;
    }
    return true;
}

bool decode_reply(std::string_view in, Reply* reply, std::string* err) {
    std::string_view payload, status, text;
    if (!open_frame(in, kMaxReply, &payload, err)) return false;
    if (payload.empty()) {
        *err = "missing status";
        return false;
    }
    if (!take_field(payload, &status, err)) return false;
    if (status != "ok" && status != "error") {
        *err = "bad status '" + printable(status) + "'";
        return false;
    }
    if (payload.empty()) {
        *err = "missing error text";
        return false;
    }
    if (!take_field(payload, &text, err)) return false;
    reply->ok = status == "ok";
    reply->error = std::string(text);
    reply->records.clear();
    while (!payload.empty()) {
        std::string_view rec;
        if (!take_field(payload, &rec, err)) return false;
        reply->records.emplace_back();
        if (!decode_record(rec, &reply->records.back(), reply->records.size(), err)) return false;
    }
    return true;
}

FrameState scan_frame(std::string_view in, size_t max_frame, std::string* err) {
    std::string_view payload;
    switch (take(in, &payload, max_frame, "frame", err)) {
    case Take::Ok: return FrameState::Complete;
    case Take::Incomplete: return FrameState::Incomplete;
    case Take::Bad: break;
    }
    return FrameState::Bad;
}

std::string validate_request(const Request& req) {
    if (req.words.empty()) return "empty request";
    std::string bad_argument;
    for (auto form : kForms) {
        auto tokens = split(form, ' ');
        if (tokens.size() != req.words.size()) continue;
        size_t i = 0;
        while (i < tokens.size() && token_matches(tokens[i], req.words[i])) ++i;
        if (i == tokens.size()) return {};
        // All fixed words right, one argument wrong: say which argument.
        bool rest_fixed_ok = true;
        for (size_t j = i + 1; j < tokens.size(); ++j)
            if (!token_has_placeholder(tokens[j]) && !token_matches(tokens[j], req.words[j])) rest_fixed_ok = false;
        if (token_has_placeholder(tokens[i]) && rest_fixed_ok && bad_argument.empty())
            bad_argument = describe_bad(tokens[i], req.words[i]);
    }
    if (!bad_argument.empty()) return bad_argument;
    std::string joined;
    for (const auto& w : req.words) {
        if (!joined.empty()) joined += ' ';
        joined += printable(w);
        if (joined.size() > 128) break;
    }
    return "unknown command: " + joined;
}

const std::vector<std::string_view>& usage_lines() { return kForms; }

const std::vector<std::string_view>& service_names() { return kServices; }

std::string printable(std::string_view word) {
    std::string out;
    for (char c : word.substr(0, 64)) out += (c >= ' ' && c < 0x7f) ? c : '?';
    if (word.size() > 64) out += "...";
    return out;
}

}  // namespace postern::control
