// Unit tests of the Sender Rewriting Scheme (core/relay/srs.cpp): known-answer
// vectors computed outside this code, round trips through SRS0 and SRS1 over
// several forwarders, case handling, key rotation, timestamps (expiry, clock
// skew, the wrap at 1024 days), and refusals of malformed or foreign input.

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

#include "relay/srs.hpp"

using namespace postern::relay;

namespace {

// 2023-11-14T22:13:20Z: day 19675 since the epoch, slot 19675 % 1024 = 219,
// which is "G3" in base32 (6 * 32 + 27).
constexpr std::int64_t kNow = 1700000000;
constexpr std::int64_t kDay = 86400;
constexpr int kTtl = 4;  // OpenSMTPD's default

const SrsKeys kKeys{"secret", ""};

std::string forward(std::string_view sender, std::string_view domain, const SrsKeys& keys = kKeys,
                    std::int64_t now = kNow) {
    std::string err;
    auto out = srs_forward(sender, domain, keys, now, &err);
    INFO("sender: " << sender << " error: " << err);
    REQUIRE(out.has_value());
    CHECK(err.empty());
    return *out;
}

std::string forward_error(std::string_view sender, std::string_view domain, const SrsKeys& keys = kKeys) {
    std::string err;
    auto out = srs_forward(sender, domain, keys, kNow, &err);
    INFO("sender: " << sender);
    CHECK_FALSE(out.has_value());
    return err;
}

SrsResult reverse(std::string_view address, std::string* original, const SrsKeys& keys = kKeys, std::int64_t now = kNow,
                  int ttl = kTtl) {
    return srs_reverse(address, keys, now, ttl, original);
}

std::string reversed(std::string_view address, const SrsKeys& keys = kKeys, std::int64_t now = kNow) {
    std::string original;
    INFO("address: " << address);
    REQUIRE(reverse(address, &original, keys, now) == SrsResult::Ok);
    return original;
}

SrsResult status(std::string_view address) {
    std::string original = "untouched";
    SrsResult r = reverse(address, &original);
    if (r != SrsResult::Ok) CHECK(original == "untouched");  // written only on Ok
    return r;
}

}  // namespace

TEST_CASE("srs: SRS0 known-answer vector", "[relay][srs]") {
    // HHHH computed independently:
    // python3 -c 'import
    // hmac,hashlib,base64;print(base64.b64encode(hmac.new(b"secret",("G3"+"example.org"+"alice").lower().encode(),hashlib.sha1).digest())[:4].decode())'
    // -> sEw5
    CHECK(forward("alice@example.org", "fwd.example") == "SRS0=sEw5=G3=example.org=alice@fwd.example");
    CHECK(reversed("SRS0=sEw5=G3=example.org=alice@fwd.example") == "alice@example.org");
}

TEST_CASE("srs: SRS1 known-answer vector", "[relay][srs]") {
    // The hash covers the first forwarder's domain and the text after "SRS0":
    // python3 -c 'import
    // hmac,hashlib,base64;print(base64.b64encode(hmac.new(b"secret",("fwd.example"+"=sEw5=G3=example.org=alice").lower().encode(),hashlib.sha1).digest())[:4].decode())'
    // -> XHW+  (a '+' in the hash, which must survive as it is)
    CHECK(forward("SRS0=sEw5=G3=example.org=alice@fwd.example", "second.example") ==
          "SRS1=XHW+=fwd.example==sEw5=G3=example.org=alice@second.example");
    CHECK(reversed("SRS1=XHW+=fwd.example==sEw5=G3=example.org=alice@second.example") ==
          "SRS0=sEw5=G3=example.org=alice@fwd.example");
}

TEST_CASE("srs: SRS0 round trip", "[relay][srs]") {
    for (std::string_view sender : {"bob@example.net", "a.b-c_d@sub.example.co.uk", "x@[192.0.2.1]"}) {
        std::string srs = forward(sender, "fwd.example");
        CHECK(srs.rfind("SRS0=", 0) == 0);
        CHECK(srs.ends_with("@fwd.example"));
        CHECK(reversed(srs) == sender);
    }
}

