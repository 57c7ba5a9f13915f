// Fuzz target: format templates (core/delivery/format.cpp), the %{...}
// expansion of maildir paths and mda commands. The template comes from the
// config, but the values come from the envelope: whatever a client sends,
// an expanded value must stay inside its folder and mean nothing to a shell.
//
// Input: one byte choosing the use (path, command, wrapper) and the
// sub-address delimiter, then '\n'-separated fields: template, sender,
// rcpt, dest, user, home (missing fields are empty). Checked:
//  - check_format() and expand_format() agree: a template error is the same
//    error in both, and a template check_format() accepts fails only on its
//    values;
//  - a result is never longer than kMaxExpansion; an error's offset is in
//    the template;
//  - each envelope value, put alone into a path by fixed probe templates
//    (with and without raw, strip, slices), has only the characters the
//    sanitiser allows and no leading '.';
//  - a command's script never holds envelope text: expand_command() gives
//    the same script for these values as for empty ones, and fails on its
//    template exactly when check_format() does;
//  - wrap_command() of a good wrapper around a good command is a good
//    command template.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "delivery/format.hpp"

using namespace postern::delivery;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

bool safe_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '@' || c == '.' ||
           c == '_' || c == '+' || c == '-' || c == '=';
}

void check_safe(std::string_view v, bool raw) {
    if (!v.empty()) check(v[0] != '.');
    for (char c : v) {
        auto u = static_cast<unsigned char>(c);
        if (raw) check(c != '/' && u >= 0x20 && u != 0x7f);
        else check(safe_char(c) || c == ':');
    }
}

void check_expansion(std::string_view tmpl, const FormatValues& v, FormatUse use) {
    FormatResult r = expand_format(tmpl, v, use);
    auto checked = check_format(tmpl, use);
    if (r) {
        check(!checked);
        check(r.text->size() <= kMaxExpansion);
        FormatResult again = expand_format(tmpl, v, use);
        check(again && *again.text == *r.text);
        return;
    }
    check(r.error.offset <= tmpl.size());
    check(!r.error.text.empty());
    if (r.error.kind == FormatError::Kind::Template) {
        check(checked && checked->text == r.error.text && checked->offset == r.error.offset);
    } else {
        check(!checked);
    }
}

void check_command(std::string_view tmpl, const FormatValues& v) {
    CommandResult c = expand_command(tmpl, v);
    auto checked = check_format(tmpl, FormatUse::Command);
    if (!c) {
        check(c.error.offset <= tmpl.size() && !c.error.text.empty());
        if (c.error.kind == FormatError::Kind::Template)
            check(checked && checked->text == c.error.text && checked->offset == c.error.offset);
        else check(!checked);
        return;
    }
    check(!checked);
    // (Empty values fill any slice; only %{mbox.from}, MAILER-DAEMON for the
    // null sender, can make the blank expansion the longer one.)
    CommandResult blank = expand_command(tmpl, FormatValues{});
    if (!blank) {
        check(blank.error.kind == FormatError::Kind::Value);
        return;
    }
    check(blank.command->script == c.command->script);
    check(blank.command->params.size() == c.command->params.size());
}

void check_wrapper(std::string_view wrapper) {
    static constexpr std::string_view kCommand = "/usr/bin/procmail -f %{sender} -a '%{rcpt.user:strip}'";
    FormatResult w = wrap_command(wrapper, kCommand);
    if (!check_format(wrapper, FormatUse::Wrapper) && w) check(!check_format(*w.text, FormatUse::Command));
    if (!w) check(w.error.kind == FormatError::Kind::Template && !w.error.text.empty());
}

// Each envelope value alone in a path: the prefix is ours, the rest is the
// sanitised value.
void check_probes(const FormatValues& v) {
    static constexpr std::string_view kNames[] = {"sender",      "sender.user",   "sender.domain", "rcpt",
                                                  "rcpt.user",   "rcpt.domain",   "dest",          "dest.user",
                                                  "dest.domain", "user.username", "mbox.from"};
    static constexpr std::string_view kTails[] = {
        "", ":lowercase|strip", "[1:]", "[-2:]", "[1]", ":uppercase|raw", ":raw", ":strip|raw", "[1:-1]:raw"};
    for (auto name : kNames) {
        for (auto tail : kTails) {
            std::string tmpl = "/m/%{" + std::string(name) + std::string(tail) + "}";
            FormatResult r = expand_format(tmpl, v, FormatUse::Path);
            if (!r) {
                check(r.error.kind == FormatError::Kind::Value);
                continue;
            }
            check(r.text->rfind("/m/", 0) == 0);
            check_safe(std::string_view(*r.text).substr(3), tail.find("raw") != std::string_view::npos);
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t mode = data[0];
    std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
    std::vector<std::string_view> fields;
    while (fields.size() < 5) {
        auto nl = rest.find('\n');
        if (nl == std::string_view::npos) break;
        fields.push_back(rest.substr(0, nl));
        rest.remove_prefix(nl + 1);
    }
    fields.push_back(rest);
    fields.resize(6);

    static constexpr FormatUse kUses[] = {FormatUse::Path, FormatUse::Command, FormatUse::Wrapper};
    static constexpr char kDelims[] = {'+', '-', '=', '_'};
    FormatValues v;
    v.sender = fields[1];
    v.rcpt = fields[2];
    v.dest = fields[3];
    v.user = fields[4];
    v.home = fields[5];
    v.subaddr_delim = kDelims[(mode >> 2) & 3];
    FormatUse use = kUses[(mode & 3) % 3];
    if (use == FormatUse::Wrapper) v.mda = "/usr/bin/procmail -f -";

    check_expansion(fields[0], v, use);
    if (use == FormatUse::Command) check_command(fields[0], v);
    if (use == FormatUse::Wrapper) check_wrapper(fields[0]);
    check_probes(v);
    std::string s = sanitise_value(fields[2]);
    check(s.size() == fields[2].size());
    check_safe(s, false);
    return 0;
}
