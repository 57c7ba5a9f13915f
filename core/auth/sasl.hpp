// SMTP AUTH (RFC 4954) exchanges for the PLAIN (RFC 4616) and LOGIN
// mechanisms: a pure state machine with no I/O and no credential checks.
//
// The session feeds it the AUTH command's arguments, then each line the
// client sends, and writes back what each Step says. A Done step carries the
// user name and password, which the session checks on a worker thread
// (auth/credentials.hpp). Every input is bounded: lines over 12288 bytes
// (RFC 4954 §4), user names and passwords over 255 bytes are refused.
//
// Replies (code, then text with its enhanced status code):
//   334 ""                / 334 "VXNlcm5hbWU6" / 334 "UGFzc3dvcmQ6"  challenges
//   501 5.5.4 Invalid command arguments: No parameters given         AUTH alone
//   501 5.5.4 Invalid command arguments: too many parameters
//   504 5.5.4 Unrecognized authentication type                        (RFC 4954)
//   500 5.5.6 Authentication exchange line is too long                (RFC 4954)
//   501 5.7.0 Authentication cancelled                                client sent "*"
//   501 5.5.2 Syntax error: ...                                       malformed response
//   503 5.5.1 Invalid command: no authentication exchange in progress
//
// A PLAIN authorization identity must be empty or name the user itself
// (compared case-insensitively, as tables fold user names): acting as
// someone else is a right postern has no way to grant, so such a request is
// refused as malformed (501 5.5.2) before any credential is looked at.
// OpenSMTPD ignores the authorization identity instead.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace postern::auth {

// What the EHLO reply advertises: "250-AUTH PLAIN LOGIN".
inline constexpr std::string_view kMechanisms = "PLAIN LOGIN";
// The longest AUTH command or response line (RFC 4954 §4), CRLF excluded.
inline constexpr std::size_t kMaxLine = 12288;
// The longest user name, authorization identity or password.
inline constexpr std::size_t kMaxField = 255;

struct Step {
    enum class Kind { Challenge, Done, Error, Cancelled } kind = Kind::Error;
    int code = 0;
    // Challenge: the base64 text after "334 " ("" for PLAIN's empty
    // challenge); Error and Cancelled: the reply text after the code.
    std::string text;
    std::string user, password;  // Done only
};

// One AUTH exchange. Not thread-safe; one per session.
class Exchange {
public:
    // Begins a new exchange (dropping any unfinished one) from the AUTH
    // command's arguments: "PLAIN", "PLAIN dGVzdA==", "LOGIN", "LOGIN Ym9i",
    // "plain =" (an empty initial response).
    Step start(std::string_view args);
    // A client response line (CRLF removed); "*" cancels.
    Step next(std::string_view line);
    // True while a challenge is waiting for its response.
    bool in_progress() const { return state_ != State::Idle; }

private:
    enum class State { Idle, PlainResponse, LoginUser, LoginPassword };

    Step plain(std::string_view encoded);
    Step login_user(std::string_view encoded);
    Step login_password(std::string_view encoded);
    Step fail(int code, std::string text);
    void reset();

    State state_ = State::Idle;
    std::string user_;  // LOGIN: the user name while the password is awaited
};

// Strict RFC 4648 base64: the standard alphabet, length a multiple of four,
// '=' padding only at the end, no whitespace, unused bits zero. "" decodes to
// "". nullopt for anything else.
std::optional<std::string> base64_decode(std::string_view text);
std::string base64_encode(std::string_view data);

}  // namespace postern::auth
