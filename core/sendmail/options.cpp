// sendmail/options.cpp — see options.hpp.
#include "sendmail/options.hpp"

#include <string_view>

namespace postern::sendmail {
namespace {

// Options that take a value, attached or in the next argument. Those not
// handled below are other sendmails' options, accepted so that scripts
// written for them run, and ignored (as OpenSMTPD's smtpctl ignores them).
constexpr std::string_view kWithValue = "ABbCeFfhLNOopRrVX";
// Flags without a value, ignored: -m (me too), -S, -x, -c, -n, -U, -G, -I.
constexpr std::string_view kIgnoredFlags = "mSxcnUGI";

bool notify_ok(std::string_view v) {
    if (v == "never") return true;
    while (!v.empty()) {
        size_t comma = v.find(',');
        std::string_view word = v.substr(0, comma);
        if (word != "success" && word != "failure" && word != "delay") return false;
        if (comma == std::string_view::npos) break;
        v.remove_prefix(comma + 1);
    }
    return !v.empty();
}

std::string lower(std::string s) {
    for (auto& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}

// One option with its value ('\0' when it takes none); "" = fine.
std::string apply(char opt, const std::string& value, Options& o) {
    switch (opt) {
    case 't': o.extract = true; return "";
    case 'i': o.ignore_dots = true; return "";
    case 'v': o.verbose = true; return "";
    case 'q': return "-q is not supported: posternd runs its queue itself (posternctl schedule all retries it now)";
    case 'b':
        if (value == "m") o.mode = Mode::Send;
        else if (value == "p") o.mode = Mode::Queue;
        else if (value == "i") o.mode = Mode::Aliases;
        else if (value == "s") o.mode = Mode::Smtp;
        else if (value == "d" || value == "D") return "-b" + value + " is not supported: the daemon is posternd";
        else return "-b" + value + " is not supported (only -bm, -bp, -bi and -bs are)";
        return "";
    case 'f':
    case 'r': {
        std::string v = value;
        if (v.size() >= 2 && v.front() == '<' && v.back() == '>') v = v.substr(1, v.size() - 2);
        o.sender = v;
        o.sender_given = true;
        return "";
    }
    case 'F': o.full_name = value; return "";
    case 'N':
        if (!notify_ok(lower(value))) return "-N takes never, or a list of success, failure and delay";
        o.notify = lower(value);
        return "";
    case 'R':
        if (lower(value) != "full" && lower(value) != "hdrs") return "-R takes full or hdrs";
        o.ret = lower(value);
        return "";
    case 'V': o.envid = value; return "";
    case 'C': o.config = value; return "";
    case 'o':
        // -oi is -i; the other -oX options tune Sendmail itself.
        if (value == "i") o.ignore_dots = true;
        else o.warnings.push_back("-o" + value + " ignored");
        return "";
    default: o.warnings.push_back(std::string("-") + opt + " ignored"); return "";
    }
}

}  // namespace

std::string program_name(const std::string& argv0) {
    size_t slash = argv0.rfind('/');
    return slash == std::string::npos ? argv0 : argv0.substr(slash + 1);
}

ParseResult parse(const std::vector<std::string>& argv) {
    ParseResult r;
    Options& o = r.options;
    std::string name = argv.empty() ? "" : program_name(argv[0]);
    if (name == "mailq") o.mode = Mode::Queue;
    if (name == "newaliases") o.mode = Mode::Aliases;
    bool options_done = false;
    for (size_t i = 1; i < argv.size(); ++i) {
        const std::string& a = argv[i];
        if (options_done || a.size() < 2 || a[0] != '-') {
            o.recipients.push_back(a);
            continue;
        }
        if (a == "--") {
            options_done = true;
            continue;
        }
        for (size_t k = 1; k < a.size(); ++k) {
            char opt = a[k];
            if (kWithValue.find(opt) != std::string_view::npos) {
                std::string value;
                if (k + 1 < a.size()) value = a.substr(k + 1);
                else if (i + 1 < argv.size()) value = argv[++i];
                else {
                    r.error = std::string("option -") + opt + " needs a value";
                    return r;
                }
                r.error = apply(opt, value, o);
                if (!r.error.empty()) return r;
                break;  // the value took the rest of the argument
            }
            if (opt == 'q') {  // -q, -q30m, -qf...: all of it refused
                r.error = apply(opt, "", o);
                return r;
            }
            if (std::string_view("tiv").find(opt) == std::string_view::npos &&
                kIgnoredFlags.find(opt) == std::string_view::npos) {
                r.error = std::string("unknown option -") + opt;
                return r;
            }
            r.error = apply(opt, "", o);
            if (!r.error.empty()) return r;
        }
    }
    return r;
}

}  // namespace postern::sendmail
