// tests/unit/sendmail/client_test.cpp — how replies map to exit codes, the
// DATA block's dot-stuffing, ENVID's xtext, and one dialogue against a
// scripted server on a socketpair (replies, partial refusals).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <functional>
#include <thread>

#include "sendmail/client.hpp"

using namespace postern::sendmail;

TEST_CASE("exit codes: 4xx is EX_TEMPFAIL at every step, 5xx depends on the step") {
    for (Step s : {Step::Greeting, Step::Ehlo, Step::Mail, Step::Rcpt, Step::Data, Step::EndOfData})
        CHECK(exit_for(s, 421) == kTempFail);
    CHECK(exit_for(Step::Greeting, 554) == kUnavailable);
    CHECK(exit_for(Step::Mail, 553) == kDataErr);
    CHECK(exit_for(Step::Rcpt, 550) == kNoUser);
    CHECK(exit_for(Step::Data, 554) == kUnavailable);
    CHECK(exit_for(Step::EndOfData, 552) == kDataErr);
    CHECK(exit_for(Step::Mail, 354) == kProtocol);
    CHECK(exit_for(Step::Rcpt, 999) == kProtocol);
    CHECK(kTempFail == 75);
    CHECK(kNoUser == 67);
    CHECK(kUsage == 64);
}

TEST_CASE("the DATA block: CRLF, leading dots doubled, the final dot") {
    CHECK(data_block({"a", ".", "..b", "c.", ""}) == "a\r\n..\r\n...b\r\nc.\r\n\r\n.\r\n");
    CHECK(data_block({}) == ".\r\n");
}

TEST_CASE("xtext escapes +, = and what is not printable") {
    CHECK(xtext("id 1+2=3") == "id+201+2B2+3D3");
    CHECK(xtext("plain") == "plain");
}

// ---- one dialogue against a scripted server ----

namespace {

// A server on a UNIX socket in a temporary folder: it answers each command
// line with what `answer` says, and the DATA block with `end_of_data`,
// recording what it got.
struct Script {
    using Answer = std::function<std::string(const std::string&)>;
    explicit Script(Answer a, std::string end = "250 2.0.0 queued")
        : answer(std::move(a)), end_of_data(std::move(end)) {}
    Answer answer;
    std::string end_of_data;
    std::vector<std::string> got;  // command lines, and "<data>" for a block
    std::string data;
};

class Server {
public:
    explicit Server(Script& s) : script_(s) {
        char tmpl[] = "/tmp/sendmail-test-XXXXXX";
        dir_ = mkdtemp(tmpl);
        path_ = dir_ + "/s.sock";
        fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un sun{};
        sun.sun_family = AF_UNIX;
        path_.copy(sun.sun_path, path_.size());
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0);
        REQUIRE(::listen(fd_, 1) == 0);
        thread_ = std::thread([this] { serve(); });
    }
    ~Server() {
        thread_.join();
        ::close(fd_);
        ::unlink(path_.c_str());
        ::rmdir(dir_.c_str());
    }
    const std::string& path() const { return path_; }

private:
    void serve() {
        int c = ::accept(fd_, nullptr, nullptr);
        std::string in;
        bool in_data = false;
        auto say = [&](const std::string& s) { (void)!::write(c, (s + "\r\n").data(), s.size() + 2); };
        char buf[4096];
        for (;;) {
            ssize_t n = ::read(c, buf, sizeof buf);
            if (n <= 0) break;
            in.append(buf, static_cast<size_t>(n));
            for (size_t nl; (nl = in.find("\r\n")) != std::string::npos;) {
                std::string line = in.substr(0, nl);
                in.erase(0, nl + 2);
                if (in_data) {
                    if (line == ".") {
                        in_data = false;
                        script_.got.push_back("<data>");
                        say(script_.end_of_data);
                    } else {
                        script_.data += line + "\n";
                    }
                    continue;
                }
                script_.got.push_back(line);
                std::string reply = script_.answer(line);
                if (line == "DATA" && reply.rfind("354", 0) == 0) in_data = true;
                say(reply);
                if (line == "QUIT") {
                    ::close(c);
                    return;
                }
            }
        }
        ::close(c);
    }

    Script& script_;
    std::string dir_, path_;
    int fd_ = -1;
    std::thread thread_;
};

