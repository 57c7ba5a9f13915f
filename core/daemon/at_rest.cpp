// daemon/at_rest.cpp — the queue's at-rest settings; see at_rest.hpp.
#include "daemon/at_rest.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "queue/store.hpp"
#include "util/fd.hpp"

namespace postern::daemon {
namespace {

constexpr std::size_t kKeyLength = 32;

// The key file's 32 characters; "" with `why`.
std::string read_key_file(const std::string& path, std::string* why) {
    const std::string make = " (make one with: (umask 077; openssl rand -hex 16 > " + path + "))";
    util::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0) {
        *why = "cannot read the queue key file " + path + ": " + std::strerror(errno) + make;
        return "";
    }
    if (!S_ISREG(st.st_mode)) {
        *why = "the queue key file " + path + " is not a regular file";
        return "";
    }
    if ((st.st_mode & 077) != 0 || (st.st_uid != 0 && st.st_uid != ::geteuid())) {
        *why = "the queue key file " + path + " must be readable by its owner alone (chmod 600 " + path +
               ") and owned by root";
        return "";
    }
    char buf[kKeyLength + 2];
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    std::string key = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
    if (!key.empty() && key.back() == '\n') key.pop_back();
    if (key.size() != kKeyLength) {
        *why = "the queue key file " + path + " must hold the 32-character key, as 'openssl rand -hex 16' prints it";
        return "";
    }
    return key;
}

void set_key(const std::string& key, queue::AtRest* out) {
    out->key.emplace();
    std::memcpy(out->key->data(), key.data(), kKeyLength);
}

// `queue encryption` switched off with mail written under it still queued
// (the spool's key-check says so): the key file's key opens that mail, and
// nothing new is encrypted.
std::string read_only_key(const std::string& config_file, const std::string& spool, queue::AtRest* out) {
    const std::string check = spool + "/key-check";
    if (::access(check.c_str(), F_OK) != 0) return "";
    const std::string path = key_file_path(config_file);
    const std::string where = config_file.empty() ? std::string("postern") : config_file;
    std::string why;
    if (::access(path.c_str(), F_OK) != 0)
        return where + ": the queue may hold mail written with `queue encryption` (" + check +
               " exists): to read it with encryption off, put the key it was written with in " + path +
               " (mode 0600), or set `queue encryption` again; once no such mail is left, delete " + check;
    std::string key = read_key_file(path, &why);
    if (key.empty()) return where + ": " + why;
    set_key(key, out);
    out->key_reads_only = true;
    if (!queue::key_opens(spool, *out, &why)) return where + ": " + why;
    return "";
}

}  // namespace

std::string key_file_path(const std::string& config_file) {
    if (const char* creds = std::getenv("CREDENTIALS_DIRECTORY"); creds && *creds) {
        std::string path = std::string(creds) + "/queue.key";
        if (::access(path.c_str(), F_OK) == 0) return path;
    }
    std::filesystem::path dir = config_file.empty() ? std::filesystem::path(".")
                                                    : std::filesystem::path(config_file).parent_path();
    if (dir.empty()) dir = ".";
    return (dir / "queue.key").string();
}

std::string load_at_rest(const config::Config& cfg, const std::string& config_file, const std::string& spool,
                         queue::AtRest* out) {
    out->compress = cfg.queue_compression;
    out->key.reset();
    out->key_reads_only = false;
    if (!cfg.queue_encryption) return read_only_key(config_file, spool, out);
    std::string why;
    std::string key = cfg.queue_encryption_key.empty() ? read_key_file(key_file_path(config_file), &why)
                                                       : cfg.queue_encryption_key;
    if (key.size() != kKeyLength) return config::format({cfg.queue_encryption_where, why});
    set_key(key, out);
    if (!queue::key_opens(spool, *out, &why)) return config::format({cfg.queue_encryption_where, why});
    return "";
}

}  // namespace postern::daemon
