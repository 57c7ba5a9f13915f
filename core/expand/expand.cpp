// Recipient expansion through alias and virtual tables; see expand.hpp for
// the rules and the choices made.
#include "expand/expand.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <utility>

#include "util/fd.hpp"

namespace postern::expand {
namespace {

// Bounds on one expansion, whatever the tables hold: every table lookup
// counts, and no recipient fans out to more destinations than a message may
// have recipients (smtp limit max-rcpt defaults to 1000).
constexpr int kMaxLookups = 1000;
constexpr std::size_t kMaxDests = 1000;
constexpr off_t kMaxIncludeBytes = 1 << 20;

constexpr const char* kTempFailText = "4.3.0 Temporary lookup failure";
constexpr const char* kExpansionText = "5.2.4 Mailing list expansion problem";

using Kind = Destination::Kind;

// "bob+lists" -> {"bob", "lists"}; a delimiter in first place is no tag.
std::pair<std::string_view, std::string_view> split_tag(std::string_view name, char delim) {
    auto d = name.find(delim);
    if (d == std::string_view::npos || d == 0) return {name, {}};
    return {name.substr(0, d), name.substr(d + 1)};
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

class Expander {
public:
    explicit Expander(const Request& req) : req_(req) {}
    Result run();

private:
    // Where the elements being expanded come from.
    struct Origin {
        std::string_view key;   // the table key whose value holds them (owner of files/commands)
        std::string_view node;  // the name that was looked up (sameuser)
        int depth;              // depth of the entry; its elements are one deeper
        std::string_view ext;   // the tag they inherit
        bool in_include;
    };

    bool fail(Status status, int code, std::string text, std::string log);
    bool temp_fail(std::string log) { return fail(Status::TempFail, 451, kTempFailText, std::move(log)); }
    bool expansion_problem(std::string log) { return fail(Status::Permanent, 550, kExpansionText, std::move(log)); }

    bool lookup(const std::string& key, std::string* value, bool* found);
    bool expand_virtual();
    bool expand_name(const std::string& name, int depth, std::string_view ext, bool is_recipient);
    bool expand_entry(const Origin& from, std::string_view value);
    bool expand_element(const Element& e, const Origin& from);
    bool expand_include(const std::string& path, const Origin& from);

    bool add_user(std::string_view name, std::string_view ext, bool is_recipient);
    bool deliver_user(const UserInfo& info, std::string_view ext);
    bool follow_forward(const UserInfo& info, std::string_view ext, bool* handled);
    bool expand_forward_element(const Element& e, const UserInfo& info, std::string_view ext);
    bool add_local(Kind kind, const std::string& value, std::string_view key, std::string_view ext);
    bool add(Destination d);
    bool first_time(Kind kind, const std::string& value) { return seen_.emplace(kind, value).second; }

    bool as_user_account(UserInfo* out);
    bool owner_account(std::string_view key, UserInfo* out);
    bool default_account(UserInfo* out);

    table::Table* table() const { return req_.virtual_ ? req_.virtual_ : req_.alias; }

    const Request& req_;
    Result res_;
    std::string recipient_;  // "<local@domain>", for the reply
    std::set<std::string, std::less<>> visited_;
    std::set<std::pair<Kind, std::string>> seen_;
    std::optional<UserInfo> as_user_;
    int lookups_ = 0;
};

bool Expander::fail(Status status, int code, std::string text, std::string log) {
    res_.status = status;
    res_.code = code;
    res_.error = std::move(text);
    res_.log = std::move(log);
    return false;
}

Result Expander::run() {
    recipient_ = "<" + req_.local + (req_.domain.empty() ? "" : "@" + req_.domain) + ">";
    // Keys, user names and so tags are compared lowercased everywhere.
    std::string local = table::lowercase(req_.local);
    std::string_view ext = split_tag(local, req_.subaddr_delim).second;
    bool ok = req_.virtual_ ? expand_virtual()
              : req_.alias  ? expand_name(local, 0, ext, true)
                            : add_user(local, ext, true);
    if (ok && res_.dests.empty()) expansion_problem("expansion of " + recipient_ + " leaves no destination");
    if (res_.status != Status::Ok) res_.dests.clear();
    return std::move(res_);
}

bool Expander::lookup(const std::string& key, std::string* value, bool* found) {
    if (++lookups_ > kMaxLookups)
        return expansion_problem("expansion of " + recipient_ + " needs more than " + std::to_string(kMaxLookups) +
                                 " lookups");
    std::string why;
    switch (table()->lookup(table::Service::Alias, key, value, &why)) {
    case table::Result::Found: *found = true; return true;
    case table::Result::NotFound: *found = false; return true;
    case table::Result::TempFail: break;
    }
    return temp_fail("table <" + table()->name() + ">: lookup of " + quoted(key) + " failed" +
                     (why.empty() ? "" : ": " + why));
}

// Virtual: the most specific key wins; no key at all means no such recipient.
bool Expander::expand_virtual() {
    std::string local = table::lowercase(req_.local);
    auto [user, tag] = split_tag(local, req_.subaddr_delim);
    std::string u(user), d = req_.domain;
    std::vector<std::string> keys;
    if (!d.empty()) {
        if (!tag.empty()) keys.push_back(local + "@" + d);
        keys.push_back(u + "@" + d);
    }
    if (!tag.empty()) keys.push_back(local);
    keys.push_back(u);
    if (!d.empty()) keys.push_back("@" + d);
    keys.push_back("@");
    for (const auto& key : keys) {
        std::string value;
        bool found = false;
        if (!lookup(key, &value, &found)) return false;
        if (found) return expand_entry({key, key, 0, tag, false}, value);
    }
    return fail(Status::NotFound, 550, "5.1.1 " + recipient_ + ": Recipient address rejected: User unknown",
                "no key for " + recipient_ + " in table <" + table()->name() + ">");
}

// Alias: `name` (lowercased, maybe with a tag) is looked up with its tag,
// then without; no entry means the name is a user.
bool Expander::expand_name(const std::string& name, int depth, std::string_view ext, bool is_recipient) {
    if (!visited_.insert(name).second) return true;  // met before: a loop or a diamond
    auto [base, tag] = split_tag(name, req_.subaddr_delim);
    if (!tag.empty()) ext = tag;
    std::string key = name, value;
    bool found = false;
    if (!lookup(key, &value, &found)) return false;
    if (!found && !tag.empty()) {
        key = std::string(base);
        if (!visited_.insert(key).second) return true;
        if (!lookup(key, &value, &found)) return false;
    }
    if (!found) return add_user(name, ext, is_recipient);
    return expand_entry({key, name, depth, ext, false}, value);
}

bool Expander::expand_entry(const Origin& from, std::string_view value) {
    if (from.depth + 1 > req_.max_depth)
        return expansion_problem("expansion of " + recipient_ + " deeper than " + std::to_string(req_.max_depth) +
                                 " at " + quoted(from.key) + " in table <" + table()->name() + ">");
    std::vector<std::string> items;
    std::string why;
    if (!split_alias_list(value, &items, &why))
        return expansion_problem("table <" + table()->name() + ">: entry " + quoted(from.key) + ": " + why);
    for (const auto& item : items)
        if (!expand_element(classify_element(item, req_.subaddr_delim), from)) return false;
    return true;
}

bool Expander::expand_element(const Element& e, const Origin& from) {
    switch (e.kind) {
    case Element::Kind::Invalid:
        return expansion_problem("table <" + table()->name() + ">: entry " + quoted(from.key) + ": " + e.value);
    case Element::Kind::Error:
        return fail(e.code < 500 ? Status::TempFail : Status::Permanent, e.code, e.value,
                    "error: entry of " + quoted(from.key) + " in table <" + table()->name() + ">");
    case Element::Kind::Include:
        if (from.in_include) {
            res_.warnings.push_back("nested :include:" + e.value + " skipped (one level only)");
            return true;
        }
        return expand_include(e.value, from);
    case Element::Kind::File: return add_local(Kind::File, e.value, from.key, from.ext);
    case Element::Kind::Command: return add_local(Kind::Command, e.value, from.key, from.ext);
    case Element::Kind::Address:
        if (!first_time(Kind::Address, table::lowercase(e.value))) return true;
        return add({Kind::Address, e.value, {}, {}, std::string(from.ext)});
    case Element::Kind::User: break;
    }
    // Virtual tables name local users; alias tables may chain, except to
    // the entry's own name, which is the user itself (sameuser): `root: root`,
    // and `bob: bob+box` too, but not `bob+box: bob` (bob may be an alias).
    std::string_view base = split_tag(e.value, req_.subaddr_delim).first;
    if (req_.virtual_ || e.value == from.key || e.value == from.node || base == from.key)
        return add_user(e.value, from.ext, false);
    return expand_name(e.value, from.depth + 1, from.ext, false);
}

bool Expander::expand_include(const std::string& path, const Origin& from) {
    auto cannot = [&](const char* what) {
        return temp_fail("cannot " + std::string(what) + " :include: file " + path + ": " + std::strerror(errno));
    };
    util::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!fd) return cannot("open");
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return cannot("stat");
    if (!S_ISREG(st.st_mode)) return temp_fail(":include: file " + path + " is not a regular file");
    if (st.st_size > kMaxIncludeBytes) return expansion_problem(":include: file " + path + " is larger than 1 MiB");
    std::string text(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t got = 0;
    while (got < text.size()) {
        ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return cannot("read");
        if (n == 0) break;  // shrank while we read: take what is there
        got += static_cast<std::size_t>(n);
    }
    text.resize(got);
    Origin inner = from;
    inner.in_include = true;
    for (const auto& line : include_lines(text)) {
        std::vector<std::string> items;
        std::string why;
        if (!split_alias_list(line, &items, &why)) return expansion_problem(":include: file " + path + ": " + why);
        for (const auto& item : items)
            if (!expand_element(classify_element(item, req_.subaddr_delim), inner)) return false;
    }
    return true;
}

bool Expander::add(Destination d) {
    if (res_.dests.size() >= kMaxDests)
        return expansion_problem("expansion of " + recipient_ + " gives more than " + std::to_string(kMaxDests) +
                                 " destinations");
    res_.dests.push_back(std::move(d));
    return true;
}

bool Expander::add_user(std::string_view name, std::string_view ext, bool is_recipient) {
    auto [base, tag] = split_tag(name, req_.subaddr_delim);
    if (!tag.empty()) ext = tag;
    std::string user = table::lowercase(base);
    if (!first_time(Kind::User, user)) return true;
    UserInfo info;
    std::string why;
    switch (lookup_user(req_.userbase, user, &info, &why)) {
    case Status::Ok: break;
    case Status::NotFound:
        // `user NAME` on the action: that one account delivers for every
        // recipient, which need not exist (virtual hosting, smtpd.conf(5)).
        if (!req_.as_user.empty()) {
            if (!as_user_account(&info)) return false;
            break;
        }
        if (is_recipient)
            return fail(Status::NotFound, 550, "5.1.1 " + recipient_ + ": Recipient address rejected: User unknown",
                        "no user " + quoted(user) + " in the userbase");
        return expansion_problem("alias target " + quoted(user) + " of " + recipient_ + " is not a user");
    case Status::TempFail: return temp_fail(why);
    case Status::Permanent: return expansion_problem(why);
    }
    bool handled = false;
    if (!follow_forward(info, ext, &handled)) return false;
    if (handled) return true;
    if (req_.forward_only)
        return temp_fail("user " + quoted(user) + " has no .forward, and the action is forward-only");
    if (req_.expand_only)
        return expansion_problem("user " + quoted(user) + " has no .forward, and the action is expand-only");
    return deliver_user(info, ext);
}

bool Expander::deliver_user(const UserInfo& info, std::string_view ext) {
    Destination d{Kind::User, info.name, info, info, std::string(ext)};
    if (!req_.as_user.empty() && !as_user_account(&d.run_as)) return false;
    return add(std::move(d));
}

// The user's .forward, when there is one that lists something: its entries
// replace the user (*handled). Ignored files are logged and count as none.
bool Expander::follow_forward(const UserInfo& info, std::string_view ext, bool* handled) {
    *handled = false;
    if (!req_.forward || !req_.as_user.empty()) return true;
    ForwardFile f = req_.forward(info);
    switch (f.status) {
    case ForwardFile::Status::Absent: return true;
    case ForwardFile::Status::Ignored: res_.warnings.push_back(f.why); return true;
    case ForwardFile::Status::TempFail: return temp_fail(f.why);
    case ForwardFile::Status::Found: break;
    }
    const std::size_t before = res_.dests.size();
    for (const auto& line : include_lines(f.text)) {
        std::vector<std::string> items;
        std::string why;
        if (!split_alias_list(line, &items, &why))
            return expansion_problem(".forward of " + quoted(info.name) + ": " + why);
        for (const auto& item : items)
            if (!expand_forward_element(classify_element(item, req_.subaddr_delim), info, ext)) return false;
    }
    // A .forward whose every line was skipped leaves the user's own delivery.
    *handled = res_.dests.size() > before;
    return true;
}

bool Expander::expand_forward_element(const Element& e, const UserInfo& info, std::string_view ext) {
    const std::string source = ".forward of " + quoted(info.name);
    const bool runs_something = e.kind == Element::Kind::File || e.kind == Element::Kind::Command;
    if (req_.forward_only && (runs_something || e.kind == Element::Kind::Error))
        return temp_fail(source + ": only addresses may be forwarded by a forward-only action");
    switch (e.kind) {
    case Element::Kind::Invalid: return expansion_problem(source + ": " + e.value);
    case Element::Kind::Error:
        return fail(e.code < 500 ? Status::TempFail : Status::Permanent, e.code, e.value, "error: line in " + source);
    case Element::Kind::Include: res_.warnings.push_back(source + ": :include:" + e.value + " skipped"); return true;
    case Element::Kind::File:
    case Element::Kind::Command:
        if (info.uid == 0) {
            res_.warnings.push_back(source + ": " + e.value + " skipped (root's .forward runs no files or commands)");
            return true;
        }
        if (!first_time(e.kind == Element::Kind::File ? Kind::File : Kind::Command, e.value)) return true;
        return add({e.kind == Element::Kind::File ? Kind::File : Kind::Command, e.value, info, info, std::string(ext)});
    case Element::Kind::Address:
        if (!first_time(Kind::Address, table::lowercase(e.value))) return true;
        return add({Kind::Address, e.value, {}, {}, std::string(ext)});
    case Element::Kind::User: break;
    }
    std::string_view base = split_tag(e.value, req_.subaddr_delim).first;
    if (table::lowercase(base) == info.name) {  // sameuser: the user keeps a copy
        if (req_.forward_only || req_.expand_only)
            return temp_fail(source + " names the user, but the action delivers nothing itself");
        return deliver_user(info, ext);
    }
    if (table() && !req_.virtual_) return expand_name(table::lowercase(e.value), 1, ext, false);
    return add_user(e.value, ext, false);
}

bool Expander::add_local(Kind kind, const std::string& value, std::string_view key, std::string_view ext) {
    if (!first_time(kind, value)) return true;
    UserInfo who;
    bool found = false;
    if (!req_.as_user.empty()) {
        if (!as_user_account(&who)) return false;
        found = who.uid != 0;
    }
    if (!found && !owner_account(key, &who)) return false;
    if (who.uid == 0 && !default_account(&who)) return false;
    return add({kind, value, who, who, std::string(ext)});
}

bool Expander::as_user_account(UserInfo* out) {
    if (!as_user_) {
        UserInfo info;
        std::string why;
        switch (lookup_user(req_.userbase, req_.as_user, &info, &why)) {
        case Status::Ok: as_user_ = info; break;
        case Status::NotFound: return temp_fail("action user " + quoted(req_.as_user) + " is unknown");
        case Status::TempFail: return temp_fail(why);
        case Status::Permanent: return temp_fail(why);
        }
    }
    *out = *as_user_;
    return true;
}

// The user named by the alias key (tag stripped) if it is one; else the
// default user. A uid of 0 is left for the caller to replace.
bool Expander::owner_account(std::string_view key, UserInfo* out) {
    std::string_view base = split_tag(key, req_.subaddr_delim).first;
    if (classify_element(base, req_.subaddr_delim).kind != Element::Kind::User) return default_account(out);
    std::string why;
    switch (lookup_user(req_.userbase, base, out, &why)) {
    case Status::Ok: return true;
    case Status::NotFound: return default_account(out);
    case Status::TempFail: return temp_fail(why);
    case Status::Permanent: return expansion_problem(why);
    }
    return false;
}

bool Expander::default_account(UserInfo* out) {
    std::string why;
    Status s = lookup_user(nullptr, req_.default_user, out, &why);
    if (s == Status::Ok && out->uid != 0) return true;
    if (s == Status::TempFail) return temp_fail(why);
    return temp_fail("no unprivileged account for files and commands: default user " + quoted(req_.default_user) +
                     (s == Status::Ok ? " has uid 0" : " is unknown"));
}

}  // namespace

Result expand(const Request& req) { return Expander(req).run(); }

}  // namespace postern::expand