TEST_CASE("srs: SRS1 round trip over three forwarders, each with its own key", "[relay][srs]") {
    const SrsKeys first{"key-one", ""}, second{"key-two", ""}, third{"key-three", ""};
    std::string srs0 = forward("carol@origin.example", "first.example", first);
    std::string srs1 = forward(srs0, "second.example", second);
    CHECK(srs1.rfind("SRS1=", 0) == 0);
    CHECK(srs1.find("=first.example==") != std::string::npos);
    CHECK(srs1.ends_with("@second.example"));

    // The third forwarder re-signs around the same inner part: no SRS2.
    std::string again = forward(srs1, "third.example", third);
    CHECK(again.rfind("SRS1=", 0) == 0);
    CHECK(again.substr(9) != srs1.substr(9));  // another domain at the end
    CHECK(again.substr(9, again.find('@') - 9) == srs1.substr(9, srs1.find('@') - 9));
    CHECK(again.ends_with("@third.example"));

    // Each SRS1 bounce goes straight back to the first forwarder...
    CHECK(reversed(srs1, second) == srs0);
    CHECK(reversed(again, third) == srs0);
    // ...which alone can check the inner hash and find the original sender.
    CHECK(reversed(srs0, first) == "carol@origin.example");
    std::string original;
    CHECK(reverse(srs0, &original, second) == SrsResult::BadHash);
    CHECK(reverse(srs1, &original, third) == SrsResult::BadHash);
}

TEST_CASE("srs: the hash is computed over lowercase and compared without case", "[relay][srs]") {
    std::string lower = forward("alice@example.org", "fwd.example");
    std::string mixed = forward("Alice@EXAMPLE.org", "fwd.example");
    CHECK(mixed == "SRS0=sEw5=G3=EXAMPLE.org=Alice@fwd.example");
    CHECK(mixed.substr(0, 9) == lower.substr(0, 9));

    // A relay on the way smashed the case of the whole address: still ours,
    // and the original comes back as it arrived.
    CHECK(reversed("SRS0=SEW5=G3=EXAMPLE.ORG=ALICE@FWD.EXAMPLE") == "ALICE@EXAMPLE.ORG");
    CHECK(reversed("srs0=sew5=g3=example.org=alice@fwd.example") == "alice@example.org");
    CHECK(reversed("srs1=xhw+=FWD.example==SEW5=g3=example.org=ALICE@second.example") ==
          "SRS0=SEW5=g3=example.org=ALICE@FWD.example");
}

TEST_CASE("srs: a wrong key is a bad hash, the backup key verifies", "[relay][srs]") {
    const std::string srs = "SRS0=sEw5=G3=example.org=alice@fwd.example";
    std::string original;
    CHECK(reverse(srs, &original, SrsKeys{"other", ""}) == SrsResult::BadHash);
    CHECK(reverse(srs, &original, SrsKeys{"", ""}) == SrsResult::BadHash);
    // Key rotation: the old key stays as backup while its addresses live.
    CHECK(reversed(srs, SrsKeys{"new-key", "secret"}) == "alice@example.org");
    // The backup key never signs.
    std::string signed_new = forward("alice@example.org", "fwd.example", SrsKeys{"new-key", "secret"});
    CHECK(signed_new != srs);
    CHECK(reverse(signed_new, &original, SrsKeys{"secret", ""}) == SrsResult::BadHash);
    CHECK(reversed(signed_new, SrsKeys{"new-key", ""}) == "alice@example.org");
}

TEST_CASE("srs: any change to a signed field is a bad hash", "[relay][srs]") {
    CHECK(status("SRS0=sEw5=G3=example.org=mallory@fwd.example") == SrsResult::BadHash);
    CHECK(status("SRS0=sEw5=G3=evil.example=alice@fwd.example") == SrsResult::BadHash);
    CHECK(status("SRS0=sEw5=G4=example.org=alice@fwd.example") == SrsResult::BadHash);
    CHECK(status("SRS0=sEw6=G3=example.org=alice@fwd.example") == SrsResult::BadHash);
    CHECK(status("SRS0=sEw=G3=example.org=alice@fwd.example") == SrsResult::BadHash);
    CHECK(status("SRS0=sEw5x=G3=example.org=alice@fwd.example") == SrsResult::BadHash);
    CHECK(status("SRS1=XHW+=evil.example==sEw5=G3=example.org=alice@second.example") == SrsResult::BadHash);
}

