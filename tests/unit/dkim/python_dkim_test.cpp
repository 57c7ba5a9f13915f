// Cross-checks of our signatures with a verifier we did not write: Debian's
// python3-dkim (dkimpy), run as /usr/bin/python3 on messages we signed, its
// DNS answered from the records key_record() makes. RSA 2048 and Ed25519
// under every canonicalization pair, both at once, a message with folded
// fields, odd white space, a '|' and a leading dot, an empty body; tampered
// copies must fail. And the other way: what dkimpy signs, we verify.

#include <utility>  // before Boost: 1.74's asio uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/process.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "dkim/record.hpp"
#include "dkim/signer.hpp"
#include "dkim/verify.hpp"
#include "support.hpp"

using namespace postern::dkim;
using namespace postern::dkim::test;
namespace bp = boost::process;

namespace {

const std::string kPython = "/usr/bin/python3";  // Debian's, where python3-dkim is; not a pyenv one

// Prints one True/False per DKIM-Signature field, top first. DKIM.verify
// raises on some failures (a body hash mismatch) where dkim.verify, which
// only looks at the first signature, returns False: the same here.
constexpr std::string_view kScript = R"(import json, sys
import dkim
msg = open(sys.argv[1], 'rb').read()
records = json.load(open(sys.argv[2]))
def dnsfunc(name, timeout=5):
    txt = records.get(name.decode().rstrip('.'))
    return txt.encode() if txt else None
def check(d, i):
    try:
        return d.verify(idx=i, dnsfunc=dnsfunc)
    except dkim.DKIMException:
        return False
d = dkim.DKIM(msg)
n = sum(1 for k, _ in d.headers if k.lower() == b'dkim-signature')
results = [check(d, i) for i in range(n)]
assert results[0] == dkim.verify(msg, dnsfunc=dnsfunc)
print(' '.join(str(r) for r in results))
)";

// Signs argv[2] with the key in argv[1] (PEM RSA, or a base64 Ed25519 seed)
// as d=example.org s=py, canonicalization argv[3] ("relaxed/simple"...);
// prints the DKIM-Signature field and the message.
constexpr std::string_view kSignScript = R"(import sys
import dkim
key = open(sys.argv[1], 'rb').read()
msg = open(sys.argv[2], 'rb').read()
header, body = sys.argv[3].encode().split(b'/')
alg = b'ed25519-sha256' if not key.startswith(b'-----') else b'rsa-sha256'
sig = dkim.sign(msg, b'py', b'example.org', key, canonicalize=(header, body), signature_algorithm=alg)
sys.stdout.buffer.write(sig + msg)
)";

using Dns = std::map<std::string, std::string>;

// Runs /usr/bin/python3 with `args`; its standard output, or the failure.
std::string run_python(const std::vector<std::string>& args) {
    boost::asio::io_context io;
    std::future<std::string> out, err;
    bp::child c(bp::exe = kPython, bp::args = args, bp::std_in.close(), bp::std_out > out, bp::std_err > err, io);
    io.run_for(std::chrono::seconds(30));
    // Boost 1.74's child::wait_for sleeps out its whole timeout: poll instead.
    for (int i = 0; i < 3000 && c.running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (c.running()) {
        c.terminate();
        FAIL("python3 did not finish within 30 s");
    }
    std::string text = out.get();
    INFO("python3 stderr: " << err.get());
    REQUIRE(c.exit_code() == 0);
    return text;
}

// Verifies `message` with dkimpy; its output line.
std::string python_verify(const std::string& message, const Dns& dns) {
    TempDir dir;
    std::string json = "{";
    for (const auto& [name, txt] : dns) json += (json.size() > 1 ? ", \"" : "\"") + name + "\": \"" + txt + "\"";
    json += "}";
    std::string text = run_python(
        {dir.write("verify.py", kScript), dir.write("message.eml", message), dir.write("dns.json", json)});
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
}

// `message` signed by dkimpy with `key_text`.
std::string python_sign(const std::string& message, const std::string& key_text, std::string_view canon) {
    TempDir dir;
    return run_python({dir.write("sign.py", kSignScript), dir.write("key", key_text), dir.write("message.eml", message),
                       std::string(canon)});
}

std::string sign_message(std::string_view message, const PrivateKey& key, Canon hc, Canon bc,
                         std::string_view selector = "sel") {
    Message m = split_message(message);
    BodyHasher h(bc);
    for (const std::string& l : m.body) h.line(l);
    SignOptions o;
    o.header_canon = hc;
    auto lines = sign(m.fields, h.finish(), {"example.org", selector, key}, o);
    REQUIRE(lines.ok());
    return prepend_field(lines.value(), message);
}

Dns dns_for(const PrivateKey& key, const std::string& selector = "sel") {
    return {{selector + "._domainkey.example.org", key_record(key.pkey.get())}};
}

std::string replace(std::string text, std::string_view from, std::string_view to) {
    std::size_t at = text.find(from);
    REQUIRE(at != std::string::npos);
    return text.replace(at, from.size(), to);
}

// Folded fields, a '|', trailing and inner white space, a line that starts
// with a dot (already un-dot-stuffed), long lines, trailing empty lines.
std::string odd_message() {
    std::string long_line(990, 'x');
    return crlf("From: \"Joe | Sixpack\" <joe@example.org>\n"
                "To: a@example.net,\n"
                "\tb@example.net,  \n"
                "    c@example.net\n"
                "Subject:   A folded\n"
                "  subject | with a pipe  \n"
                "Date: Mon, 7 Dec 2026 06:00:00 +0000\n"
                "Message-ID: <odd@example.org>\n"
                "MIME-Version: 1.0\n"
                "Content-Type: text/plain; charset=utf-8\n"
                "\n"
                "First line with trailing space   \n"
                ".a line that started with two dots\n"
                "\ttabs\tand  spaces \t\n"
                "\n") +
           long_line + crlf("\n\n\n");
}

}  // namespace