std::string ok_all(const std::string& line) {
    if (line == "DATA") return "354 go ahead";
    if (line == "QUIT") return "221 bye";
    return "250 ok";
}

Envelope env(std::string sender, std::vector<std::string> rcpts) {
    Envelope e;
    e.sender = std::move(sender);
    e.rcpts = std::move(rcpts);
    return e;
}

int dialogue(Script& s, const Envelope& e, const std::vector<std::string>& lines) {
    Server server(s);
    Client c(false);
    std::string error;
    REQUIRE(c.connect(server.path(), &error));
    int rc = send_message(c, e, lines, "test");
    Reply r;
    bool garbled = false;
    c.command("QUIT", &r, &error, &garbled);
    return rc;
}

}  // namespace

TEST_CASE("a dialogue: MAIL with DSN and 8BITMIME, every RCPT, the message dot-stuffed") {
    Script s{ok_all};
    Envelope e = env("me@x", {"a@x", "b@y"});
    e.notify = "success,failure";
    e.ret = "hdrs";
    e.envid = "id+1";
    e.eight_bit = true;
    CHECK(dialogue(s, e, {"Subject: s", "", ".hidden"}) == kOk);
    CHECK(s.got == std::vector<std::string>{"MAIL FROM:<me@x> BODY=8BITMIME RET=HDRS ENVID=id+2B1",
                                            "RCPT TO:<a@x> NOTIFY=SUCCESS,FAILURE",
                                            "RCPT TO:<b@y> NOTIFY=SUCCESS,FAILURE", "DATA", "<data>", "QUIT"});
    CHECK(s.data == "Subject: s\n\n..hidden\n");
}

TEST_CASE("a recipient refused for good: the others get the message, exit EX_NOUSER") {
    Script s{[](const std::string& l) { return l == "RCPT TO:<bad@x>" ? "550 5.1.1 no such user" : ok_all(l); }};
    CHECK(dialogue(s, env("", {"bad@x", "good@x"}), {"x"}) == kNoUser);
    CHECK(s.got ==
          std::vector<std::string>{"MAIL FROM:<>", "RCPT TO:<bad@x>", "RCPT TO:<good@x>", "DATA", "<data>", "QUIT"});
}

TEST_CASE("every recipient refused: no DATA, EX_NOUSER") {
    Script s{[](const std::string& l) { return l.rfind("RCPT", 0) == 0 ? "550 5.1.1 no" : ok_all(l); }};
    CHECK(dialogue(s, env("me", {"a", "b"}), {"x"}) == kNoUser);
    CHECK(s.got == std::vector<std::string>{"MAIL FROM:<me>", "RCPT TO:<a>", "RCPT TO:<b>", "RSET", "QUIT"});
}

TEST_CASE("a recipient refused for now: nobody gets it, EX_TEMPFAIL") {
    Script s{[](const std::string& l) { return l == "RCPT TO:<b>" ? "451 4.3.0 later" : ok_all(l); }};
    CHECK(dialogue(s, env("me", {"a", "b"}), {"x"}) == kTempFail);
    CHECK(s.got == std::vector<std::string>{"MAIL FROM:<me>", "RCPT TO:<a>", "RCPT TO:<b>", "RSET", "QUIT"});
}

TEST_CASE("the message refused after its data is EX_DATAERR, a sender refused too") {
    Script s{ok_all, "550 5.6.0 bare LF"};
    CHECK(dialogue(s, env("me", {"a"}), {"x"}) == kDataErr);
    Script sender{[](const std::string& l) { return l.rfind("MAIL", 0) == 0 ? "553 5.1.7 bad sender" : ok_all(l); }};
    CHECK(dialogue(sender, env("me", {"a"}), {"x"}) == kDataErr);
    CHECK(sender.got == std::vector<std::string>{"MAIL FROM:<me>", "QUIT"});
}

TEST_CASE("a reply that is not SMTP is EX_PROTOCOL, multi-line replies are read whole") {
    Script s{[](const std::string& l) { return l.rfind("MAIL", 0) == 0 ? "hello there" : ok_all(l); }};
    CHECK(dialogue(s, env("me", {"a"}), {"x"}) == kProtocol);
    Script multi{[](const std::string& l) { return l.rfind("RCPT", 0) == 0 ? "250-one\r\n250 two" : ok_all(l); }};
    CHECK(dialogue(multi, env("me", {"a"}), {"x"}) == kOk);
}
