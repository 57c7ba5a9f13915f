// The system's answers about users, kept a few seconds; see passwd_cache.hpp.
#include "expand/passwd_cache.hpp"

namespace postern::expand {

Status PasswdCache::get(const std::string& name, UserInfo* out, std::string* error) {
    const auto now = clock_();
    {
        std::lock_guard lock(mutex_);
        auto it = answers_.find(name);
        if (it != answers_.end() && now < it->second.until) {
            if (it->second.status == Status::Ok) *out = it->second.info;
            return it->second.status;
        }
    }
    // Looked up without the lock: NSS may take a while, and other names need not wait.
    UserInfo info;
    Status status = lookup_(name, &info, error);
    if (status != Status::Ok && status != Status::NotFound) return status;
    std::lock_guard lock(mutex_);
    if (answers_.size() >= kMaxEntries) answers_.clear();  // a flood of names: start again, bounded
    answers_[name] = Answer{status, info, now + kTtl};
    if (status == Status::Ok) *out = std::move(info);
    return status;
}

}  // namespace postern::expand
