// Unit tests of signing (filters/dkim/signer) and verification
// (filters/dkim/verify, auth_results): round trips for RSA 2048 and Ed25519
// under every canonicalization pair, the field's layout, what breaks a
// signature and what does not, x=, each verdict and its reason, the
// Authentication-Results field, and RFC 8463 Appendix A's signed message
// (both of its signatures verify, and our Ed25519 signature of it is the
// RFC's, byte for byte: Ed25519 is deterministic).

#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "dkim/auth_results.hpp"
#include "dkim/record.hpp"
#include "dkim/signer.hpp"
#include "dkim/verify.hpp"
#include "support.hpp"

using namespace postern::dkim;
using namespace postern::dkim::test;

namespace {

constexpr std::int64_t kNow = 1700000000;

using Dns = std::map<std::string, std::string>;

BodyHash body_hash(const std::vector<std::string>& body, Canon c) {
    BodyHasher h(c);
    for (const std::string& l : body) h.line(l);
    return h.finish();
}

std::vector<std::string> sign_lines(std::string_view message, const PrivateKey& key, SignOptions o = {},
                                    Canon body = Canon::Relaxed, std::string_view domain = "example.org",
                                    std::string_view selector = "sel") {
    Message m = split_message(message);
    if (!o.timestamp) o.timestamp = kNow;
    auto lines = sign(m.fields, body_hash(m.body, body), {domain, selector, key}, o);
    REQUIRE(lines.ok());
    return lines.value();
}

std::string signed_message(std::string_view message, const PrivateKey& key, SignOptions o = {},
                           Canon body = Canon::Relaxed) {
    return prepend_field(sign_lines(message, key, std::move(o), body), message);
}

std::vector<Verdict> verify_text(std::string_view text, const Dns& dns, std::int64_t now = kNow) {
    Message m = split_message(text);
    MessageVerifier v(m.fields, {8, now});
    for (const std::string& l : m.body) v.body_line(l);
    return v.finish([&](std::string_view name) {
        auto it = dns.find(std::string(name));
        if (it == dns.end()) return KeyAnswer{KeyAnswer::Status::NotFound, ""};
        return KeyAnswer{KeyAnswer::Status::Found, it->second};
    });
}

Dns dns_for(const PrivateKey& key, std::string name = "sel._domainkey.example.org") {
    return {{std::move(name), key_record(key.pkey.get())}};
}

Verdict one(const std::vector<Verdict>& v) {
    REQUIRE(v.size() == 1);
    return v[0];
}

std::string replace(std::string text, std::string_view from, std::string_view to) {
    std::size_t at = text.find(from);
    REQUIRE(at != std::string::npos);
    return text.replace(at, from.size(), to);
}

std::size_t columns(const std::string& line) {
    std::size_t n = 0;
    for (char c : line) n = c == '\t' ? (n / 8 + 1) * 8 : n + 1;
    return n;
}

const std::string kFootballEd = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
const std::string kFootballRsa =
    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/"
    "J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+"
    "2kryOTIKT+l/K4w3QIDAQAB";

// RFC 8463 A.3, the message as signed (both signatures relaxed/relaxed).
std::string rfc8463_message() {
    return crlf("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\n"
                " d=football.example.com; i=@football.example.com;\n"
                " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\n"
                " subject : date : message-id : from : subject : date;\n"
                " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\n"
                " b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\n"
                " Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\n"
                "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\n"
                " d=football.example.com; i=@football.example.com;\n"
                " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\n"
                " date : message-id : from : subject : date;\n"
                " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\n"
                " b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\n"
                " DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\n"
                " dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\n") +
           std::string(joe_message());
}

const Dns kFootball = {{"brisbane._domainkey.football.example.com", kFootballEd},
                       {"test._domainkey.football.example.com", kFootballRsa}};

}  // namespace

