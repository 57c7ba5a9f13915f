// Format templates: the %{...} specifiers of maildir paths, mda commands and
// mda wrappers, as OpenSMTPD's smtpd.conf(5) defines them.
//
//   %{NAME[SLICE]:MOD|MOD...}
//
// NAME (case-insensitive): sender, sender.user, sender.domain, rcpt,
// rcpt.user, rcpt.domain, dest, dest.user, dest.domain, user.username,
// user.directory, mbox.from (the sender, MAILER-DAEMON for <>), and mda
// (the wrapped command; mda wrappers only, and written plainly: %{mda}).
// SLICE, optional: [N] one character, [N:] from N, [:M] up to M, [N:M].
// N counts from 0, a negative N from the end ([-3:] = the last three). A
// positive M is inclusive, a negative M drops that many from the end
// ("example.org"[0:6] = [0:-4] = "example").
// MOD, optional, applied left to right: lowercase, uppercase, strip (drop the
// +tag, the sub-address delimiter being configurable), raw (no sanitising).
// `%%` is a literal '%'; a template that starts with "~/" (or is "~") starts
// with the user's home folder.
//
// Order of work on one value: modifiers, then the slice, then sanitising.
// Sanitising is what keeps envelope text inert: every byte but letters,
// digits and @ . _ + - = becomes ':', and so does a leading '.', so a value
// can never hold a '/', climb with "..", or mean anything to /bin/sh. With
// `raw`, in a path only '/', control bytes and a leading '.' still become ':'.
// The home folder and %{mda} are the admin's own text and are never sanitised.
//
// Commands (mda actions, alias |command lines, wrappers) are not spliced:
// expand_command() leaves the admin's text as it is and puts a reference to
// a positional parameter ("${1}", "${2}"...) where each %{...} was, quoted
// for the shell according to where it stands (outside quotes "${N}", inside
// double quotes ${N}, inside single quotes '"${N}"'), and hands the values
// over apart, for `/bin/sh -c SCRIPT sh VALUE1 VALUE2...`. A value is then
// never parsed by that shell, whatever it holds. `raw` is still refused in
// a command: a command may pass a value on to another shell (su -c "...",
// ssh, eval), where only a sanitised value is sure to be inert. A %{...}
// right after a backslash that would escape its quoting is a template error.
//
// Failures are typed, never a silently wrong path:
//  - a template error (unknown name or modifier, bad slice syntax, no '}',
//    raw in a command, %{mda} outside a wrapper or with a slice or modifier,
//    "~name" in a path, a %{...} escaped by a backslash in a command): the
//    config is wrong.
//    check_format() finds these at `posternd -n`; at delivery time the mail
//    waits (temporary failure) until the config is fixed.
//  - a value error (a slice starting past this value's end, an expansion
//    longer than kMaxExpansion): this envelope can never be expanded by this
//    template; the delivery fails permanently and the message bounces.
// OpenSMTPD fails such expansions too; it also refuses [-N] (a bug in its
// offset arithmetic), which postern reads as the N-th character from the end.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::delivery {

// Where the expansion goes; it decides what `raw` and %{mda} may do.
enum class FormatUse {
    Path,     // a maildir folder or mbox file
    Command,  // an mda command, run by /bin/sh -c (see expand_command)
    Wrapper,  // an mda wrapper's command (may use %{mda}; see wrap_command)
};

// What a template draws on, for one delivery.
struct FormatValues {
    std::string_view sender;  // "" for the null sender <>
    std::string_view rcpt;    // as given in RCPT TO
    std::string_view dest;    // after alias and virtual expansion
    std::string_view user;    // the local user delivering
    std::string_view home;    // that user's home folder
    // The wrapped command for %{mda}, in expand_format() only: a delivery
    // composes the two templates first (wrap_command) and expands the result.
    std::optional<std::string_view> mda;
    char subaddr_delim = '+';  // `smtp sub-addr-delim`
};

struct FormatError {
    enum class Kind {
        Template,  // the template is wrong: fix the config
        Value,     // this envelope's values cannot fill it
    };
    Kind kind = Kind::Template;
    std::size_t offset = 0;  // byte of the template the error is about
    std::string text;        // "expected ..., found ..." for template errors
};

// Either the expanded text or why there is none.
struct FormatResult {
    std::optional<std::string> text;
    FormatError error;  // meaningful when !text

    explicit operator bool() const { return text.has_value(); }
};

// The longest expansion: one byte under PATH_MAX, and far above any real
// maildir path or mda command.
inline constexpr std::size_t kMaxExpansion = 4095;

// The template filled in, values spliced into the text: for a path. A
// command is run with expand_command(); spliced into a command's text
// (Command, Wrapper), every value is sanitised.
FormatResult expand_format(std::string_view tmpl, const FormatValues& values, FormatUse use);

// A command for `/bin/sh -c script sh params...` (see the top of this file).
struct ShellCommand {
    std::string script;               // the admin's text, each %{...} become "${N}"
    std::vector<std::string> params;  // ${1}, ${2}...: the values, sanitised
};

struct CommandResult {
    std::optional<ShellCommand> command;
    FormatError error;  // meaningful when !command

    explicit operator bool() const { return command.has_value(); }
};

// An mda command template (FormatUse::Command) made ready to run. The script
// and the parameters together are bounded by kMaxExpansion.
CommandResult expand_command(std::string_view tmpl, const FormatValues& values);

// `mda wrapper NAME "WRAPPER"` around an action's (or an alias line's)
// command: WRAPPER with each %{mda} replaced by COMMAND, as one Command
// template whose %{...} are those of both. Errors are template errors of
// either (offsets into the template they are in).
FormatResult wrap_command(std::string_view wrapper, std::string_view command);

// The template errors of `tmpl`, without any values: nullopt when it is good.
std::optional<FormatError> check_format(std::string_view tmpl, FormatUse use);

// An envelope value made inert for a path or a command line (see above): the
// same rule as a %{...} without `raw`.
std::string sanitise_value(std::string_view value);

}  // namespace postern::delivery