TEST_CASE("srs: timestamps older than the ttl or ahead by more than a day are expired", "[relay][srs]") {
    const std::string srs = forward("alice@example.org", "fwd.example");
    std::string original;
    CHECK(reverse(srs, &original, kKeys, kNow + 5 * kDay, 4) == SrsResult::Expired);
    CHECK(reverse(srs, &original, kKeys, kNow + 4 * kDay, 4) == SrsResult::Ok);
    CHECK(reverse(srs, &original, kKeys, kNow + 0 * kDay, 0) == SrsResult::Ok);
    CHECK(reverse(srs, &original, kKeys, kNow + 1 * kDay, 0) == SrsResult::Expired);
    // Our clock behind the signer's by one day is tolerated, by two is not.
    CHECK(reverse(srs, &original, kKeys, kNow - 1 * kDay, 4) == SrsResult::Ok);
    CHECK(reverse(srs, &original, kKeys, kNow - 2 * kDay, 4) == SrsResult::Expired);
    // A negative ttl reads as 0; a huge one still leaves the future apart.
    CHECK(reverse(srs, &original, kKeys, kNow, -3) == SrsResult::Ok);
    CHECK(reverse(srs, &original, kKeys, kNow - 2 * kDay, 100000) == SrsResult::Expired);
    CHECK(reverse(srs, &original, kKeys, kNow + 1000 * kDay, 100000) == SrsResult::Ok);
    // SRS1 has no timestamp: the first forwarder checks the inner one.
    CHECK(reverse(forward(srs, "second.example"), &original, kKeys, kNow + 500 * kDay, 4) == SrsResult::Ok);
}

TEST_CASE("srs: the timestamp wraps at 1024 days", "[relay][srs]") {
    const std::int64_t last_slot = (1024 * 20 + 1023) * kDay + 3600;  // slot 1023
    std::string srs = forward("alice@example.org", "fwd.example", kKeys, last_slot);
    CHECK(srs.find("=77=") != std::string::npos);
    CHECK(reversed(srs, kKeys, last_slot + 2 * kDay) == "alice@example.org");  // slot 1
    std::string original;
    CHECK(reverse(srs, &original, kKeys, last_slot + 5 * kDay) == SrsResult::Expired);

    std::string first = forward("alice@example.org", "fwd.example", kKeys, last_slot + kDay);
    CHECK(first.find("=AA=") != std::string::npos);                   // slot 0
    CHECK(reversed(first, kKeys, last_slot) == "alice@example.org");  // a day ahead, across the wrap
    // Before the epoch the days floor, so the slot stays in range.
    std::string old = forward("alice@example.org", "fwd.example", kKeys, -1);
    CHECK(old.find("=77=") != std::string::npos);
    CHECK(reversed(old, kKeys, 0) == "alice@example.org");
}

TEST_CASE("srs: malformed SRS addresses", "[relay][srs]") {
    CHECK(status("SRS0=sEw5=G3=example.org@fwd.example") == SrsResult::Malformed);   // no local field
    CHECK(status("SRS0=sEw5=G3=example.org=@fwd.example") == SrsResult::Malformed);  // empty local part
    CHECK(status("SRS0=sEw5=G3==alice@fwd.example") == SrsResult::Malformed);        // empty domain
    CHECK(status("SRS0=sEw5=G3@fwd.example") == SrsResult::Malformed);
    CHECK(status("SRS0=sEw5@fwd.example") == SrsResult::Malformed);
    CHECK(status("SRS0=@fwd.example") == SrsResult::Malformed);
    CHECK(status("SRS0==G3=example.org=alice@fwd.example") == SrsResult::Malformed);      // empty hash
    CHECK(status("SRS0=sEw5=G9=example.org=alice@fwd.example") == SrsResult::Malformed);  // not base32
    CHECK(status("SRS0=sEw5=G33=example.org=alice@fwd.example") == SrsResult::Malformed);
    CHECK(status("SRS0=sEw5==example.org=alice@fwd.example") == SrsResult::Malformed);
    CHECK(status("SRS0=sEw5=G3=example.org=alice") == SrsResult::Malformed);   // no '@'
    CHECK(status("SRS0=sEw5=G3=example.org=alice@") == SrsResult::Malformed);  // no domain
    CHECK(status("SRS1=XHW+=fwd.example@second.example") == SrsResult::Malformed);
    CHECK(status("SRS1=XHW+=fwd.example=@second.example") == SrsResult::Malformed);
    CHECK(status("SRS1=XHW+==sEw5=G3=example.org=alice@second.example") == SrsResult::Malformed);
    CHECK(status("SRS1==fwd.example==sEw5@second.example") == SrsResult::Malformed);
    CHECK(status("SRS1=XHW+=fwd.example=sEw5=G3@second.example") == SrsResult::Malformed);  // no inner separator
    std::string long_local = "SRS0=sEw5=G3=example.org=" + std::string(500, 'a') + "@fwd.example";
    CHECK(status(long_local) == SrsResult::Malformed);
}