TEST_CASE("sign: RSA 2048 and Ed25519 round trips under every canonicalization", "[dkim][sign]") {
    for (const PrivateKey* key : {&rsa2048(), &ed25519()}) {
        for (Canon hc : {Canon::Relaxed, Canon::Simple}) {
            for (Canon bc : {Canon::Relaxed, Canon::Simple}) {
                SignOptions o;
                o.header_canon = hc;
                std::string text = signed_message(joe_message(), *key, o, bc);
                INFO(text);
                Verdict v = one(verify_text(text, dns_for(*key)));
                CHECK(v.outcome == Outcome::Pass);
                CHECK(v.reason.empty());
                CHECK(v.domain == "example.org");
                CHECK(v.selector == "sel");
                CHECK(text.find("c=" + std::string(canon_name(hc)) + "/" + std::string(canon_name(bc)) + ";") !=
                      std::string::npos);
            }
        }
    }
}

TEST_CASE("sign: the field's tags and layout", "[dkim][sign]") {
    SignOptions o;
    o.expire_after = 86400;
    std::vector<std::string> lines = sign_lines(joe_message(), rsa2048(), o);
    REQUIRE(lines.size() >= 3);
    CHECK(lines[0].starts_with("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel;"));
    for (std::size_t i = 0; i < lines.size(); ++i) {
        INFO(lines[i]);
        CHECK(columns(lines[i]) < 78);
        CHECK(lines[i].find_first_of("\r\n") == std::string::npos);
        if (i > 0) CHECK(lines[i].starts_with("\t"));
    }
    Message m = split_message(prepend_field(lines, joe_message()));
    REQUIRE(m.fields[0].name == "DKIM-Signature");
    auto sig = parse_signature(m.fields[0].value);
    REQUIRE(sig.ok());
    CHECK(sig.value().timestamp == kNow);
    CHECK(sig.value().expiry == kNow + 86400);
    // Only the fields present, From once more than present, in list order.
    CHECK(sig.value().headers == std::vector<std::string>{"from", "to", "subject", "date", "message-id", "from"});
    CHECK(base64_encode(sig.value().body_hash) == "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
    CHECK(sig.value().signature.size() == 256);
    CHECK(m.fields[0].value.find("; x=1700086400;") != std::string::npos);

    std::vector<std::string> ed = sign_lines(joe_message(), ed25519());
    CHECK(ed[0].find("a=ed25519-sha256;") != std::string::npos);
}

TEST_CASE("sign: every instance of a listed field is signed, options change the list", "[dkim][sign]") {
    std::string text = crlf(
        "Received: from a\nTo: a@example.net\nFrom: Joe <joe@example.org>\nTo: b@example.net\nX-Other: 1\n"
        "\nbody\n");
    SignOptions o;
    std::vector<std::string> lines = sign_lines(text, ed25519(), o);
    std::string joined;
    for (const std::string& l : lines) joined += l;
    CHECK(joined.find("h=from:to:to:from;") != std::string::npos);

    o.headers = {"X-Other", "Received", "Subject"};
    o.oversign = {"from", "subject"};
    lines = sign_lines(text, ed25519(), o);
    joined.clear();
    for (const std::string& l : lines) joined += l;
    // From always; Subject absent, so only oversigned.
    CHECK(joined.find("h=from:x-other:received:from:subject;") != std::string::npos);
    CHECK(one(verify_text(prepend_field(lines, text), dns_for(ed25519()))).outcome == Outcome::Pass);
}

TEST_CASE("sign: a message without From is not signed", "[dkim][sign]") {
    Message m = split_message(crlf("To: a@example.net\nSubject: x\n\nbody\n"));
    auto r = sign(m.fields, body_hash(m.body, Canon::Relaxed), {"example.org", "sel", rsa2048()});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().kind == SignError::Kind::NoFrom);
    Message good = split_message(joe_message());
    auto bad_id = sign(good.fields, body_hash(good.body, Canon::Relaxed), {"example.org;x=", "sel", rsa2048()});
    REQUIRE_FALSE(bad_id.ok());
    CHECK(bad_id.error().kind == SignError::Kind::BadIdentity);
}

