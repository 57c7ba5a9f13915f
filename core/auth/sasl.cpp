// SMTP AUTH PLAIN and LOGIN exchanges, and strict base64; see sasl.hpp.
#include "auth/sasl.hpp"
#include "util/ascii.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <climits>

namespace postern::auth {

namespace {

// LOGIN's challenges, "Username:" and "Password:" in base64.
constexpr std::string_view kUsernameChallenge = "VXNlcm5hbWU6";
constexpr std::string_view kPasswordChallenge = "UGFzc3dvcmQ6";

std::string_view trim(std::string_view s) {
    auto blank = [](char c) { return c == ' ' || c == '\t'; };
    while (!s.empty() && blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && blank(s.back())) s.remove_suffix(1);
    return s;
}

using util::iequals;

int base64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

Step syntax_error(std::string_view why) {
    return Step{Step::Kind::Error, 501, "5.5.2 Syntax error: " + std::string(why), {}, {}};
}

// Why a user name, authorization identity or password cannot be used, or
// nullopt if it can. CR and LF would let a name forge log or filter lines
// (OpenSMTPD 7.8 errata); NUL would cut it short in crypt(3).
std::optional<Step> bad_field(std::string_view value) {
    if (value.size() > kMaxField) return syntax_error("user name or password too long");
    if (value.find_first_of(std::string_view("\0\r\n", 3)) != std::string_view::npos)
        return syntax_error("control character in user name or password");
    return std::nullopt;
}

// RFC 4954 §4: a zero-length response is sent as a lone "=" (required for
// the initial response; accepted for later ones too, as it is unambiguous).
std::optional<std::string> decode_response(std::string_view line) {
    if (line == "=") return std::string();
    return base64_decode(line);
}

}  // namespace

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.empty()) return std::string();
    if (text.size() % 4 != 0 || text.size() > INT_MAX / 2) return std::nullopt;
    std::size_t pad = 0;
    if (text.back() == '=') pad = text[text.size() - 2] == '=' ? 2 : 1;
    std::string_view body = text.substr(0, text.size() - pad);
    if (!std::all_of(body.begin(), body.end(), [](char c) { return base64_value(c) >= 0; })) return std::nullopt;
    // The bits after the last whole byte must be zero, or two texts would
    // decode to the same bytes.
    int last = base64_value(body.back());
    if ((pad == 1 && (last & 0x3) != 0) || (pad == 2 && (last & 0xf) != 0)) return std::nullopt;

    // Validated: EVP_DecodeBlock decodes padding as zero bytes, cut below.
    std::string out(text.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
    if (n < 0 || static_cast<std::size_t>(n) != out.size()) return std::nullopt;
    out.resize(out.size() - pad);
    return out;
}

std::string base64_encode(std::string_view data) {
    if (data.empty()) return {};
    std::string out((data.size() + 2) / 3 * 4 + 1, '\0');  // + the NUL EVP_EncodeBlock writes
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
    out.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
    return out;
}

void Exchange::reset() {
    state_ = State::Idle;
    user_.clear();
}

Step Exchange::fail(int code, std::string text) {
    reset();
    return Step{Step::Kind::Error, code, std::move(text), {}, {}};
}

Step Exchange::start(std::string_view args) {
    reset();
    if (args.size() > kMaxLine) return fail(500, "5.5.6 Authentication exchange line is too long");
    args = trim(args);
    if (args.empty()) return fail(501, "5.5.4 Invalid command arguments: No parameters given");
    auto space = args.find_first_of(" \t");
    std::string_view mechanism = args.substr(0, space);
    std::string_view initial = space == std::string_view::npos ? std::string_view{} : trim(args.substr(space));
    if (initial.find_first_of(" \t") != std::string_view::npos)
        return fail(501, "5.5.4 Invalid command arguments: too many parameters");

    if (iequals(mechanism, "PLAIN")) {
        if (!initial.empty()) return plain(initial);
        state_ = State::PlainResponse;
        return Step{Step::Kind::Challenge, 334, "", {}, {}};
    }
    if (iequals(mechanism, "LOGIN")) {
        // Not in any RFC, but clients send the user name as an initial response.
        if (!initial.empty()) return login_user(initial);
        state_ = State::LoginUser;
        return Step{Step::Kind::Challenge, 334, std::string(kUsernameChallenge), {}, {}};
    }
    return fail(504, "5.5.4 Unrecognized authentication type");
}

Step Exchange::next(std::string_view line) {
    if (state_ == State::Idle) return fail(503, "5.5.1 Invalid command: no authentication exchange in progress");
    if (line.size() > kMaxLine) return fail(500, "5.5.6 Authentication exchange line is too long");
    if (line == "*") {
        reset();
        return Step{Step::Kind::Cancelled, 501, "5.7.0 Authentication cancelled", {}, {}};
    }
    switch (state_) {
    case State::PlainResponse: return plain(line);
    case State::LoginUser: return login_user(line);
    case State::LoginPassword: return login_password(line);
    case State::Idle: break;
    }
    return fail(503, "5.5.1 Invalid command: no authentication exchange in progress");
}

// RFC 4616: [authzid] NUL authcid NUL passwd, nothing else.
Step Exchange::plain(std::string_view encoded) {
    auto decoded = decode_response(encoded);
    if (!decoded) return fail(501, "5.5.2 Syntax error: invalid base64");
    std::string_view message = *decoded;
    auto first = message.find('\0');
    auto second = first == std::string_view::npos ? first : message.find('\0', first + 1);
    if (second == std::string_view::npos || message.find('\0', second + 1) != std::string_view::npos)
        return fail(501, "5.5.2 Syntax error: malformed PLAIN response");
    std::string_view authzid = message.substr(0, first);
    std::string_view user = message.substr(first + 1, second - first - 1);
    std::string_view password = message.substr(second + 1);
    for (std::string_view field : {authzid, user, password})
        if (auto bad = bad_field(field)) return fail(bad->code, std::move(bad->text));
    if (user.empty()) return fail(501, "5.5.2 Syntax error: empty user name");
    if (password.empty()) return fail(501, "5.5.2 Syntax error: empty password");
    if (!authzid.empty() && !iequals(authzid, user))
        return fail(501, "5.5.2 Syntax error: authorization identity differs from user name");
    state_ = State::Idle;
    return Step{Step::Kind::Done, 0, {}, std::string(user), std::string(password)};
}

Step Exchange::login_user(std::string_view encoded) {
    auto decoded = decode_response(encoded);
    if (!decoded) return fail(501, "5.5.2 Syntax error: invalid base64");
    if (auto bad = bad_field(*decoded)) return fail(bad->code, std::move(bad->text));
    if (decoded->empty()) return fail(501, "5.5.2 Syntax error: empty user name");
    user_ = std::move(*decoded);
    state_ = State::LoginPassword;
    return Step{Step::Kind::Challenge, 334, std::string(kPasswordChallenge), {}, {}};
}

Step Exchange::login_password(std::string_view encoded) {
    auto decoded = decode_response(encoded);
    if (!decoded) return fail(501, "5.5.2 Syntax error: invalid base64");
    if (auto bad = bad_field(*decoded)) return fail(bad->code, std::move(bad->text));
    if (decoded->empty()) return fail(501, "5.5.2 Syntax error: empty password");
    Step done{Step::Kind::Done, 0, {}, std::move(user_), std::move(*decoded)};
    reset();
    return done;
}

}  // namespace postern::auth
