// plugins/relay/scache.cpp — see scache.hpp.
#include "scache.hpp"

#include <openssl/ssl.h>

#include <algorithm>

#include "postern/support/sigpipe_guard.hpp"

namespace postern::relay_plugin {

// Runs from destructors too: nothing may escape (a QUIT is a courtesy).
void SessionCache::close(Link& link) noexcept {
    if (!link.session) return;
    try {
        util::SigpipeGuard guard;
        link.session->quit();
    } catch (...) {
    }
    link.session.reset();
}

Link SessionCache::take(const std::string& route) {
    sweep();
    auto it = kept_.find(route);
    if (it == kept_.end()) return {};
    Link link = std::move(it->second);
    kept_.erase(it);
    if (!link.session->quiet()) link.session.reset();  // a 421 or a close came meanwhile: nothing to say
    return link;
}

void SessionCache::put(const std::string& route, Link link) {
    if (!link.session) return;
    const auto now = Clock::now();
    if (link.spent(now)) return close(link);
    link.idle_since = now;
    link.needs_rset = true;
    auto it = kept_.find(route);
    if (it != kept_.end()) {
        close(it->second);
        it->second = std::move(link);
    } else {
        kept_.emplace(route, std::move(link));
    }
    while (kept_.size() > kMaxKept) {
        auto oldest = std::min_element(kept_.begin(), kept_.end(), [](const auto& a, const auto& b) {
            return a.second.idle_since < b.second.idle_since;
        });
        close(oldest->second);
        kept_.erase(oldest);
    }
}

void SessionCache::sweep() {
    const auto now = Clock::now();
    for (auto it = kept_.begin(); it != kept_.end();) {
        if (now - it->second.idle_since < it->second.idle_limit && !it->second.spent(now)) {
            ++it;
            continue;
        }
        close(it->second);
        it = kept_.erase(it);
    }
}

void SessionCache::keep_only(const std::vector<std::string>& routes) {
    for (auto it = kept_.begin(); it != kept_.end();) {
        if (std::find(routes.begin(), routes.end(), it->first) != routes.end()) {
            ++it;
            continue;
        }
        close(it->second);
        it = kept_.erase(it);
    }
}

void SessionCache::clear() {
    for (auto& [route, link] : kept_) close(link);
    kept_.clear();
}

SessionCache& kept_sessions() {
    struct Kept {
        Kept() { OPENSSL_init_ssl(0, nullptr); }
        SessionCache sessions;
    };
    static Kept kept;
    return kept.sessions;
}

}  // namespace postern::relay_plugin
