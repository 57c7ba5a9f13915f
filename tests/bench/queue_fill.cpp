// bench_queue_fill SPOOL MESSAGES RECIPIENTS ACTION USER: fills a spool with
// MESSAGES messages of 1 KiB, each with RECIPIENTS envelopes for
// rN@bench.test, delivered by ACTION as USER, all waiting for a retry a day
// away, through the spool's own commit (queue::Store), in batches of 512 as
// the committer makes them. For big-queue.sh: a queue of a million
// envelopes that the daemon must load at start-up while it accepts mail.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "queue/store.hpp"

using namespace postern::queue;

namespace {

constexpr std::size_t kBatch = 512;

Store::Message make_message(const std::string& msgid, unsigned recipients, const char* action, const char* user,
                            std::int64_t now) {
    Store::Message m;
    m.msgid = msgid;
    m.data = "Subject: queued for the big-queue benchmark\n\n";
    while (m.data.size() < 1024) m.data += "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n";
    for (unsigned r = 0; r < recipients; ++r) {
        Envelope e;
        e.msgid = msgid;
        char tail[9];
        std::snprintf(tail, sizeof tail, "%08x", r + 1);
        e.id = msgid + tail;
        e.action = action;
        e.sender = "sender@client.test";
        e.rcpt = e.dest = "r" + std::to_string(r) + "@bench.test";
        e.user = user;
        e.helo = "client.test";
        e.client = "127.0.0.1";
        e.hostname = "bench.localdomain";
        e.ctime = now;
        e.expire = now + 4 * 86400;
        e.last_try = now;
        e.next_try = now + 86400;
        e.retry = 1;
        e.errorline = "451 4.3.0 held back for the big-queue benchmark";
        m.envelopes.push_back(std::move(e));
    }
    return m;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: %s SPOOL MESSAGES RECIPIENTS ACTION USER\n", argv[0]);
        return 2;
    }
    const unsigned long messages = std::strtoul(argv[2], nullptr, 10);
    const unsigned recipients = static_cast<unsigned>(std::strtoul(argv[3], nullptr, 10));
    Store store(argv[1]);
    std::string error;
    if (!store.open(&error)) {
        std::fprintf(stderr, "%s\n", error.c_str());
        return 1;
    }
    const auto start = std::chrono::steady_clock::now();
    const std::int64_t now = std::time(nullptr);
    std::vector<Store::Message> batch;
    std::vector<const Store::Message*> pointers;
    std::vector<bool> ok;
    unsigned long done = 0;
    for (unsigned long n = 0; n < messages; ++n) {
        char msgid[17];
        std::snprintf(msgid, sizeof msgid, "%08lx", (n + 1) & 0xffffffffUL);
        batch.push_back(make_message(msgid, recipients, argv[4], argv[5], now));
        if (batch.size() < kBatch && n + 1 < messages) continue;
        pointers.clear();
        for (const auto& m : batch) pointers.push_back(&m);
        store.commit(pointers, ok, &error);
        for (bool b : ok) done += b;
        if (!error.empty()) {
            std::fprintf(stderr, "commit: %s\n", error.c_str());
            return 1;
        }
        batch.clear();
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("queue fill: %lu messages, %lu envelopes in %.1f s\n", done, done * recipients, seconds);
    return done == messages ? 0 : 1;
}
