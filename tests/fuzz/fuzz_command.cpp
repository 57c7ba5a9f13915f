// Fuzz target: SMTP command lines and MAIL/RCPT paths (core/smtp/command.cpp).
// The input is taken as one command line and also as the arguments of each
// parser directly; results must respect the documented limits.

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "smtp/command.hpp"

using namespace postern::smtp;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

bool printable(std::string_view s) {
    for (char c : s)
        if (c < 0x20 || c > 0x7e) return false;
    return true;
}

void check_path(const std::optional<PathArg>& r, const PathError& err, bool sender) {
    if (!r) {
        check(!err.text.empty());
        return;
    }
    const Mailbox& mb = r->mailbox;
    check(mb.local.size() <= 64 && mb.domain.size() <= 255);
    check(printable(mb.local) && printable(mb.domain));
    check(sender || !mb.empty());
    for (char c : mb.domain) check(c < 'A' || c > 'Z' || mb.domain.starts_with("[IPv6:"));
    for (const Param& p : r->params) {
        check(!p.key.empty() && printable(p.key) && printable(p.value));
        for (char c : p.key) check(c < 'a' || c > 'z');
        check(p.has_value || p.value.empty());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);

    Command cmd = parse_command(in);
    check(cmd.name.size() + cmd.args.size() <= in.size());
    check(cmd.args.empty() || (cmd.args.front() != ' ' && cmd.args.back() != ' '));

    for (std::string_view args : {in, cmd.args}) {
        PathError err;
        check_path(parse_mail_from(args, &err), err, true);
        PathError err2;
        check_path(parse_rcpt_to(args, &err2), err2, false);
        (void)valid_helo_name(args);
    }
    return 0;
}
