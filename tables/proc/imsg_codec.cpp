// tables/proc/imsg_codec.cpp — see imsg_codec.hpp.
#include "imsg_codec.hpp"

#include <climits>
#include <cstring>

namespace postern::proctable::imsg {
namespace {

// The programs read `struct { uint32_t version; char name[LINE_MAX]; }` and
// refuse a message of any other size.
constexpr std::size_t kNameField = LINE_MAX;

template <typename T>
void put(std::string& out, T value) {
    char bytes[sizeof(T)];
    std::memcpy(bytes, &value, sizeof(T));
    out.append(bytes, sizeof(T));
}

template <typename T>
T get(std::string_view bytes, std::size_t at) {
    T value;
    std::memcpy(&value, bytes.data() + at, sizeof(T));
    return value;
}

std::string query_head(uint32_t service) {
    std::string payload;
    put<int>(payload, static_cast<int>(service));  // enum table_service: an int
    put<std::size_t>(payload, 0);                  // parameter count, always 0
    return payload;
}

Garbage garbage(std::string why) { return Garbage{"imsg reply: " + std::move(why)}; }

}  // namespace

std::string encode(uint32_t type, std::string_view payload) {
    std::string out;
    out.reserve(kHeaderSize + payload.size());
    put<uint32_t>(out, type);
    put<uint16_t>(out, static_cast<uint16_t>(kHeaderSize + payload.size()));
    put<uint16_t>(out, 0);  // flags: no descriptor passed
    put<uint32_t>(out, 0);  // peerid
    put<uint32_t>(out, 0);  // pid: informative only, nobody checks it
    out.append(payload);
    return out;
}

std::string encode_open(std::string_view table_name) {
    std::string payload;
    put<uint32_t>(payload, kApiVersion);
    std::string name(table_name.substr(0, kNameField - 1));
    name.resize(kNameField, '\0');
    payload += name;
    return encode(Open, payload);
}

std::optional<std::string> encode_query(Op op, uint32_t service, std::string_view key) {
    if (op != Op::Check && op != Op::Lookup) return std::nullopt;
    if (key.find('\0') != std::string_view::npos) return std::nullopt;
    std::string payload = query_head(service);
    payload.append(key);
    payload.push_back('\0');
    if (kHeaderSize + payload.size() > kMaxMessage) return std::nullopt;
    return encode(op == Op::Check ? Check : Lookup, payload);
}

std::string encode_fetch(uint32_t service) { return encode(Fetch, query_head(service)); }

std::variant<NeedMore, Frame, Garbage> decode_frame(std::string_view bytes) {
    if (bytes.size() < kHeaderSize) return NeedMore{};
    auto len = static_cast<std::size_t>(get<uint16_t>(bytes, 4));
    if (len < kHeaderSize || len > kMaxMessage)
        return garbage("message length " + std::to_string(len) + " out of range");
    if (bytes.size() < len) return NeedMore{};
    return Frame{get<uint32_t>(bytes, 0), bytes.substr(kHeaderSize, len - kHeaderSize), len};
}

Decoded decode_reply(Op op, const Frame& frame) {
    if (frame.type != Ok) return garbage("message type " + std::to_string(frame.type) + " where OK was expected");
    std::string_view p = frame.payload;
    if (op == Op::Open) {
        if (!p.empty()) return garbage("OPEN answered with " + std::to_string(p.size()) + " bytes");
        return Reply{Reply::Status::Found, {}};
    }
    if (p.size() < sizeof(int)) return garbage("no result in a " + std::to_string(p.size()) + "-byte reply");
    int r = get<int>(p, 0);
    p.remove_prefix(sizeof(int));
    if (op == Op::Update) {
        if (!p.empty()) return garbage("bytes after the update result");
        // table_api answers 1 for a good update; anything else failed.
        return r == 1 ? Reply{Reply::Status::Found, {}} : Reply{Reply::Status::Error, "update failed"};
    }
    if (r == 0 || r == -1) {
        if (!p.empty()) return garbage("bytes after a not-found or error result");
        return r == 0 ? Reply{Reply::Status::NotFound, {}} : Reply{Reply::Status::Error, {}};
    }
    if (r != 1) return garbage("result " + std::to_string(r) + " (expected 1, 0 or -1)");
    if (op == Op::Check) {
        if (!p.empty()) return garbage("bytes after a check result");
        return Reply{Reply::Status::Found, {}};
    }
    if (p.empty() || p.back() != '\0') return garbage("value not NUL-terminated");
    p.remove_suffix(1);
    if (p.find('\0') != std::string_view::npos) return garbage("NUL byte inside the value");
    return Reply{Reply::Status::Found, std::string(p)};
}

std::string encode_reply(Op op, const Reply& reply) {
    if (op == Op::Open) return encode(Ok, {});
    std::string payload;
    int r = reply.status == Reply::Status::Found ? 1 : reply.status == Reply::Status::NotFound ? 0 : -1;
    if (op == Op::Update) r = reply.status == Reply::Status::Found ? 1 : 0;
    put<int>(payload, r);
    if (r == 1 && (op == Op::Lookup || op == Op::Fetch)) {
        payload.append(reply.text);
        payload.push_back('\0');
    }
    return encode(Ok, payload);
}

}  // namespace postern::proctable::imsg