TEST_CASE("sign: an empty body and a body of empty lines", "[dkim][sign]") {
    for (std::string_view body : {"", "\r\n\r\n\r\n"}) {
        std::string text = crlf("From: joe@example.org\nSubject: empty\n\n") + std::string(body);
        for (Canon bc : {Canon::Relaxed, Canon::Simple}) {
            std::string s = signed_message(text, ed25519(), {}, bc);
            CHECK(one(verify_text(s, dns_for(ed25519()))).outcome == Outcome::Pass);
        }
    }
}

TEST_CASE("verify: what breaks a signature and what does not", "[dkim][verify]") {
    const Dns dns = dns_for(rsa2048());
    std::string relaxed = signed_message(joe_message(), rsa2048());
    SignOptions simple_opts;
    simple_opts.header_canon = Canon::Simple;
    std::string simple = signed_message(joe_message(), rsa2048(), simple_opts, Canon::Simple);

    Verdict body = one(verify_text(replace(relaxed, "We lost", "We won"), dns));
    CHECK(body.outcome == Outcome::Fail);
    CHECK(body.reason == "body hash did not verify");
    Verdict header = one(verify_text(replace(relaxed, "Is dinner ready?", "Is lunch ready?"), dns));
    CHECK(header.outcome == Outcome::Fail);
    CHECK(header.reason == "signature did not verify");

    // White space changes: relaxed does not mind, simple does.
    std::string spaced_subject = "Subject:   Is dinner \t ready?  ";
    CHECK(one(verify_text(replace(relaxed, "Subject: Is dinner ready?", spaced_subject), dns)).outcome ==
          Outcome::Pass);
    CHECK(one(verify_text(replace(relaxed, "hungry yet?", "hungry   yet? \t"), dns)).outcome == Outcome::Pass);
    CHECK(one(verify_text(replace(relaxed, "Joe.\r\n", "Joe. \r\n \r\n\t\r\n"), dns)).outcome == Outcome::Pass);
    CHECK(one(verify_text(replace(relaxed, "\r\n\r\nJoe.", "\r\n\r\n\r\nJoe."), dns)).outcome == Outcome::Fail);
    CHECK(one(verify_text(replace(simple, "Subject: Is dinner ready?", spaced_subject), dns)).outcome == Outcome::Fail);
    CHECK(one(verify_text(replace(simple, "hungry yet?", "hungry yet? "), dns)).outcome == Outcome::Fail);
    // Trailing empty lines added in transit are fine even with simple.
    CHECK(one(verify_text(simple + "\r\n\r\n", dns)).outcome == Outcome::Pass);

    // A field not signed may be added; a From may not (oversigned).
    CHECK(one(verify_text(replace(relaxed, "From: Joe", "X-Mailer: x\r\nFrom: Joe"), dns)).outcome == Outcome::Pass);
    CHECK(one(verify_text(replace(relaxed, "From: Joe", "From: Bank <a@bank.example>\r\nFrom: Joe"), dns)).outcome ==
          Outcome::Fail);
    CHECK(one(verify_text(relaxed + "", dns)).outcome == Outcome::Pass);
}

TEST_CASE("verify: x= expiry", "[dkim][verify]") {
    SignOptions o;
    o.expire_after = 100;
    std::string text = signed_message(joe_message(), ed25519(), o);
    CHECK(one(verify_text(text, dns_for(ed25519()), kNow + 100)).outcome == Outcome::Pass);
    Verdict late = one(verify_text(text, dns_for(ed25519()), kNow + 101));
    CHECK(late.outcome == Outcome::Fail);
    CHECK(late.reason == "signature expired");
}