TEST_CASE("python3-dkim verifies our RSA and Ed25519 signatures", "[dkim][python]") {
    for (const PrivateKey* key : {&rsa2048(), &ed25519()}) {
        for (Canon hc : {Canon::Relaxed, Canon::Simple}) {
            for (Canon bc : {Canon::Relaxed, Canon::Simple}) {
                std::string text = sign_message(joe_message(), *key, hc, bc);
                INFO(text);
                CHECK(python_verify(text, dns_for(*key)) == "True");
                CHECK(python_verify(replace(text, "We lost", "We won"), dns_for(*key)) == "False");
                CHECK(python_verify(replace(text, "Is dinner ready?", "Is lunch ready?"), dns_for(*key)) == "False");
            }
        }
    }
}

TEST_CASE("python3-dkim verifies an odd message and an empty body", "[dkim][python]") {
    for (Canon c : {Canon::Relaxed, Canon::Simple}) {
        std::string text = sign_message(odd_message(), ed25519(), c, c);
        INFO(text);
        CHECK(python_verify(text, dns_for(ed25519())) == "True");
        CHECK(python_verify(replace(text, ".a line", "a line"), dns_for(ed25519())) == "False");

        std::string empty = sign_message(crlf("From: joe@example.org\nSubject: nothing\n\n"), rsa2048(), c, c);
        CHECK(python_verify(empty, dns_for(rsa2048())) == "True");
    }
}

TEST_CASE("python3-dkim verifies dual signatures, and not with the wrong key", "[dkim][python]") {
    std::string once = sign_message(joe_message(), ed25519(), Canon::Relaxed, Canon::Relaxed, "ed");
    std::string both = sign_message(once, rsa2048(), Canon::Relaxed, Canon::Relaxed, "rsa");
    Dns dns = dns_for(ed25519(), "ed");
    dns.merge(dns_for(rsa2048(), "rsa"));
    CHECK(python_verify(both, dns) == "True True");
    CHECK(python_verify(replace(both, "Joe.", "Jim."), dns) == "False False");
    Dns swapped = {{"ed._domainkey.example.org", key_record(make_ed25519().get())},
                   {"rsa._domainkey.example.org", key_record(rsa2048().pkey.get())}};
    CHECK(python_verify(both, swapped) == "True False");
}

TEST_CASE("we verify what python3-dkim signs", "[dkim][python]") {
    // dkimpy reads an Ed25519 key as its base64 seed.
    std::string seed(32, '\0');
    std::size_t len = seed.size();
    REQUIRE(EVP_PKEY_get_raw_private_key(ed25519().pkey.get(), reinterpret_cast<unsigned char*>(seed.data()), &len) ==
            1);
    const std::vector<std::pair<const PrivateKey*, std::string>> keys = {
        {&rsa2048(), pem_traditional(rsa2048().pkey.get())}, {&ed25519(), base64_encode(seed)}};
    for (const auto& [key, text] : keys) {
        for (std::string_view canon : {"relaxed/relaxed", "simple/simple", "relaxed/simple", "simple/relaxed"}) {
            for (const std::string& message : {std::string(joe_message()), odd_message()}) {
                std::string signed_text = python_sign(message, text, canon);
                INFO(signed_text);
                Message m = split_message(signed_text);
                MessageVerifier v(m.fields);
                REQUIRE(v.key_names() == std::vector<std::string>{"py._domainkey.example.org"});
                for (const std::string& l : m.body) v.body_line(l);
                std::string record = key_record(key->pkey.get());
                auto verdicts = v.finish([&](std::string_view) { return KeyAnswer{KeyAnswer::Status::Found, record}; });
                REQUIRE(verdicts.size() == 1);
                CHECK(verdicts[0].outcome == Outcome::Pass);
                CHECK(verdicts[0].reason == "");
            }
        }
    }
}
