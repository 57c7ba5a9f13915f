// filters/rspamd/request.cpp — the request's headers and the held message
// (see request.hpp).

#include "request.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace postern::rspamd {

struct BodyStorage {
    std::string memory;
    util::Fd file;  // valid once the message spilled; then `memory` is empty
    std::uint64_t size = 0;
};

namespace {

std::string clean(std::string_view v) {
    std::string out;
    for (char c : v) {
        auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u != 0x7f) out += c;
    }
    return out;
}

void header(std::vector<std::string>& out, std::string_view name, std::string_view value) {
    std::string v = clean(value);
    if (!v.empty()) out.push_back(std::string(name) + ": " + v);
}

bool pwrite_all(int fd, std::string_view data, std::uint64_t offset) {
    while (!data.empty()) {
        ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return false;
        data.remove_prefix(static_cast<std::size_t>(n));
        offset += static_cast<std::uint64_t>(n);
    }
    return true;
}

std::string errno_text(std::string_view what, int err) { return std::string(what) + ": " + std::strerror(err); }

}  // namespace

std::vector<std::string> request_headers(const Envelope& e) {
    std::vector<std::string> out;
    // rspamd reads "<>" as the null sender (a bounce); an empty From would
    // be no sender at all.
    header(out, "From", e.mail_from.empty() ? "<>" : std::string_view(e.mail_from));
    for (const auto& r : e.rcpts) header(out, "Rcpt", r);
    header(out, "IP", e.ip);
    if (e.hostname != "<unknown>") header(out, "Hostname", e.hostname);
    header(out, "Helo", e.helo);
    header(out, "User", e.user);
    header(out, "Queue-Id", e.queue_id);
    header(out, "MTA-Name", e.mta_name);
    header(out, "Settings-ID", e.settings_id);
    return out;
}

std::optional<std::string> client_ip(std::string_view src) {
    if (src.substr(0, 5) == "unix:") return "127.0.0.1";
    if (!src.empty() && src.front() == '[') {
        auto close = src.find(']');
        if (close == std::string_view::npos || close == 1) return std::nullopt;
        std::string_view rest = src.substr(close + 1);
        if (!rest.empty() && rest.front() != ':') return std::nullopt;
        std::string_view addr = src.substr(1, close - 1);
        if (addr.substr(0, 5) == "IPv6:" || addr.substr(0, 5) == "ipv6:") addr.remove_prefix(5);
        if (addr.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos) return std::nullopt;
        return std::string(addr);
    }
    auto colon = src.rfind(':');
    std::string_view addr = colon == std::string_view::npos ? src : src.substr(0, colon);
    if (addr.empty() || addr.find_first_not_of("0123456789.") != std::string_view::npos) return std::nullopt;
    return std::string(addr);
}

BodyReader::BodyReader(std::shared_ptr<const BodyStorage> storage)
    : storage_(std::move(storage)), size_(storage_ ? storage_->size : 0) {}

long BodyReader::read(char* out, std::size_t n) {
    if (!storage_ || offset_ >= size_ || n == 0) return 0;
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(n, size_ - offset_));
    if (!storage_->file) {
        std::memcpy(out, storage_->memory.data() + offset_, want);
        offset_ += want;
        return static_cast<long>(want);
    }
    for (;;) {
        ssize_t got = ::pread(storage_->file.get(), out, want, static_cast<off_t>(offset_));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return -1;
        if (got == 0) {
            // Shorter than it was: someone truncated our file.
            errno = EIO;
            return -1;
        }
        offset_ += static_cast<std::uint64_t>(got);
        return static_cast<long>(got);
    }
}

MessageBuffer::MessageBuffer() : MessageBuffer(Options{}) {}

MessageBuffer::MessageBuffer(Options options)
    : options_(std::move(options)), storage_(std::make_shared<BodyStorage>()) {}

std::uint64_t MessageBuffer::size() const { return storage_->size; }
bool MessageBuffer::in_file() const { return storage_->file.valid(); }
BodyReader MessageBuffer::reader() const { return BodyReader(storage_); }

// Moves what is in memory to a new file nobody else can open: O_TMPFILE
// where the file system has it, else a named file unlinked at once.
std::optional<std::string> MessageBuffer::spill() {
    util::Fd fd(::open(options_.temp_dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!fd) {
        std::string path = options_.temp_dir + "/postern-rspamd.XXXXXX";
        fd.reset(::mkostemp(path.data(), O_CLOEXEC));
        if (!fd) return errno_text("cannot make a temporary file in " + options_.temp_dir, errno);
        ::unlink(path.c_str());
    }
    if (!pwrite_all(fd.get(), storage_->memory, 0))
        return errno_text("cannot write a temporary file in " + options_.temp_dir, errno);
    storage_->file = std::move(fd);
    std::string().swap(storage_->memory);
    return std::nullopt;
}

std::optional<std::string> MessageBuffer::append(std::string_view bytes) {
    BodyStorage& s = *storage_;
    if (!s.file) {
        if (s.memory.size() + bytes.size() <= options_.spill_threshold) {
            s.memory.append(bytes);
            s.size += bytes.size();
            return std::nullopt;
        }
        if (auto err = spill()) return err;
    }
    // Written at the counted end, so the bytes of a write that failed half
    // way are written over by the next append and never read.
    if (!pwrite_all(s.file.get(), bytes, s.size)) return errno_text("cannot write the temporary file", errno);
    s.size += bytes.size();
    return std::nullopt;
}

std::optional<std::string> MessageBuffer::append_line(std::string_view line) {
    std::string l;
    l.reserve(line.size() + 2);
    l.append(line);
    l.append("\r\n");
    return append(l);
}

}  // namespace postern::rspamd