TEST_CASE("verify: keys missing, failing, revoked, of the wrong type, in testing", "[dkim][verify]") {
    std::string text = signed_message(joe_message(), rsa2048());
    Verdict none = one(verify_text(text, {}));
    CHECK(none.outcome == Outcome::Permerror);
    CHECK(none.reason == "no key for signature");

    Message m = split_message(text);
    MessageVerifier v(m.fields, {8, kNow});
    CHECK(v.key_names() == std::vector<std::string>{"sel._domainkey.example.org"});
    for (const std::string& l : m.body) v.body_line(l);
    Verdict temp = one(v.finish([](std::string_view) { return KeyAnswer{KeyAnswer::Status::TempFail, ""}; }));
    CHECK(temp.outcome == Outcome::Temperror);
    CHECK(temp.reason == "key lookup failed");

    Verdict revoked = one(verify_text(text, {{"sel._domainkey.example.org", "v=DKIM1; k=rsa; p="}}));
    CHECK(revoked.outcome == Outcome::Permerror);
    CHECK(revoked.reason == "key revoked (empty p=)");

    Verdict wrong = one(verify_text(text, dns_for(ed25519())));
    CHECK(wrong.outcome == Outcome::Permerror);
    CHECK(wrong.reason == "key type k=ed25519 does not match a=rsa-sha256");

    Verdict other = one(verify_text(text, {{"sel._domainkey.example.org", key_record(make_rsa(1024).get())}}));
    CHECK(other.outcome == Outcome::Fail);

    std::string testing = key_record(rsa2048().pkey.get()) + "; t=y";
    CHECK(one(verify_text(text, {{"sel._domainkey.example.org", testing}})).outcome == Outcome::Pass);
    Verdict soft = one(verify_text(replace(text, "We lost", "We won"), {{"sel._domainkey.example.org", testing}}));
    CHECK(soft.outcome == Outcome::Neutral);
    CHECK(soft.reason == "body hash did not verify");
}

TEST_CASE("verify: malformed signature fields", "[dkim][verify]") {
    auto kind = [](std::string_view value) {
        auto s = parse_signature(value);
        REQUIRE_FALSE(s.ok());
        return s.error().kind;
    };
    using K = SignatureError::Kind;
    const std::string rest = "d=example.org; s=sel; h=from:to; bh=AAAA; b=AAAA";
    CHECK(parse_signature("v=1; a=rsa-sha256; " + rest).ok());
    CHECK(kind("v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA") == K::MissingTag);
    CHECK(kind("v=2; a=rsa-sha256; " + rest) == K::BadVersion);
    CHECK(kind("v=1; a=rsa-sha1; " + rest) == K::Sha1);
    CHECK(kind("v=1; a=rsa-md5; " + rest) == K::BadAlgorithm);
    CHECK(kind("v=1; a=rsa-sha256; c=loose/simple; " + rest) == K::BadCanon);
    CHECK(kind("v=1; a=rsa-sha256; d=exa mple.org; s=sel; h=from; bh=AAAA; b=AAAA") == K::BadDomain);
    CHECK(kind("v=1; a=rsa-sha256; d=example.org; s=sel; h=to:subject; bh=AAAA; b=AAAA") == K::FromNotSigned);
    CHECK(kind("v=1; a=rsa-sha256; d=example.org; s=sel; h=from::to; bh=AAAA; b=AAAA") == K::Syntax);
    CHECK(kind("v=1; a=rsa-sha256; " + rest + "; i=joe@example.com") == K::BadIdentity);
    CHECK(kind("v=1; a=rsa-sha256; " + rest + "; i=joe@badexample.org") == K::BadIdentity);
    CHECK(parse_signature("v=1; a=rsa-sha256; " + rest + "; i=joe@mail.example.org").ok());
    CHECK(kind("v=1; a=rsa-sha256; " + rest + "; t=20; x=10") == K::BadNumber);
    CHECK(kind("v=1; a=rsa-sha256; " + rest + "; l=-1") == K::BadNumber);
    CHECK(kind("v=1; a=rsa-sha256; " + rest + "; q=http") == K::BadQuery);
    CHECK(kind("v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA; b=A!AA") == K::BadBase64);
    CHECK(kind("v=1; v=1; a=rsa-sha256; " + rest) == K::Syntax);
    CHECK(kind("v=1;; a=rsa-sha256; " + rest) == K::Syntax);

    // c= with one part: the body is simple.
    auto c = parse_signature("v=1; a=rsa-sha256; c=relaxed; " + rest);
    REQUIRE(c.ok());
    CHECK(c.value().header_canon == Canon::Relaxed);
    CHECK(c.value().body_canon == Canon::Simple);
    // b= blanked, and only b= (not bh=), FWS included.
    auto b = parse_signature("v=1; a=rsa-sha256; b=AA\r\n AA ; " + rest.substr(0, rest.find("; b=")));
    REQUIRE(b.ok());
    CHECK(b.value().blanked_value == "v=1; a=rsa-sha256; b=; d=example.org; s=sel; h=from:to; bh=AAAA");

    // Through the verifier: a permerror for the malformed one, neutral for sha1.
    std::string text = signed_message(joe_message(), ed25519());
    std::string bad = "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; h=to; bh=AAAA; b=AAAA\r\n";
    std::string sha1 = "DKIM-Signature: v=1; a=rsa-sha1; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA\r\n";
    std::vector<Verdict> v = verify_text(bad + sha1 + text, dns_for(ed25519()));
    REQUIRE(v.size() == 3);
    CHECK(v[0].outcome == Outcome::Permerror);
    CHECK(v[0].reason == "From is not signed (not in h=)");
    CHECK(v[1].outcome == Outcome::Neutral);
    CHECK(v[2].outcome == Outcome::Pass);
}

