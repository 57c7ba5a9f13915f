// queue/message_codec.cpp — message files at rest; the format is in
// message_codec.hpp.
#include "queue/message_codec.hpp"

#include "queue/store_files.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace postern::queue {
namespace {

constexpr unsigned char kVersion = 1;
constexpr std::size_t kNonce = 12, kTag = 16;
constexpr std::size_t kChunk = 64 * 1024;
// zstd's level 1: the queue is written once and read once or twice, so
// speed matters more than the last few percent (docs/benchmarks.md).
constexpr int kZstdLevel = 1;

struct CipherFree {
    void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
struct CCtxFree {
    void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxFree {
    void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};
using Cipher = std::unique_ptr<EVP_CIPHER_CTX, CipherFree>;

std::string header_bytes(unsigned char flags, std::uint64_t size) {
    std::string h(kFrameMagic);
    h += static_cast<char>(kVersion);
    h += static_cast<char>(flags);
    for (int i = 0; i < 8; ++i) h += static_cast<char>(size >> (8 * i) & 0xff);
    return h;
}

bool write_all(int fd, const unsigned char* p, std::size_t n) {
    return util::write_all(fd, {reinterpret_cast<const char*>(p), n});
}

bool read_all(int fd, unsigned char* p, std::size_t n) {
    while (n > 0) {
        ssize_t r = ::read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

Cipher new_cipher(bool encrypt, const std::array<unsigned char, 32>& key, const unsigned char* nonce,
                  std::string_view aad) {
    Cipher c(EVP_CIPHER_CTX_new());
    int n = 0;
    auto init = encrypt ? EVP_EncryptInit_ex : EVP_DecryptInit_ex;
    auto update = encrypt ? EVP_EncryptUpdate : EVP_DecryptUpdate;
    if (!c || init(c.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_IVLEN, kNonce, nullptr) != 1 ||
        init(c.get(), nullptr, nullptr, key.data(), nonce) != 1 ||
        update(c.get(), nullptr, &n, reinterpret_cast<const unsigned char*>(aad.data()),
               static_cast<int>(aad.size())) != 1)
        return nullptr;
    return c;
}

}  // namespace

struct MessageWriter::Impl {
    std::unique_ptr<ZSTD_CCtx, CCtxFree> zstd;
    Cipher cipher;
    std::vector<unsigned char> buf, zbuf, cbuf;
};

MessageWriter::MessageWriter(int fd, const AtRest& how, std::uint64_t plain_size)
    : fd_(fd), how_(how), plain_size_(plain_size), impl_(std::make_unique<Impl>()) {
    impl_->buf.reserve(kChunk);
}

MessageWriter::~MessageWriter() = default;

bool MessageWriter::fail(std::string why) {
    if (!failed_) error_ = std::move(why);
    failed_ = true;
    return false;
}

bool MessageWriter::out(const unsigned char* p, std::size_t n) {
    written_ += n;
    if (!framed_) {  // a plain file: as it comes, no copy
        if (!write_all(fd_, p, n)) return fail(std::string("write: ") + std::strerror(errno));
        return true;
    }
    auto& buf = impl_->buf;
    if (buf.size() + n > kChunk) {
        if (!write_all(fd_, buf.data(), buf.size())) return fail(std::string("write: ") + std::strerror(errno));
        buf.clear();
    }
    if (n >= kChunk) {
        if (!write_all(fd_, p, n)) return fail(std::string("write: ") + std::strerror(errno));
        return true;
    }
    buf.insert(buf.end(), p, p + n);
    return true;
}

// Decides whether to frame (an option is on, or the message starts as a
// frame would), then writes the header and sets the transforms up.
bool MessageWriter::start() {
    started_ = true;
    framed_ = how_.compress || how_.encrypts() || std::string_view(head_).starts_with(kFrameMagic);
    if (framed_) {
        unsigned char flags = (how_.compress ? kCompressed : 0) | (how_.encrypts() ? kEncrypted : 0);
        std::string header = header_bytes(flags, plain_size_);
        if (!out(reinterpret_cast<const unsigned char*>(header.data()), header.size())) return false;
        if (how_.encrypts()) {
            unsigned char nonce[kNonce];
            if (RAND_bytes(nonce, kNonce) != 1) return fail("no random bytes for the nonce");
            impl_->cipher = new_cipher(true, *how_.key, nonce, header);
            if (!impl_->cipher) return fail("cannot set AES-256-GCM up");
            if (!out(nonce, kNonce)) return false;
        }
        if (how_.compress) {
            impl_->zstd.reset(ZSTD_createCCtx());
            if (!impl_->zstd ||
                ZSTD_isError(ZSTD_CCtx_setParameter(impl_->zstd.get(), ZSTD_c_compressionLevel, kZstdLevel)))
                return fail("cannot set zstd up");
            ZSTD_CCtx_setPledgedSrcSize(impl_->zstd.get(), plain_size_);
        }
    }
    std::string head = std::move(head_);
    head_.clear();
    return write(head);
}

bool MessageWriter::emit(std::string_view bytes) {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    if (!impl_->cipher) return out(p, bytes.size());
    auto& cbuf = impl_->cbuf;
    cbuf.resize(bytes.size() + 16);
    int n = 0;
    if (EVP_EncryptUpdate(impl_->cipher.get(), cbuf.data(), &n, p, static_cast<int>(bytes.size())) != 1)
        return fail("AES-256-GCM failed");
    return out(cbuf.data(), static_cast<std::size_t>(n));
}

bool MessageWriter::write(std::string_view bytes) {
    if (failed_) return false;
    if (!started_) {  // counted as start() writes it
        head_.append(bytes);
        return head_.size() < kFrameMagic.size() || start();
    }
    given_ += bytes.size();
    if (!impl_->zstd) return emit(bytes);
    auto& zbuf = impl_->zbuf;
    zbuf.resize(ZSTD_CStreamOutSize());
    ZSTD_inBuffer in{bytes.data(), bytes.size(), 0};
    while (in.pos < in.size) {
        ZSTD_outBuffer o{zbuf.data(), zbuf.size(), 0};
        if (ZSTD_isError(ZSTD_compressStream2(impl_->zstd.get(), &o, &in, ZSTD_e_continue))) return fail("zstd failed");
        if (!emit({reinterpret_cast<const char*>(zbuf.data()), o.pos})) return false;
    }
    return true;
}

bool MessageWriter::copy_from(int fd) {
    if (failed_) return false;
    if (started_ && !framed_) {  // in the kernel (copy_file_range), as the spool did before framing
        struct stat st {};
        if (::fstat(fd, &st) != 0 || !files::copy_from(fd, fd_))
            return fail(std::string("copy: ") + std::strerror(errno));
        given_ += static_cast<std::uint64_t>(st.st_size);
        written_ += static_cast<std::uint64_t>(st.st_size);
        return true;
    }
    if (::lseek(fd, 0, SEEK_SET) < 0) return fail(std::string("lseek: ") + std::strerror(errno));
    std::string chunk(kChunk, '\0');
    for (;;) {
        ssize_t r = ::read(fd, chunk.data(), chunk.size());
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return fail(std::string("read: ") + std::strerror(errno));
        if (r == 0) return true;
        if (!write({chunk.data(), static_cast<std::size_t>(r)})) return false;
    }
}

bool MessageWriter::finish() {
    if (!started_ && !failed_ && !start()) return false;
    if (failed_) return false;
    if (given_ != plain_size_) return fail("message size changed while it was written");
    if (impl_->zstd) {
        auto& zbuf = impl_->zbuf;
        zbuf.resize(ZSTD_CStreamOutSize());
        ZSTD_inBuffer in{nullptr, 0, 0};
        for (std::size_t left = 1; left != 0;) {
            ZSTD_outBuffer o{zbuf.data(), zbuf.size(), 0};
            left = ZSTD_compressStream2(impl_->zstd.get(), &o, &in, ZSTD_e_end);
            if (ZSTD_isError(left)) return fail("zstd failed");
            if (!emit({reinterpret_cast<const char*>(zbuf.data()), o.pos})) return false;
        }
    }
    if (impl_->cipher) {
        unsigned char tail[16], tag[kTag];
        int n = 0;
        if (EVP_EncryptFinal_ex(impl_->cipher.get(), tail, &n) != 1 ||
            EVP_CIPHER_CTX_ctrl(impl_->cipher.get(), EVP_CTRL_GCM_GET_TAG, kTag, tag) != 1)
            return fail("AES-256-GCM failed");
        if (!out(tail, static_cast<std::size_t>(n)) || !out(tag, kTag)) return false;
    }
    auto& buf = impl_->buf;
    if (!write_all(fd_, buf.data(), buf.size())) return fail(std::string("write: ") + std::strerror(errno));
    buf.clear();
    return true;
}

namespace {

struct Frame {
    unsigned char flags = 0;
    std::uint64_t size = 0;
    std::string header;
};

// Decrypts (when a cipher is given) and decompresses (when a zstd context
// is) `body_len` bytes of `in` into `out`, checking the size and the tag.
class Decoder {
public:
    Decoder(int in, int out, const Frame& frame, Cipher cipher, std::string* why)
        : in_(in), out_(out), frame_(frame), cipher_(std::move(cipher)), why_(why) {
        if (frame.flags & kCompressed) zstd_.reset(ZSTD_createDCtx());
    }

    bool run(std::uint64_t body_len) {
        if ((frame_.flags & kCompressed) && !zstd_) return fail("cannot set zstd up");
        std::vector<unsigned char> chunk(kChunk), clear(kChunk + 16);
        // Decrypted with a wrong key, the data is noise that zstd refuses:
        // the tag is checked all the same, as the better reason.
        bool ok = true;
        std::string first;
        while (body_len > 0) {
            std::size_t n = body_len < kChunk ? static_cast<std::size_t>(body_len) : kChunk;
            if (!read_all(in_, chunk.data(), n)) return fail("cut short");
            body_len -= n;
            const unsigned char* p = chunk.data();
            if (cipher_) {
                int m = 0;
                if (EVP_DecryptUpdate(cipher_.get(), clear.data(), &m, chunk.data(), static_cast<int>(n)) != 1)
                    return fail("AES-256-GCM failed");
                p = clear.data();
                n = static_cast<std::size_t>(m);
            }
            if (ok && !take(p, n)) {
                ok = false;
                first = *why_;
            }
        }
        if (cipher_ && !check_tag()) return false;
        if (!ok) return fail(first.c_str());
        if (zstd_ && !frame_done_) return fail("compressed data cut short");
        if (produced_ != frame_.size) return fail("holds other than the size its header gives");
        return true;
    }

private:
    bool fail(const char* what) {
        *why_ = what;
        return false;
    }

    bool put(const unsigned char* p, std::size_t n) {
        produced_ += n;
        if (produced_ > frame_.size) return fail("holds more than the size its header gives");
        return write_all(out_, p, n) || fail("cannot write the decoded message");
    }

    bool take(const unsigned char* p, std::size_t n) {
        if (!zstd_) return put(p, n);
        std::vector<unsigned char> plain(ZSTD_DStreamOutSize());
        ZSTD_inBuffer in{p, n, 0};
        while (in.pos < in.size) {
            if (frame_done_) return fail("data after the compressed frame");
            ZSTD_outBuffer o{plain.data(), plain.size(), 0};
            std::size_t r = ZSTD_decompressStream(zstd_.get(), &o, &in);
            if (ZSTD_isError(r)) return fail("compressed data damaged");
            if (!put(plain.data(), o.pos)) return false;
            frame_done_ = r == 0;
        }
        return true;
    }

    bool check_tag() {
        unsigned char tag[kTag], tail[16];
        int n = 0;
        if (!read_all(in_, tag, kTag)) return fail("cut short");
        if (EVP_CIPHER_CTX_ctrl(cipher_.get(), EVP_CTRL_GCM_SET_TAG, kTag, tag) != 1 ||
            EVP_DecryptFinal_ex(cipher_.get(), tail, &n) != 1)
            return fail("does not decrypt with this key (a wrong key, or the file was changed)");
        return n == 0 || take(tail, static_cast<std::size_t>(n));
    }

    int in_, out_;
    const Frame& frame_;
    Cipher cipher_;
    std::string* why_;
    std::unique_ptr<ZSTD_DCtx, DCtxFree> zstd_;
    std::uint64_t produced_ = 0;
    bool frame_done_ = false;
};

bool read_frame(int fd, Frame& f, std::string* why) {
    unsigned char h[kFrameHeader];
    if (!read_all(fd, h, kFrameHeader)) return (*why = "framed, and cut short in its header"), false;
    f.header.assign(reinterpret_cast<const char*>(h), kFrameHeader);
    f.flags = h[9];
    for (int i = 0; i < 8; ++i) f.size |= std::uint64_t{h[10 + i]} << (8 * i);
    if (h[8] != kVersion) return (*why = "framed with an unknown version " + std::to_string(h[8])), false;
    if (f.flags & ~(kCompressed | kEncrypted)) return (*why = "framed with unknown flags"), false;
    if (f.size > kMaxPlainSize) return (*why = "claims a size beyond " + std::to_string(kMaxPlainSize)), false;
    return true;
}

}  // namespace

util::Fd open_plain(util::Fd fd, const AtRest& how, std::string* why) {
    char magic[8];
    ssize_t n = ::pread(fd.get(), magic, sizeof magic, 0);
    if (n < 0) return (*why = std::string("read: ") + std::strerror(errno)), util::Fd();
    if (static_cast<std::size_t>(n) < sizeof magic || std::string_view(magic, sizeof magic) != kFrameMagic) {
        if (::lseek(fd.get(), 0, SEEK_SET) < 0)
            return (*why = std::string("lseek: ") + std::strerror(errno)), util::Fd();
        return fd;
    }
    struct stat st {};
    Frame frame;
    if (::fstat(fd.get(), &st) != 0 || ::lseek(fd.get(), 0, SEEK_SET) < 0 || !read_frame(fd.get(), frame, why))
        return util::Fd();
    bool encrypted = frame.flags & kEncrypted;
    if (encrypted && !how.key) return (*why = "encrypted, and no queue encryption key is set"), util::Fd();
    std::uint64_t overhead = kFrameHeader + (encrypted ? kNonce + kTag : 0);
    if (static_cast<std::uint64_t>(st.st_size) < overhead) return (*why = "cut short"), util::Fd();
    Cipher cipher;
    if (encrypted) {
        unsigned char nonce[kNonce];
        if (!read_all(fd.get(), nonce, kNonce)) return (*why = "cut short"), util::Fd();
        cipher = new_cipher(false, *how.key, nonce, frame.header);
        if (!cipher) return (*why = "cannot set AES-256-GCM up"), util::Fd();
    }
    util::Fd plain(::memfd_create("postern-message", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!plain) return (*why = std::string("memfd_create: ") + std::strerror(errno)), util::Fd();
    Decoder decoder(fd.get(), plain.get(), frame, std::move(cipher), why);
    if (!decoder.run(static_cast<std::uint64_t>(st.st_size) - overhead)) return util::Fd();
    // Whoever reads it (a delivery agent running as the recipient) cannot change it.
    ::fcntl(plain.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
    if (::lseek(plain.get(), 0, SEEK_SET) < 0)
        return (*why = std::string("lseek: ") + std::strerror(errno)), util::Fd();
    return plain;
}

std::string seal(const std::array<unsigned char, 32>& key, std::string_view aad, std::string_view plain) {
    std::string out(kNonce + plain.size() + kTag, '\0');
    auto* p = reinterpret_cast<unsigned char*>(out.data());
    int n = 0, tail = 0;
    Cipher c;
    if (RAND_bytes(p, kNonce) != 1 || !(c = new_cipher(true, key, p, aad)) ||
        EVP_EncryptUpdate(c.get(), p + kNonce, &n, reinterpret_cast<const unsigned char*>(plain.data()),
                          static_cast<int>(plain.size())) != 1 ||
        EVP_EncryptFinal_ex(c.get(), p + kNonce + n, &tail) != 1 ||
        EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_GET_TAG, kTag, p + kNonce + plain.size()) != 1)
        return "";  // the library failed (no entropy): the caller refuses the write
    return out;
}

bool unseal(const std::array<unsigned char, 32>& key, std::string_view aad, std::string_view sealed, std::string& plain,
            std::string* why) {
    if (sealed.size() < kNonce + kTag) return (*why = "cut short"), false;
    const auto* p = reinterpret_cast<const unsigned char*>(sealed.data());
    const std::size_t size = sealed.size() - kNonce - kTag;
    plain.assign(size, '\0');
    unsigned char tag[kTag];
    std::memcpy(tag, p + kNonce + size, kTag);
    int n = 0, tail = 0;
    Cipher c = new_cipher(false, key, p, aad);
    if (!c) return (*why = "cannot set AES-256-GCM up"), false;
    if (EVP_DecryptUpdate(c.get(), reinterpret_cast<unsigned char*>(plain.data()), &n, p + kNonce,
                          static_cast<int>(size)) != 1 ||
        EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_TAG, kTag, tag) != 1 ||
        EVP_DecryptFinal_ex(c.get(), reinterpret_cast<unsigned char*>(plain.data()) + n, &tail) != 1) {
        plain.clear();
        return (*why = "does not decrypt (another key, or changed)"), false;
    }
    return true;
}

}  // namespace postern::queue
