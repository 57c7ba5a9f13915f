// sendmail/client.cpp — see client.hpp.
#include "sendmail/client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace postern::sendmail {
namespace {

// How long one read or write may wait: a filter on the socket may take its
// time with the message, as the daemon's own 5-minute idle limit allows.
constexpr int kTimeoutMs = 300 * 1000;
constexpr size_t kMaxReplyLine = 4096;
constexpr int kMaxReplyLines = 200;

bool wait_for(int fd, short events, std::string* error) {
    pollfd p{fd, events, 0};
    for (;;) {
        int n = ::poll(&p, 1, kTimeoutMs);
        if (n > 0) return true;
        if (n == 0) return *error = "the mail daemon did not answer within 300 s", false;
        if (errno != EINTR) return *error = std::string("poll: ") + std::strerror(errno), false;
    }
}

std::string upper(std::string s) {
    for (auto& c : s)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return s;
}

void say(const std::string& program, const std::string& what) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), what.c_str());
}

}  // namespace

int exit_for(Step step, int code) {
    if (code >= 400 && code < 500) return kTempFail;
    if (code < 500 || code > 599) return kProtocol;
    switch (step) {
    case Step::Greeting:
    case Step::Ehlo:
    case Step::Data: return kUnavailable;
    case Step::Mail:
    case Step::EndOfData: return kDataErr;
    case Step::Rcpt: return kNoUser;
    }
    return kProtocol;
}

std::string data_block(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) {
        if (!l.empty() && l[0] == '.') out += '.';
        out += l;
        out += "\r\n";
    }
    out += ".\r\n";
    return out;
}

std::string xtext(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
        if (c < 33 || c > 126 || c == '+' || c == '=') {
            char buf[4];
            std::snprintf(buf, sizeof buf, "+%02X", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

bool Client::connect(const std::string& path, std::string* error) {
    sockaddr_un sun{};
    if (path.size() >= sizeof sun.sun_path) return *error = "socket path too long", false;
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, path.data(), path.size());
    fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd_) return *error = std::string("socket: ") + std::strerror(errno), false;
    if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) {
        *error = std::strerror(errno);
        fd_.reset();
        return false;
    }
    return true;
}

bool Client::send_raw(std::string_view data, std::string* error) {
    while (!data.empty()) {
        if (!wait_for(fd_.get(), POLLOUT, error)) return false;
        // MSG_NOSIGNAL: a daemon that hangs up is an error to report, not SIGPIPE.
        ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return *error = std::string("writing to the mail daemon: ") + std::strerror(errno), false;
        data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

bool Client::send_line(std::string_view line, std::string* error) {
    if (verbose_) std::fprintf(stderr, ">>> %.*s\n", static_cast<int>(line.size()), line.data());
    return send_raw(std::string(line) + "\r\n", error);
}

bool Client::fill(std::string* error) {
    if (!wait_for(fd_.get(), POLLIN, error)) return false;
    char buf[4096];
    ssize_t n;
    do n = ::read(fd_.get(), buf, sizeof buf);
    while (n < 0 && errno == EINTR);
    if (n < 0) return *error = std::string("reading from the mail daemon: ") + std::strerror(errno), false;
    if (n == 0) return *error = "the mail daemon closed the connection", false;
    in_.append(buf, static_cast<size_t>(n));
    return true;
}

bool Client::read_reply(Reply* r, std::string* error, bool* garbled) {
    *garbled = false;
    r->code = 0;
    r->text.clear();
    for (int count = 0; count < kMaxReplyLines; ++count) {
        size_t nl;
        while ((nl = in_.find('\n')) == std::string::npos) {
            if (in_.size() > kMaxReplyLine) return *garbled = true, *error = "reply line too long", false;
            if (!fill(error)) return false;
        }
        std::string line = in_.substr(0, nl);
        in_.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (verbose_) std::fprintf(stderr, "<<< %s\n", line.c_str());
        bool digits = line.size() >= 3 && std::isdigit(static_cast<unsigned char>(line[0])) &&
                      std::isdigit(static_cast<unsigned char>(line[1])) &&
                      std::isdigit(static_cast<unsigned char>(line[2]));
        if (!digits || (line.size() > 3 && line[3] != ' ' && line[3] != '-'))
            return *garbled = true, *error = "not an SMTP reply: " + line, false;
        int code = std::stoi(line.substr(0, 3));
        if (r->code != 0 && code != r->code)
            return *garbled = true, *error = "reply code changed within a reply: " + line, false;
        r->code = code;
        if (!r->text.empty()) r->text += "\n";
        r->text += line;
        if (line.size() == 3 || line[3] == ' ') return true;
    }
    return *garbled = true, *error = "reply of too many lines", false;
}

bool Client::command(std::string_view line, Reply* r, std::string* error, bool* garbled) {
    *garbled = false;
    return send_line(line, error) && read_reply(r, error, garbled);
}

int send_message(Client& c, const Envelope& e, const std::vector<std::string>& lines, const std::string& program) {
    Reply r;
    std::string error;
    bool garbled = false;
    // A dialogue that breaks off has not given the message to the daemon.
    auto broken = [&](const std::string& during) {
        say(program, during + ": " + error + "; the message was not sent");
        return garbled ? kProtocol : kTempFail;
    };
    auto refused = [&](Step step, const std::string& during) {
        say(program, during + " refused: " + r.text);
        return exit_for(step, r.code);
    };

    std::string mail = "MAIL FROM:<" + e.sender + ">";
    if (e.eight_bit) mail += " BODY=8BITMIME";
    if (!e.ret.empty()) mail += " RET=" + upper(e.ret);
    if (!e.envid.empty()) mail += " ENVID=" + xtext(e.envid);
    if (!c.command(mail, &r, &error, &garbled)) return broken("MAIL FROM");
    if (r.code != 250) return refused(Step::Mail, "sender <" + e.sender + ">");

    size_t accepted = 0;
    bool temporary = false, permanent = false;
    for (const auto& rcpt : e.rcpts) {
        std::string cmd = "RCPT TO:<" + rcpt + ">";
        if (!e.notify.empty()) cmd += " NOTIFY=" + upper(e.notify);
        if (!c.command(cmd, &r, &error, &garbled)) return broken("RCPT TO");
        if (r.code == 250 || r.code == 251) {
            ++accepted;
            continue;
        }
        int code = refused(Step::Rcpt, "recipient <" + rcpt + ">");
        if (code == kTempFail) temporary = true;
        else if (code == kNoUser) permanent = true;
        else return code;
    }
    if (temporary || accepted == 0) {
        // Nothing is sent: see the header comment.
        c.command("RSET", &r, &error, &garbled);
        say(program, "the message was not sent");
        return temporary ? kTempFail : kNoUser;
    }
    if (!c.command("DATA", &r, &error, &garbled)) return broken("DATA");
    if (r.code != 354) return refused(Step::Data, "DATA");
    if (!c.send_raw(data_block(lines), &error) || !c.read_reply(&r, &error, &garbled))
        return broken("sending the message");
    if (r.code != 250) return refused(Step::EndOfData, "the message");
    if (permanent) say(program, "the message was sent to the other recipients");
    return permanent ? kNoUser : kOk;
}

}  // namespace postern::sendmail