TEST_CASE("srs: addresses that are not SRS", "[relay][srs]") {
    for (std::string_view a : {"alice@example.org", "", "SRS0", "SRS0@fwd.example", "SRS2=a=b=c=d@x",
                               "SRS0.x=y@fwd.example", "SRSX=a@b", "srs", "xSRS0=a=b=c=d@x", "=SRS0=a=b=c=d@x"})
        CHECK(status(a) == SrsResult::NotSrs);
    CHECK(status(std::string(600, 'a') + "@example.org") == SrsResult::NotSrs);
}

TEST_CASE("srs: the other separators after SRS0 and SRS1 are accepted and kept", "[relay][srs]") {
    // The SRS0 hash does not cover the separator; the SRS1 hash does.
    CHECK(reversed("SRS0+sEw5=G3=example.org=alice@fwd.example") == "alice@example.org");
    CHECK(reversed("SRS0-sEw5=G3=example.org=alice@fwd.example") == "alice@example.org");
    std::string srs1 = forward("SRS0+sEw5=G3=example.org=alice@fwd.example", "second.example");
    CHECK(srs1.find("=fwd.example=+sEw5=") != std::string::npos);
    CHECK(reversed(srs1) == "SRS0+sEw5=G3=example.org=alice@fwd.example");
    std::string resigned = forward("SRS1-" + srs1.substr(5, srs1.find('@') - 5) + "@x.example", "third.example");
    CHECK(reversed(resigned) == "SRS0+sEw5=G3=example.org=alice@fwd.example");
}

TEST_CASE("srs: '=', '+' and '@' in local parts survive the round trip", "[relay][srs]") {
    for (std::string_view sender : {"a=b@example.org", "user+tag@example.org", "==@example.org", "\"a@b\"@example.org",
                                    "SRS0@example.org", "x=SRS0=y@example.org"}) {
        std::string srs = forward(sender, "fwd.example");
        CHECK(srs.rfind("SRS0=", 0) == 0);
        CHECK(reversed(srs) == sender);
    }
    // An SRS1-looking sender that does not parse is wrapped as an ordinary one.
    std::string srs = forward("SRS1=junk@example.org", "fwd.example");
    CHECK(srs.rfind("SRS0=", 0) == 0);
    CHECK(reversed(srs) == "SRS1=junk@example.org");
}

TEST_CASE("srs: the null sender and our own senders are not rewritten", "[relay][srs]") {
    CHECK(forward("", "fwd.example").empty());
    CHECK(forward("alice@fwd.example", "fwd.example") == "alice@fwd.example");
    CHECK(forward("alice@FWD.Example", "fwd.example") == "alice@FWD.Example");
    CHECK(forward("SRS0=sEw5=G3=example.org=alice@fwd.example", "fwd.example") ==
          "SRS0=sEw5=G3=example.org=alice@fwd.example");
}

TEST_CASE("srs: senders and settings that cannot be rewritten", "[relay][srs]") {
    CHECK(forward_error("alice", "fwd.example") == "no '@' in sender");
    CHECK(forward_error("@example.org", "fwd.example") == "empty local part in sender");
    CHECK(forward_error("alice@", "fwd.example") == "empty domain in sender");
    CHECK(forward_error("alice@ex=ample.org", "fwd.example") == "'=' in sender domain");
    CHECK(forward_error("alice@example.org", "fwd.example", SrsKeys{"", "secret"}) == "empty SRS key");
    CHECK(forward_error("alice@example.org", "") == "invalid SRS domain \"\"");
    CHECK(forward_error("alice@example.org", "a=b") == "invalid SRS domain \"a=b\"");
    CHECK(forward_error(std::string(510, 'a') + "@example.org", "fwd.example") == "sender longer than 512 bytes");
    // Fits before, not after: the result must stay reversible.
    CHECK(forward_error(std::string(480, 'a') + "@example.org", "fwd.example") ==
          "rewritten sender longer than 512 bytes");
    std::string err;
    CHECK_FALSE(srs_forward("alice", "fwd.example", kKeys, kNow, nullptr).has_value());  // no error sink
    CHECK(srs_forward("", "", SrsKeys{}, kNow, &err) == std::string());                  // null sender first
}
