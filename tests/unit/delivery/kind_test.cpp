// Delivery kinds: each method's kind, and what the kind decides.
#include <catch2/catch.hpp>

#include "delivery/kind.hpp"

using namespace postern::delivery;
using std::chrono::minutes;

TEST_CASE("each method maps to its kind") {
    CHECK(kind_of("maildir") == Kind::Local);
    CHECK(kind_of("mbox") == Kind::Local);
    CHECK(kind_of("mda") == Kind::Command);
    CHECK(kind_of("lmtp") == Kind::Lmtp);
    CHECK(kind_of("relay") == Kind::Relay);
    // A method the core does not know is delivered locally by the plugin of that name.
    CHECK(kind_of("") == Kind::Local);
    CHECK(kind_of("Relay") == Kind::Local);
    static_assert(kind_of(method::kRelay) == Kind::Relay, "usable at compile time");
}

TEST_CASE("a kind carries its batch limit, agent timeout, pool and path use") {
    KindInfo local = info("maildir");
    CHECK((local.kind == Kind::Local && local.pool == Pool::Local));
    CHECK(local.batch_limit == 32);
    CHECK(local.timeout == minutes(10));
    CHECK(local.path_use == FormatUse::Path);

    KindInfo command = info("mda");
    CHECK(command.pool == Pool::Local);
    CHECK(command.batch_limit == 1);  // each command may take minutes: one by one
    CHECK(command.timeout == minutes(10));
    CHECK(command.path_use == FormatUse::Command);

    KindInfo lmtp = info("lmtp");
    CHECK((lmtp.pool == Pool::Local && lmtp.batch_limit == 32 && lmtp.path_use == FormatUse::Path));

    KindInfo relay = info("relay");
    CHECK(relay.pool == Pool::Relay);
    CHECK(relay.batch_limit == 32);
    CHECK(relay.timeout == minutes(60));
    CHECK_FALSE(relay.path_use.has_value());  // a relay's path is its route, not a template
}

TEST_CASE("pools have posternctl's names") {
    CHECK(pool_name(Pool::Local) == "mda");
    CHECK(pool_name(Pool::Relay) == "mta");
    CHECK(pool_named("mda") == Pool::Local);
    CHECK(pool_named("mta") == Pool::Relay);
    CHECK_FALSE(pool_named("smtp").has_value());
    for (Pool p : {Pool::Local, Pool::Relay}) CHECK(pool_named(pool_name(p)) == p);
}