TEST_CASE("verify: l= covers part of the body", "[dkim][verify]") {
    // Signed by hand: our signer never sets l=, a verifier must still honour it.
    std::string text = crlf("From: joe@example.org\nSubject: l\n\nfirst line\nsecond line\n");
    Message m = split_message(text);
    BodyHasher h(Canon::Simple, 12);  // "first line\r\n"
    for (const std::string& l : m.body) h.line(l);
    BodyHash bh = h.finish();
    std::string value = " v=1; a=ed25519-sha256; c=simple/simple; d=example.org; s=sel; l=12; h=from:subject; bh=" +
                        bh.base64 + "; b=";
    std::string input = header_hash_input(m.fields, {"from", "subject"}, Canon::Simple, {"DKIM-Signature", value});
    std::string err;
    auto sig = sign_input(Algorithm::Ed25519Sha256, ed25519().pkey.get(), input, &err);
    REQUIRE(sig);
    std::string signed_text = "DKIM-Signature:" + value + base64_encode(*sig) + "\r\n" + text;
    CHECK(one(verify_text(signed_text, dns_for(ed25519()))).outcome == Outcome::Pass);
    // Text added after the signed length does not matter; a shorter body fails.
    CHECK(one(verify_text(signed_text + "appended\r\n", dns_for(ed25519()))).outcome == Outcome::Pass);
    Verdict cut = one(verify_text(replace(signed_text, "first line\r\nsecond line", "first"), dns_for(ed25519())));
    CHECK(cut.outcome == Outcome::Fail);
    CHECK(cut.reason == "body shorter than l=");
}

TEST_CASE("verify: dual signatures, RSA and Ed25519, one body hash each way", "[dkim][verify]") {
    std::string once = signed_message(joe_message(), ed25519());
    std::string both = prepend_field(sign_lines(once, rsa2048(), {}, Canon::Simple, "example.org", "rsa"), once);
    Dns dns = dns_for(ed25519());
    dns["rsa._domainkey.example.org"] = key_record(rsa2048().pkey.get());
    std::vector<Verdict> v = verify_text(both, dns);
    REQUIRE(v.size() == 2);
    CHECK(v[0].outcome == Outcome::Pass);
    CHECK(v[0].selector == "rsa");
    CHECK(v[1].outcome == Outcome::Pass);
    CHECK(v[1].selector == "sel");
}

