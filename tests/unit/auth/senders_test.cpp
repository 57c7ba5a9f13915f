// The `senders` check: which MAIL FROM an authenticated user may use.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "auth/senders.hpp"

using namespace postern;
using auth::Check;

namespace {

class BrokenTable final : public table::Table {
public:
    BrokenTable() : Table("senders") {}
    table::Result lookup(table::Service, std::string_view, std::string*, std::string* error) override {
        *error = "connection refused";
        return table::Result::TempFail;
    }
    table::Result for_each(const std::function<bool(std::string_view, std::string_view)>&,
                           std::string* error) override {
        *error = "connection refused";
        return table::Result::TempFail;
    }
    bool iterable() const override { return false; }
    bool reload(std::string*) override { return true; }
};

std::unique_ptr<table::Table> senders() {
    return table::make_inline_table("senders",
                                    {
                                        {"bob", "bob@example.org, bob@example.net"},
                                        {"alice", " @example.com ,alice@*.example.org,, "},
                                        {"postmaster", "@"},
                                        {"carol", "carol"},
                                        {"dave", ""},
                                        {"eve", "eve+news@example.org"},
                                    },
                                    true);
}

}  // namespace

TEST_CASE("sender_allowed: truth table") {
    auto table = senders();
    struct Row {
        const char* user;
        const char* mail_from;
        Check expected;
    };
    const Row rows[] = {
        {"bob", "bob@example.org", Check::Ok},
        {"bob", "bob@example.net", Check::Ok},      // second item of the list
        {"bob", "<bob@example.org>", Check::Ok},    // brackets are taken off
        {"bob", "BOB@Example.ORG", Check::Ok},      // addresses compare without case
        {"BOB", "bob@example.org", Check::Ok},      // so do user names
        {"bob", "bob+tag@example.org", Check::Ok},  // a tag on the address is ignored
        {"bob", "alice@example.org", Check::Bad},
        {"bob", "bob@example.com", Check::Bad},
        {"bob", "bob@mail.example.org", Check::Bad},
        {"bob", "", Check::Bad},  // the null sender needs "@"
        {"bob", "<>", Check::Bad},
        {"alice", "anyone@example.com", Check::Ok},    // @domain, blanks around items trimmed
        {"alice", "alice@mx.example.org", Check::Ok},  // wildcard domain
        {"alice", "alice@example.org", Check::Bad},    // "*." needs a label
        {"alice", "anyone@example.org", Check::Bad},
        {"postmaster", "anything@anywhere.test", Check::Ok},
        {"postmaster", "<>", Check::Ok},  // the catch-all lets bounces through
        {"postmaster", "", Check::Ok},
        {"carol", "carol@example.org", Check::Ok},  // a bare user name, any domain
        {"carol", "carol@example.com", Check::Ok},
        {"carol", "caroline@example.org", Check::Bad},
        {"dave", "dave@example.org", Check::Bad},  // an empty list allows nothing
        {"eve", "eve+news@example.org", Check::Ok},
        {"eve", "eve@example.org", Check::Bad},  // a tag in the table must be there
        {"eve", "eve+other@example.org", Check::Bad},
        {"mallory", "mallory@example.org", Check::Bad},  // no entry for the user
        {"", "bob@example.org", Check::Bad},
    };
    for (const Row& row : rows) {
        INFO(row.user << " as " << row.mail_from);
        std::string error;
        CHECK(auth::sender_allowed(table.get(), row.user, row.mail_from, &error) == row.expected);
        CHECK(error.empty());
    }
}

TEST_CASE("sender_allowed: a failing table is a temporary failure that says why") {
    BrokenTable broken;
    std::string error;
    CHECK(auth::sender_allowed(&broken, "bob", "bob@example.org", &error) == Check::TempFail);
    CHECK(error == "table senders: connection refused");
    CHECK(auth::sender_allowed(nullptr, "bob", "bob@example.org", &error) == Check::TempFail);
    CHECK(error == "no senders table");
}

TEST_CASE("split_patterns: commas, blanks trimmed, empty items dropped") {
    using V = std::vector<std::string_view>;
    CHECK(auth::split_patterns("a, @b ,,c") == V{"a", "@b", "c"});
    CHECK(auth::split_patterns("  single  ") == V{"single"});
    CHECK(auth::split_patterns("\t@example.org,\tuser@x.test\t") == V{"@example.org", "user@x.test"});
    CHECK(auth::split_patterns("").empty());
    CHECK(auth::split_patterns(" , ,").empty());
}
