// crypt(3) password checks against a credentials table; see credentials.hpp.
#include "auth/credentials.hpp"

#include <pwd.h>
#include <shadow.h>

#include <vector>

#include <crypt.h>
#include <openssl/crypto.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace postern::auth {

namespace {

// Hashed in place of a missing user's hash so that an unknown name costs
// what a known one does ($6$ at 5000 rounds, what `smtpctl encrypt` makes).
constexpr const char* kDecoyHash =
    "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";

// Wipes its bytes on the way out: the password and crypt's working state
// must not linger in freed memory.
struct Scrubbed {
    std::string text;
    ~Scrubbed() { OPENSSL_cleanse(text.data(), text.size()); }
};

struct CryptState {
    crypt_data data{};
    ~CryptState() { OPENSSL_cleanse(&data, sizeof data); }
};

std::string_view trim(std::string_view s) {
    auto blank = [](char c) { return c == ' ' || c == '\t'; };
    while (!s.empty() && blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && blank(s.back())) s.remove_suffix(1);
    return s;
}

// The result of hashing, and errno when crypt_rn refused.
struct Hashed {
    Check check;
    int err = 0;
};

Hashed hash_and_compare(std::string_view password, std::string_view hash) {
    // A locked ("*", "!..."), empty or non-crypt value never matches; crypt
    // would only echo a failure token for most of them anyway.
    if (hash.empty() || hash.front() == '*' || hash.front() == '!') return {Check::Bad};
    // crypt(3) reads C strings: a NUL would cut the password short and let
    // "secret\0anything" in as "secret".
    if (password.find('\0') != std::string_view::npos || hash.find('\0') != std::string_view::npos) return {Check::Bad};
    Scrubbed phrase{std::string(password)};
    std::string setting(hash);
    // struct crypt_data is ~32 KiB: on the heap, not a worker's stack.
    auto state = std::make_unique<CryptState>();
    errno = 0;
    const char* out = crypt_rn(phrase.text.c_str(), setting.c_str(), &state->data, sizeof state->data);
    if (out == nullptr) {
        // EINVAL/ENOSYS/EOPNOTSUPP: a hash it does not know; ERANGE: a
        // password over 512 bytes. Only a lack of memory is worth a retry.
        int err = errno;
        return {err == ENOMEM ? Check::TempFail : Check::Bad, err};
    }
    std::size_t len = std::strlen(out);
    if (out[0] == '*' || len != hash.size()) return {Check::Bad};
    return {CRYPTO_memcmp(out, hash.data(), len) == 0 ? Check::Ok : Check::Bad};
}

}  // namespace

Check check_password(std::string_view password, std::string_view hash) {
    return hash_and_compare(password, hash).check;
}

Check check_credentials(table::Table* table, std::string_view user, std::string_view password, std::string* error) {
    if (table == nullptr) {
        if (error) *error = "no credentials table";
        return Check::TempFail;
    }
    if (user.empty()) return Check::Bad;
    std::string value, lookup_error;
    switch (table->lookup(table::Service::Credentials, table::lowercase(user), &value, &lookup_error)) {
    case table::Result::TempFail:
        if (error) *error = "table " + table->name() + ": " + (lookup_error.empty() ? "lookup failed" : lookup_error);
        return Check::TempFail;
    case table::Result::NotFound: hash_and_compare(password, kDecoyHash); return Check::Bad;
    case table::Result::Found: break;
    }
    // `user:hash`: crypt hashes hold no colon, so the last one ends the name.
    std::string_view hash = trim(value);
    if (auto colon = hash.rfind(':'); colon != std::string_view::npos) hash.remove_prefix(colon + 1);
    Hashed result = hash_and_compare(password, hash);
    if (result.check == Check::TempFail && error) *error = std::string("crypt(3): ") + std::strerror(result.err);
    OPENSSL_cleanse(value.data(), value.size());
    return result.check;
}

Check check_system_account(std::string_view user, std::string_view password, std::string* error) {
    std::string name(user);
    std::vector<char> buf(16384);
    struct spwd sp, *sp_res = nullptr;
    std::string hash;
    if (getspnam_r(name.c_str(), &sp, buf.data(), buf.size(), &sp_res) == 0 && sp_res && sp_res->sp_pwdp) {
        hash = sp_res->sp_pwdp;
    } else {
        struct passwd pw, *pw_res = nullptr;
        if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &pw_res) != 0 || !pw_res) {
            // Unknown user: spend the time a check takes, say nothing different.
            check_password(password, "$6$postern$unknownunknownunknownunknownunknownunknownunknownunknownu");
            return Check::Bad;
        }
        hash = pw_res->pw_passwd ? pw_res->pw_passwd : "";
        if (hash == "x") {
            if (error) *error = "cannot read the shadow password database (not root?)";
            return Check::TempFail;
        }
    }
    return check_password(password, hash);
}

}  // namespace postern::auth