TEST_CASE("verify: RFC 8463 Appendix A's message passes both signatures", "[dkim][verify][rfc8463]") {
    std::vector<Verdict> v = verify_text(rfc8463_message(), kFootball);
    REQUIRE(v.size() == 2);
    CHECK(v[0].outcome == Outcome::Pass);
    CHECK(v[0].selector == "brisbane");
    CHECK(v[1].outcome == Outcome::Pass);
    CHECK(v[1].selector == "test");
    CHECK(v[1].domain == "football.example.com");
    std::vector<Verdict> bad = verify_text(replace(rfc8463_message(), "We lost", "We won"), kFootball);
    CHECK(bad[0].outcome == Outcome::Fail);
    CHECK(bad[1].outcome == Outcome::Fail);
}

TEST_CASE("sign: our Ed25519 signature of RFC 8463's message is the RFC's", "[dkim][sign][rfc8463]") {
    TempDir dir;
    auto key = load_private_key(dir.write("brisbane.key", "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="));
    REQUIRE(key.ok());
    Message m = split_message(rfc8463_message());
    auto sig = parse_signature(m.fields[0].value);
    REQUIRE(sig.ok());
    std::string input = header_hash_input(m.fields, sig.value().headers, Canon::Relaxed,
                                          {m.fields[0].name, sig.value().blanked_value}, 0);
    std::string err;
    auto ours = sign_input(Algorithm::Ed25519Sha256, key.value().pkey.get(), input, &err);
    REQUIRE(ours);
    CHECK(base64_encode(*ours) ==
          "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==");
}

TEST_CASE("auth results: the field for each verdict", "[dkim][auth_results]") {
    CHECK(authentication_results("mx.example.net", {}) ==
          std::vector<std::string>{"Authentication-Results: mx.example.net; dkim=none"});

    Verdict pass{Outcome::Pass, "", "example.org", "sel", "AbCdEfGhIjKl"};
    CHECK(authentication_results("mx.example.net", {pass}) ==
          std::vector<std::string>{"Authentication-Results: mx.example.net; dkim=pass header.d=example.org",
                                   "\theader.s=sel header.b=AbCdEfGh"});

    Verdict fail{Outcome::Fail, "body hash did not verify", "example.org", "ed", "ab/d+f=hXYZ"};
    Verdict perm{Outcome::Permerror, "bad \"x\"\r\nInjected: yes", "", "", ""};
    std::vector<std::string> lines = authentication_results("mx.example.net", {pass, fail, perm});
    std::string joined;
    for (const std::string& l : lines) {
        CHECK(columns(l) < 78);
        joined += l + "\n";
    }
    CHECK(joined == "Authentication-Results: mx.example.net; dkim=pass header.d=example.org\n"
                    "\theader.s=sel header.b=AbCdEfGh; dkim=fail\n"
                    "\treason=\"body hash did not verify\" header.d=example.org header.s=ed\n"
                    "\theader.b=\"ab/d+f=h\"; dkim=permerror\n"
                    "\treason=\"bad \\\"x\\\"??Injected: yes\"\n");
}

TEST_CASE("auth results: from a verification run", "[dkim][auth_results]") {
    std::string text = signed_message(joe_message(), ed25519());
    std::vector<Verdict> v = verify_text(text, dns_for(ed25519()));
    std::vector<std::string> lines = authentication_results("mx.example.net", v);
    REQUIRE(lines.size() == 2);
    CHECK(lines[0] == "Authentication-Results: mx.example.net; dkim=pass header.d=example.org");
    // Quoted when the 8 characters hold a '/' or '='.
    CHECK(lines[1].starts_with("\theader.s=sel header.b="));
    CHECK(lines[1].find(v[0].b64.substr(0, 8)) != std::string::npos);
}
