// Password checks against crypt(3) hashes, and credentials tables.
#include <catch2/catch.hpp>

#include <crypt.h>

#include <string>

#include "auth/credentials.hpp"

using namespace postern;
using auth::Check;
using namespace std::string_literals;

namespace {

// Made by Debian 12's OpenSMTPD 6.8.0p2 (package opensmtpd 6.8.0p2-4+b4):
// `smtpctl encrypt testpass`, i.e. its /usr/libexec/opensmtpd/encrypt.
const std::string kSmtpctlHash =
    "$6$BEdlrMBHmt6UUO9y$s0HJPs53.LpoxTA8RCf3zew167aMg/2HfMixBhO61RermayYgPsGzWXHaWuK8tfkRQOc/RdD7E5bkxFM3H.uW0";

// A fresh hash of `password` with the method named by `prefix`.
std::string make_hash(const char* prefix, unsigned long cost, const std::string& password) {
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    REQUIRE(crypt_gensalt_rn(prefix, cost, nullptr, 0, setting, sizeof setting) != nullptr);
    crypt_data data{};
    const char* hash = crypt_rn(password.c_str(), setting, &data, sizeof data);
    REQUIRE(hash != nullptr);
    std::string out(hash);
    REQUIRE(out.starts_with(prefix));
    return out;
}

// A table whose backend is down.
class BrokenTable final : public table::Table {
public:
    BrokenTable() : Table("creds") {}
    table::Result lookup(table::Service, std::string_view, std::string*, std::string* error) override {
        *error = "database is locked";
        return table::Result::TempFail;
    }
    table::Result for_each(const std::function<bool(std::string_view, std::string_view)>&,
                           std::string* error) override {
        *error = "database is locked";
        return table::Result::TempFail;
    }
    bool iterable() const override { return false; }
    bool reload(std::string*) override { return true; }
};

}  // namespace

TEST_CASE("check_password: the hash smtpctl encrypt made on Debian 12") {
    CHECK(auth::check_password("testpass", kSmtpctlHash) == Check::Ok);
    CHECK(auth::check_password("testpasS", kSmtpctlHash) == Check::Bad);
    CHECK(auth::check_password("testpas", kSmtpctlHash) == Check::Bad);
    CHECK(auth::check_password("testpass ", kSmtpctlHash) == Check::Bad);
    CHECK(auth::check_password("", kSmtpctlHash) == Check::Bad);
}

TEST_CASE("check_password: every method smtpctl may write") {
    struct Method {
        const char* prefix;
        unsigned long cost;
    };
    // Costs kept low where the method has one, so the test stays fast.
    for (auto [prefix, cost] : {Method{"$6$", 0}, Method{"$5$", 0}, Method{"$2b$", 4}, Method{"$y$", 0}}) {
        INFO(prefix);
        std::string hash = make_hash(prefix, cost, "correct horse");
        CHECK(auth::check_password("correct horse", hash) == Check::Ok);
        CHECK(auth::check_password("correct horsE", hash) == Check::Bad);
        CHECK(auth::check_password("wrong", hash) == Check::Bad);
    }
}

TEST_CASE("check_password: locked, empty and malformed hashes never match") {
    CHECK(auth::check_password("testpass", "*") == Check::Bad);
    CHECK(auth::check_password("testpass", "") == Check::Bad);
    CHECK(auth::check_password("", "") == Check::Bad);
    CHECK(auth::check_password("testpass", "!") == Check::Bad);
    CHECK(auth::check_password("testpass", "!" + kSmtpctlHash) == Check::Bad);  // a locked account
    CHECK(auth::check_password("testpass", "*" + kSmtpctlHash) == Check::Bad);
    CHECK(auth::check_password("testpass", kSmtpctlHash.substr(0, 40)) == Check::Bad);  // cut short
    CHECK(auth::check_password("testpass", kSmtpctlHash + "x") == Check::Bad);          // trailing bytes
    CHECK(auth::check_password("testpass", " " + kSmtpctlHash) == Check::Bad);
    CHECK(auth::check_password("testpass", "$9$nosuchmethod$abc") == Check::Bad);
    CHECK(auth::check_password("testpass", "$6$") == Check::Bad);
    CHECK(auth::check_password("testpass", "testpass") == Check::Bad);  // a cleartext value is no hash
}

TEST_CASE("check_password: NUL in the password and over-long passwords are refused") {
    // crypt(3) would stop at the NUL and see "testpass".
    CHECK(auth::check_password("testpass\0junk"s, kSmtpctlHash) == Check::Bad);
    std::string long_password(600, 'p');
    std::string hash = make_hash("$6$", 0, std::string(500, 'p'));
    CHECK(auth::check_password(std::string(500, 'p'), hash) == Check::Ok);
    CHECK(auth::check_password(long_password, hash) == Check::Bad);
}

TEST_CASE("check_credentials: hash and user:hash values in an inline table") {
    auto creds = table::make_inline_table(
        "creds", {{"bob", kSmtpctlHash}, {"alice", "alice:" + kSmtpctlHash}, {"carol", "*"}, {"dave", ""}}, true);
    std::string error;
    CHECK(auth::check_credentials(creds.get(), "bob", "testpass", &error) == Check::Ok);
    CHECK(auth::check_credentials(creds.get(), "alice", "testpass", &error) == Check::Ok);
    CHECK(auth::check_credentials(creds.get(), "bob", "wrong", &error) == Check::Bad);
    CHECK(auth::check_credentials(creds.get(), "alice", "TESTPASS", &error) == Check::Bad);
    CHECK(auth::check_credentials(creds.get(), "carol", "*", &error) == Check::Bad);
    CHECK(auth::check_credentials(creds.get(), "dave", "", &error) == Check::Bad);
    CHECK(error.empty());
}

TEST_CASE("check_credentials: user names fold to lower case, passwords do not") {
    auto creds = table::make_inline_table("creds", {{"bob", kSmtpctlHash}}, true);
    std::string error;
    CHECK(auth::check_credentials(creds.get(), "BOB", "testpass", &error) == Check::Ok);
    CHECK(auth::check_credentials(creds.get(), "Bob", "testpass", &error) == Check::Ok);
    CHECK(auth::check_credentials(creds.get(), "Bob", "Testpass", &error) == Check::Bad);
}

TEST_CASE("check_credentials: unknown and empty users are refused") {
    auto creds = table::make_inline_table("creds", {{"bob", kSmtpctlHash}}, true);
    std::string error;
    CHECK(auth::check_credentials(creds.get(), "mallory", "testpass", &error) == Check::Bad);
    CHECK(auth::check_credentials(creds.get(), "", "testpass", &error) == Check::Bad);
    CHECK(auth::check_credentials(creds.get(), "bob2", "testpass", &error) == Check::Bad);
    CHECK(error.empty());
}

TEST_CASE("check_credentials: a failing table is a temporary failure that says why") {
    BrokenTable broken;
    std::string error;
    CHECK(auth::check_credentials(&broken, "bob", "testpass", &error) == Check::TempFail);
    CHECK(error == "table creds: database is locked");
    error.clear();
    CHECK(auth::check_credentials(nullptr, "bob", "testpass", &error) == Check::TempFail);
    CHECK(error == "no credentials table");
    CHECK(auth::check_credentials(&broken, "bob", "testpass", nullptr) == Check::TempFail);  // error optional
}
