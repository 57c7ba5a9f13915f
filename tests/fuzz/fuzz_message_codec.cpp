// Fuzz target: message files at rest (core/queue/message_codec.cpp), which
// the root parent decodes from a spool the unprivileged process writes. Any
// bytes as a spool file: decoding must not crash, and what it returns holds
// exactly the size the header gives. The same bytes as a message: written
// with each mix of compression and encryption, they must read back exactly.

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "queue/message_codec.hpp"

using namespace postern;
using namespace postern::queue;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

util::Fd file_of(std::string_view bytes) {
    util::Fd fd(::memfd_create("fuzz", MFD_CLOEXEC));
    check(static_cast<bool>(fd));
    check(::write(fd.get(), bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
    return fd;
}

std::string contents(int fd) {
    std::string out;
    char buf[65536];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    return out;
}

AtRest how(bool compress, bool encrypt) {
    AtRest h;
    h.compress = compress;
    if (encrypt) {
        h.key.emplace();
        h.key->fill(0x42);
    }
    return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view bytes(reinterpret_cast<const char*>(data), size);
    std::string why;
    util::Fd plain = open_plain(file_of(bytes), how(true, true), &why);
    if (plain) {
        std::string got = contents(plain.get());
        bool framed = bytes.starts_with(kFrameMagic);
        if (!framed) check(got == bytes);
        else check(why.empty());
    } else {
        check(!why.empty());
    }
    for (bool compress : {false, true})
        for (bool encrypt : {false, true}) {
            util::Fd fd(::memfd_create("fuzz", MFD_CLOEXEC));
            MessageWriter w(fd.get(), how(compress, encrypt), bytes.size());
            check(w.write(bytes.substr(0, size / 2)) && w.write(bytes.substr(size / 2)) && w.finish());
            ::lseek(fd.get(), 0, SEEK_SET);
            util::Fd back = open_plain(std::move(fd), how(compress, encrypt), &why);
            check(static_cast<bool>(back) && contents(back.get()) == bytes);
        }
    return 0;
}
