// bench_filter_proceed: the cheapest useful filter process for the filter
// benchmark (tests/bench/filters.sh). It speaks OpenSMTPD's filter protocol
// (smtpd-filters(7), postern-filters(7)) as both posternd and OpenSMTPD 6.8
// expect it, and does nothing: every request is answered `proceed` and every
// data line is sent back unchanged. What it costs the server is then the
// price of the protocol itself (a round trip per phase, one per message line).
//
// Handshake: it reads `config|...` lines until `config|ready`, then registers
// the filter phases connect, helo, ehlo, mail-from, rcpt-to, data, data-line,
// commit and the reports link-connect, link-disconnect, then `register|ready`.
// Requests: `filter|VER|TS|smtp-in|PHASE|SID|TOKEN|PARAM` (PARAM is the rest
// of the line, it may hold '|'); answers use the 0.5+ order, session then
// token: `filter-result|SID|TOKEN|proceed`, or for data-line
// `filter-dataline|SID|TOKEN|PARAM` (the final "." included). Reports and
// unknown lines are ignored. A protocol version below 0.5 is refused.
//
// I/O: one read(2) of up to 64 KiB on fd 0, every complete line in it
// handled, all answers written to fd 1 in one write(2) (fd 0 and 1 are the
// same socket), so a burst of data lines costs one system call each way.
// It exits on end of input (the server closed its end) or a read/write error.
// Depends on: nothing but libc; not installed.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <unistd.h>

namespace {

std::string out;  // answers waiting for the next write
bool ready = false;

bool write_all(const char* p, size_t n) {
    while (n > 0) {
        ssize_t w = ::write(1, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

void add(std::string_view a) { out.append(a.data(), a.size()); }

void register_all() {
    static const char* const phases[] = {"connect", "helo", "ehlo",      "mail-from",
                                         "rcpt-to", "data", "data-line", "commit"};
    static const char* const reports[] = {"link-connect", "link-disconnect"};
    for (const char* p : phases) {
        add("register|filter|smtp-in|");
        add(p);
        add("\n");
    }
    for (const char* r : reports) {
        add("register|report|smtp-in|");
        add(r);
        add("\n");
    }
    add("register|ready\n");
}

// next_field(rest): the first '|'-separated field of rest, which loses it.
std::string_view next_field(std::string_view& rest) {
    size_t bar = rest.find('|');
    std::string_view f = rest.substr(0, bar);
    rest = bar == std::string_view::npos ? std::string_view() : rest.substr(bar + 1);
    return f;
}

// supported(version): 0.5 or a later 0.x (0.5 put the session id before the token).
bool supported(std::string_view version) {
    if (version.size() < 3 || version.substr(0, 2) != "0.") return false;
    int minor = 0;
    for (char c : version.substr(2)) {
        if (c < '0' || c > '9') return false;
        minor = std::min(minor * 10 + (c - '0'), 1000);
    }
    return minor >= 5;
}

void handle(std::string_view line) {
    if (!ready) {
        if (line == "config|ready") {
            ready = true;
            register_all();
        }
        return;
    }
    if (line.substr(0, 7) != "filter|") return;  // reports: nothing to say
    std::string_view rest = line.substr(7);
    std::string_view version = next_field(rest);
    if (!supported(version)) {
        std::fprintf(stderr, "bench_filter_proceed: unsupported protocol version %.*s\n",
                     static_cast<int>(version.size()), version.data());
        std::exit(1);
    }
    next_field(rest);  // timestamp
    next_field(rest);  // subsystem
    std::string_view phase = next_field(rest);
    std::string_view sid = next_field(rest);
    std::string_view token = next_field(rest);
    // rest is the parameter, possibly empty, possibly holding '|'
    if (phase == "data-line") {
        add("filter-dataline|");
        add(sid);
        add("|");
        add(token);
        add("|");
        add(rest);
        add("\n");
    } else {
        add("filter-result|");
        add(sid);
        add("|");
        add(token);
        add("|proceed\n");
    }
}

}  // namespace

int main() {
    static char buf[65536];
    std::string partial;  // an incomplete line carried over to the next read
    out.reserve(sizeof buf * 2);
    for (;;) {
        ssize_t n = ::read(0, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        if (n == 0) return 0;
        std::string_view chunk(buf, static_cast<size_t>(n));
        size_t start = 0;
        for (size_t nl; (nl = chunk.find('\n', start)) != std::string_view::npos; start = nl + 1) {
            if (!partial.empty()) {
                partial.append(chunk.data() + start, nl - start);
                handle(partial);
                partial.clear();
            } else {
                handle(chunk.substr(start, nl - start));
            }
        }
        partial.append(chunk.data() + start, chunk.size() - start);
        if (!out.empty()) {
            if (!write_all(out.data(), out.size())) return 1;
            out.clear();
        }
    }
}
