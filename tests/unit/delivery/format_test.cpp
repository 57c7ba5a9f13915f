// Format templates (delivery/format.cpp): every specifier, modifier and slice
// form of smtpd.conf(5), sanitising, ~, and each way a template can fail;
// commands with their values as shell parameters (run by the real /bin/sh),
// and mda wrappers.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "delivery/format.hpp"

using namespace postern::delivery;

namespace {

FormatValues values() {
    FormatValues v;
    v.sender = "Alice@Example.com";
    v.rcpt = "Bob+Lists@Example.org";
    v.dest = "bob@example.org";
    v.user = "bob";
    v.home = "/home/bob";
    return v;
}

std::string expand(std::string_view tmpl, const FormatValues& v = values(), FormatUse use = FormatUse::Path) {
    FormatResult r = expand_format(tmpl, v, use);
    INFO(tmpl << ": " << r.error.text);
    REQUIRE(r);
    return *r.text;
}

FormatError failure(std::string_view tmpl, const FormatValues& v = values(), FormatUse use = FormatUse::Path) {
    FormatResult r = expand_format(tmpl, v, use);
    INFO(tmpl);
    REQUIRE_FALSE(r);
    // What `posternd -n` says of the template alone agrees with the delivery.
    auto checked = check_format(tmpl, use);
    if (r.error.kind == FormatError::Kind::Template) {
        REQUIRE(checked);
        CHECK(checked->text == r.error.text);
        CHECK(checked->offset == r.error.offset);
    } else {
        CHECK_FALSE(checked);
    }
    return r.error;
}

}  // namespace

TEST_CASE("format: every specifier") {
    CHECK(expand("%{sender}") == "Alice@Example.com");
    CHECK(expand("%{sender.user}") == "Alice");
    CHECK(expand("%{sender.domain}") == "Example.com");
    CHECK(expand("%{rcpt}") == "Bob+Lists@Example.org");
    CHECK(expand("%{rcpt.user}") == "Bob+Lists");
    CHECK(expand("%{rcpt.domain}") == "Example.org");
    CHECK(expand("%{dest}") == "bob@example.org");
    CHECK(expand("%{dest.user}") == "bob");
    CHECK(expand("%{dest.domain}") == "example.org");
    CHECK(expand("%{user.username}") == "bob");
    CHECK(expand("%{user.directory}") == "/home/bob");
    CHECK(expand("%{mbox.from}") == "Alice@Example.com");
    CHECK(expand("/var/vmail/%{rcpt.domain}/%{rcpt.user}/new") == "/var/vmail/Example.org/Bob+Lists/new");
    // Names are case-insensitive, as in OpenSMTPD.
    CHECK(expand("%{RCPT.User}") == "Bob+Lists");
}

TEST_CASE("format: the null sender and addresses without a domain") {
    FormatValues v = values();
    v.sender = "";
    CHECK(expand("[%{sender}][%{sender.user}][%{sender.domain}]", v) == "[][][]");
    CHECK(expand("%{mbox.from}", v) == "MAILER-DAEMON");
    v.rcpt = "postmaster";
    CHECK(expand("%{rcpt.user}|%{rcpt.domain}", v) == "postmaster|");
    // The domain is after the last '@' (a quoted local part may hold one).
    v.rcpt = "\"a@b\"@example.org";
    CHECK(expand("%{rcpt.domain}", v) == "example.org");
}

TEST_CASE("format: %{mda} only in a wrapper") {
    FormatValues v = values();
    v.mda = "/usr/bin/procmail -f -";
    CHECK(expand("/usr/bin/sudo -u x %{mda}", v, FormatUse::Wrapper) == "/usr/bin/sudo -u x /usr/bin/procmail -f -");
    CHECK(failure("/x/%{mda}", v).text == "%{mda} is only available in an mda wrapper's command");
    CHECK(failure("/x %{mda}", v, FormatUse::Command).offset == 5);
    FormatError e = failure("x %{mda:lowercase}", v, FormatUse::Wrapper);
    CHECK(e.offset == 7);
    CHECK(e.text == "expected '}' after '%{mda', found ':lowercase': the wrapped command takes no slice or modifier");
    CHECK(failure("x %{mda[0]}", v, FormatUse::Wrapper).offset == 7);
}

TEST_CASE("format: modifiers and chains") {
    CHECK(expand("%{rcpt:lowercase}") == "bob+lists@example.org");
    CHECK(expand("%{rcpt:uppercase}") == "BOB+LISTS@EXAMPLE.ORG");
    CHECK(expand("%{rcpt:strip}") == "Bob@Example.org");
    CHECK(expand("%{rcpt.user:strip}") == "Bob");
    CHECK(expand("%{rcpt.domain:strip}") == "Example.org");
    CHECK(expand("%{rcpt:lowercase|strip}") == "bob@example.org");
    CHECK(expand("%{rcpt.user:strip|uppercase}") == "BOB");
    CHECK(expand("%{rcpt.user:LowerCase|STRIP}") == "bob");
    CHECK(expand("%{dest.user:strip}") == "bob");  // nothing to strip
    // The case: alice+tag@virt.test into the maildir "alice".
    FormatValues v = values();
    v.dest = "Alice+tag@virt.test";
    CHECK(expand("/var/vmail/%{dest.user:lowercase|strip}", v) == "/var/vmail/alice");
    // Only the local part loses its tag; from the first delimiter on.
    v.dest = "a+b+c@x+y.test";
    CHECK(expand("%{dest:strip}", v) == "a@x+y.test");
    v.dest = "+tag@x.test";
    CHECK(expand("%{dest:strip}", v) == "@x.test");
}

TEST_CASE("format: strip follows smtp sub-addr-delim") {
    FormatValues v = values();
    v.subaddr_delim = '-';
    v.rcpt = "bob-lists+x@example.org";
    CHECK(expand("%{rcpt.user:strip}", v) == "bob");
    v.subaddr_delim = '+';
    CHECK(expand("%{rcpt.user:strip}", v) == "bob-lists");
}

TEST_CASE("format: slices, as smtpd.conf(5) shows them") {
    FormatValues v = values();
    v.rcpt = "user@example.org";
    CHECK(expand("%{rcpt.domain[0]}", v) == "e");
    CHECK(expand("%{rcpt.domain[1]}", v) == "x");
    CHECK(expand("%{rcpt.domain[8:]}", v) == "org");
    CHECK(expand("%{rcpt.domain[-3:]}", v) == "org");
    CHECK(expand("%{rcpt.domain[0:6]}", v) == "example");
    CHECK(expand("%{rcpt.domain[0:-4]}", v) == "example");
}

TEST_CASE("format: more slices") {
    FormatValues v = values();
    v.rcpt = "user@example.org";
    CHECK(expand("%{rcpt.domain[-1]}", v) == "g");  // OpenSMTPD refuses this one (offset bug)
    CHECK(expand("%{rcpt.domain[-11]}", v) == "e");
    CHECK(expand("%{rcpt.domain[:2]}", v) == "exa");
    CHECK(expand("%{rcpt.domain[:]}", v) == "example.org");
    CHECK(expand("%{rcpt.domain[10]}", v) == "g");
    CHECK(expand("%{rcpt.domain[3:3]}", v) == "m");
    CHECK(expand("%{rcpt.domain[2:100]}", v) == "ample.org");  // the end is clamped
    // Slices after modifiers, before sanitising.
    CHECK(expand("/m/%{rcpt.user[0]:uppercase}/%{rcpt.user}", v) == "/m/U/user");
    CHECK(expand("%{rcpt.user[0:2]:uppercase|strip}", values()) == "BOB");
    // An empty value stays empty whatever the slice.
    FormatValues empty = values();
    empty.sender = "";
    CHECK(expand("[%{sender.user[3]}][%{sender[-2:]}]", empty) == "[][]");
}

TEST_CASE("format: a slice outside the value fails the delivery for good") {
    FormatValues v = values();
    v.rcpt = "user@example.org";
    for (const char* t : {"%{rcpt.domain[11]}", "%{rcpt.domain[20:]}", "%{rcpt.domain[-12]}", "%{rcpt.domain[-12:]}",
                          "%{rcpt.domain[5:2]}", "%{rcpt.domain[0:-11]}", "%{rcpt.domain[0:-20]}"}) {
        FormatError e = failure(t, v);
        CHECK(e.kind == FormatError::Kind::Value);
        CHECK(e.offset == 0);
    }
    CHECK(failure("/m/%{rcpt.domain[11]}", v).text ==
          "the slice [11] starts outside the value (the value of %{rcpt.domain[11]} is 11 bytes long)");
    CHECK(failure("/m/%{rcpt.domain[5:2]}", v).text ==
          "the slice [5:2] leaves nothing of the value (the value of %{rcpt.domain[5:2]} is 11 bytes long)");
}

TEST_CASE("format: envelope values are sanitised") {
    FormatValues v = values();
    v.rcpt = "../../etc@x";
    CHECK(expand("/var/mail/%{rcpt.user}", v) == "/var/mail/:.:..:etc");
    v.rcpt = "a/b\nc@x";
    CHECK(expand("/m/%{rcpt.user}", v) == "/m/a:b:c");
    v.rcpt = "..@x";
    CHECK(expand("/m/%{rcpt.user}", v) == "/m/:.");
    // A slice cannot uncover a leading '.': sanitising comes after it.
    v.rcpt = "a..b@x";
    CHECK(expand("/m/%{rcpt.user[1:2]}", v) == "/m/:.");
    v.sender = "x$(touch /tmp/p)`id`;rm -rf / &|>\"'@evil.example";
    CHECK(expand("/usr/bin/procmail -f %{sender}", v, FormatUse::Command) ==
          "/usr/bin/procmail -f x::touch::tmp:p::id::rm:-rf::::::::@evil.example");
    v.rcpt = "Jos\xc3\xa9@x";  // bytes above 127 are not letters
    CHECK(expand("%{rcpt.user}", v) == "Jos::");
    // The user name comes from the envelope too (a local part).
    v.user = "a;b";
    CHECK(expand("%{user.username}", v) == "a:b");
    CHECK(sanitise_value(".x/y z=1_2+3-4@5") == ":x:y:z=1_2+3-4@5");
}

TEST_CASE("format: the admin's own text is not sanitised") {
    FormatValues v = values();
    v.home = "/home/o'brien dir";
    CHECK(expand("%{user.directory}/Maildir", v) == "/home/o'brien dir/Maildir");
    CHECK(expand("%{user.directory:uppercase}", v) == "/HOME/O'BRIEN DIR");
    CHECK(expand("/srv/$x;&/%{dest.user}", v) == "/srv/$x;&/bob");
}

TEST_CASE("format: raw") {
    FormatValues v = values();
    v.rcpt = "user+t?g@example.org";
    CHECK(expand("%{rcpt}", v) == "user+t:g@example.org");
    CHECK(expand("%{rcpt:raw}", v) == "user+t?g@example.org");
    CHECK(expand("%{rcpt:raw|uppercase}", v) == "USER+T?G@EXAMPLE.ORG");
    CHECK(expand("%{rcpt:lowercase|raw|strip}", v) == "user@example.org");
    // Even raw, a value never leaves the folder the template names.
    v.rcpt = "../../etc/x y$\x01@example.org";
    CHECK(expand("/m/%{rcpt.user:raw}", v) == "/m/:.:..:etc:x y$:");
    v.rcpt = "Jos\xc3\xa9@x";
    CHECK(expand("%{rcpt.user:raw}", v) == "Jos\xc3\xa9");
}

TEST_CASE("format: raw never reaches the shell") {
    for (FormatUse use : {FormatUse::Command, FormatUse::Wrapper}) {
        FormatError e = failure("/usr/bin/procmail -f %{sender:lowercase|raw}", values(), use);
        CHECK(e.kind == FormatError::Kind::Template);
        CHECK(e.offset == 40);
        CHECK(e.text.rfind("'raw' cannot be used in an mda command", 0) == 0);
    }
    CommandResult c = expand_command("/usr/bin/procmail -f %{sender:raw}", values());
    REQUIRE_FALSE(c);
    CHECK(c.error.offset == 30);
}

TEST_CASE("format: ~ and %%") {
    CHECK(expand("~/Maildir") == "/home/bob/Maildir");
    CHECK(expand("~") == "/home/bob");
    CHECK(expand("~/Maildir/%{rcpt.user:lowercase|strip}") == "/home/bob/Maildir/bob");
    FormatValues root = values();
    root.home = "/";
    CHECK(expand("~/Maildir", root) == "/Maildir");
    CHECK(expand("~", root) == "/");
    // Only at the start.
    CHECK(expand("/x/~/y") == "/x/~/y");
    CHECK(expand("~/bin/filter ~/x", values(), FormatUse::Command) == "/home/bob/bin/filter ~/x");
    // ~name: another user's home, never a mail folder; the shell's own in a command.
    FormatError e = failure("~alice/Maildir");
    CHECK(e.offset == 0);
    CHECK(e.text == "expected '~/' (the user's home folder) or %{user.directory}, found '~alice': another "
                    "user's home is not supported");
    CHECK(expand("~alice/bin/x", values(), FormatUse::Command) == "~alice/bin/x");
    CHECK(expand("/m/100%%/%{dest.user}%%") == "/m/100%/bob%");
    CHECK(expand("/m/%%{dest.user}") == "/m/%{dest.user}");
    CHECK(expand("/m/50% off/%") == "/m/50% off/%");
}

TEST_CASE("format: template errors, with where they are") {
    struct Case {
        const char* tmpl;
        std::size_t offset;
        std::string text;
    };
    const std::string names =
        "sender, sender.user, sender.domain, rcpt, rcpt.user, rcpt.domain, dest, dest.user, dest.domain, "
        "user.username, user.directory or mbox.from";
    const std::string slice = "expected a slice [N], [N:], [:M] or [N:M] (whole numbers, negative ones counting "
                              "from the end) in ";
    const Case cases[] = {
        {"/x/%{nosuch}/y", 5, "expected a format name (" + names + ") after '%{', found 'nosuch'"},
        {"/x/%{}", 5, "expected a format name (" + names + ") after '%{', found nothing"},
        {"/x/%{rcpt.user", 3, "expected '}' to close this '%{'"},
        {"/x/%{ rcpt}", 5, "expected a format name (" + names + ") after '%{', found ' rcpt'"},
        {"/x/%{rcpt:bogus}", 10,
         "expected a modifier (lowercase, uppercase, strip or raw) in '%{rcpt:bogus}', "
         "found 'bogus'"},
        {"/x/%{rcpt:}", 10, "expected a modifier (lowercase, uppercase, strip or raw) in '%{rcpt:}', found nothing"},
        {"/x/%{rcpt:lowercase|}", 20,
         "expected a modifier (lowercase, uppercase, strip or raw) in "
         "'%{rcpt:lowercase|}', found nothing"},
        {"/x/%{rcpt:lowercase||strip}", 20,
         "expected a modifier (lowercase, uppercase, strip or raw) in "
         "'%{rcpt:lowercase||strip}', found nothing"},
        {"/x/%{rcpt[a]}", 9, slice + "'%{rcpt[a]}', found '[a]'"},
        {"/x/%{rcpt[]}", 9, slice + "'%{rcpt[]}', found '[]'"},
        {"/x/%{rcpt[1:2:3]}", 9, slice + "'%{rcpt[1:2:3]}', found '[1:2:3]'"},
        {"/x/%{rcpt[--1]}", 9, slice + "'%{rcpt[--1]}', found '[--1]'"},
        {"/x/%{rcpt[+1]}", 9, slice + "'%{rcpt[+1]}', found '[+1]'"},
        {"/x/%{rcpt[99999]}", 9, slice + "'%{rcpt[99999]}', found '[99999]'"},
        {"/x/%{rcpt[1}", 9, "expected ']' to close the slice in '%{rcpt[1}'"},
        {"/x/%{rcpt[0]x}", 12, "expected ':' and modifiers or '}' after '%{rcpt[0]', found 'x'"},
        {"/x/%{rcpt:lowercase[0]}", 10,
         "expected a modifier (lowercase, uppercase, strip or raw) in "
         "'%{rcpt:lowercase[0]}', found 'lowercase[0]'"},
    };
    for (const Case& c : cases) {
        FormatError e = failure(c.tmpl);
        CHECK(e.kind == FormatError::Kind::Template);
        CHECK(e.offset == c.offset);
        CHECK(e.text == c.text);
    }
    // The first error is the one reported.
    CHECK(failure("%{nosuch}%{rcpt:bogus}").offset == 2);
}

TEST_CASE("format: check_format accepts every good template") {
    for (const char* t :
         {"", "/var/mail", "~/Maildir", "%{sender}%{sender.user}%{sender.domain}",
          "%{rcpt[0]}/%{rcpt[-3:]}/%{rcpt[1:2]}/%{rcpt[:4]}/%{rcpt[:]}/%{rcpt[-1]}",
          "%{dest:lowercase|uppercase|strip|raw}", "%{user.username}%{user.directory}%{mbox.from}", "100%% %"}) {
        INFO(t);
        CHECK_FALSE(check_format(t, FormatUse::Path));
    }
    CHECK_FALSE(check_format("sudo %{mda}", FormatUse::Wrapper));
    CHECK(check_format("sudo %{mda}", FormatUse::Command));
    CHECK(check_format("%{rcpt:raw}", FormatUse::Command));
    CHECK_FALSE(check_format("echo '\\%{rcpt}' \\\\%{rcpt} \\ %{rcpt}", FormatUse::Command));
}

TEST_CASE("format: an over-long expansion fails for good") {
    FormatValues v = values();
    // FormatValues holds views: the strings must outlive it.
    const std::string rcpt = std::string(3000, 'a') + "@example.org";
    v.rcpt = rcpt;
    CHECK(expand("/m/%{rcpt.user}").size() < kMaxExpansion);
    CHECK(expand("/m/%{rcpt.user}", v).size() == 3003);
    FormatError e = failure("/m/%{rcpt.user}/%{rcpt.user}", v);
    CHECK(e.kind == FormatError::Kind::Value);
    CHECK(e.offset == 16);
    CHECK(e.text == "the expansion is longer than 4095 bytes");
    FormatValues h = values();
    const std::string home(5000, 'h');
    h.home = home;
    CHECK(failure("~/x", h).offset == 0);
}

namespace {

ShellCommand command(std::string_view tmpl, const FormatValues& v = values()) {
    CommandResult r = expand_command(tmpl, v);
    INFO(tmpl << ": " << r.error.text);
    REQUIRE(r);
    return *r.command;
}

// What /bin/sh -c SCRIPT sh PARAMS... writes on its stdout, run in `cwd`.
std::string run_sh(const ShellCommand& c, const std::string& cwd) {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(p[1], 1);
        ::close(p[0]);
        ::close(p[1]);
        if (::chdir(cwd.c_str()) != 0) ::_exit(126);
        std::vector<std::string> args = {"sh", "-c", c.script, "sh"};
        args.insert(args.end(), c.params.begin(), c.params.end());
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execv("/bin/sh", argv.data());
        ::_exit(127);
    }
    ::close(p[1]);
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
    ::close(p[0]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    return out;
}

struct TempDir {
    std::string path;
    TempDir() {
        char t[] = "/tmp/format-test-XXXXXX";
        REQUIRE(::mkdtemp(t) != nullptr);
        path = t;
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST_CASE("format: a command's values go as parameters, never into its text") {
    ShellCommand c = command("/usr/bin/procmail -f %{sender} -a %{rcpt.user:lowercase|strip}");
    CHECK(c.script == "/usr/bin/procmail -f \"${1}\" -a \"${2}\"");
    CHECK(c.params == std::vector<std::string>{"Alice@Example.com", "bob"});
    // Every name, the home folder and %% too.
    c = command("~/bin/x %{sender.user} %{sender.domain} %{rcpt} %{rcpt.domain} %{dest} %{dest.user} "
                "%{dest.domain} %{user.username} %{user.directory} %{mbox.from} 100%% %{rcpt.domain[-3:]}");
    CHECK(c.script == "\"${1}\"/bin/x \"${2}\" \"${3}\" \"${4}\" \"${5}\" \"${6}\" \"${7}\" \"${8}\" \"${9}\" "
                      "\"${10}\" \"${11}\" 100% \"${12}\"");
    CHECK(c.params == std::vector<std::string>{"/home/bob", "Alice", "Example.com", "Bob+Lists@Example.org",
                                               "Example.org", "bob@example.org", "bob", "example.org", "bob",
                                               "/home/bob", "Alice@Example.com", "org"});
    // Sanitised, as in a path; the home folder is the admin's.
    FormatValues v = values();
    v.sender = "o'brien/x@example.org";
    v.home = "/home/o'brien";
    c = command("deliver %{sender} %{user.directory}", v);
    CHECK(c.params == std::vector<std::string>{"o:brien:x@example.org", "/home/o'brien"});
    CHECK(command("no values at all").script == "no values at all");
    CHECK(command("no values at all").params.empty());
}

TEST_CASE("format: a parameter reference is quoted for where it stands") {
    struct Case {
        const char* tmpl;
        const char* script;
    };
    const Case cases[] = {
        {"a %{dest} b", "a \"${1}\" b"},
        {"a \"x %{dest} y\" b", "a \"x ${1} y\" b"},
        {"a 'x %{dest} y' b", "a 'x '\"${1}\"' y' b"},
        {"a x%{dest}y", "a x\"${1}\"y"},
        {"a $(echo %{dest}) \"$(echo %{dest})\" '$(%{dest})'",
         "a $(echo \"${1}\") \"$(echo \"${2}\")\" '$('\"${3}\"')'"},
        {"a `echo %{dest}` \"`echo %{dest}`\"", "a `echo \"${1}\"` \"`echo \"${2}\"`\""},
        {"a $( (echo %{dest}) ) %{dest}", "a $( (echo \"${1}\") ) \"${2}\""},
        {"a \\\"%{dest} \\'%{dest}", "a \\\"\"${1}\" \\'\"${2}\""},
        {"a \"\\\"%{dest}\" '\\'%{dest}", "a \"\\\"${1}\" '\\'\"${2}\""},
        {"a #%{dest}\nb %{dest}", "a #${1}\nb \"${2}\""},
        {"a#%{dest}", "a#\"${1}\""},
    };
    for (const Case& c : cases) {
        INFO(c.tmpl);
        CHECK(command(c.tmpl).script == c.script);
    }
}

TEST_CASE("format: a specifier a backslash would escape is a template error") {
    for (FormatUse use : {FormatUse::Command, FormatUse::Wrapper}) {
        for (const char* t : {"echo \\%{dest}", "echo \"\\%{dest}\"", "echo $(x \\%{dest})"}) {
            INFO(t);
            auto e = check_format(t, use);
            REQUIRE(e);
            CHECK(e->text == "expected no backslash right before '%{dest}' in a command: it would escape the quoting "
                             "of the value");
            CHECK(e->offset == std::string_view(t).find('%'));
            CommandResult r = expand_command(t, values());
            CHECK_FALSE(r);
        }
    }
    CHECK_FALSE(check_format("echo '\\%{dest}' \\\\%{dest}", FormatUse::Command));
    CHECK_FALSE(check_format("/m/\\%{dest}", FormatUse::Path));  // a path has no shell
}

TEST_CASE("format: /bin/sh gets every value intact and runs none of them") {
    TempDir dir;
    // The home folder is the one value not sanitised: it carries the shell
    // syntax here, in every quoting; the sender is sanitised as always.
    const std::string hostile = "x$(touch p1)`touch p2`;touch p3|touch p4&&touch p5'\"\\ $HOME ${IFS} *";
    const std::string sender = hostile + "@example.org";
    FormatValues v = values();
    v.sender = sender;
    v.home = hostile;
    ShellCommand c = command(
        "printf '[%s]\\n' %{user.directory} \"%{user.directory}\" '%{user.directory}' "
        "\"$(printf %s %{user.directory})\" `printf %s %{user.directory}`x %{sender} # %{user.directory}",
        v);
    std::string out = run_sh(c, dir.path);
    // The backquoted one is split into words (an unquoted substitution), still never run.
    std::string split;
    for (const char* w : {"x$(touch", "p1)`touch", "p2`;touch", "p3|touch", "p4&&touch", "p5'\"\\", "$HOME", "${IFS}"})
        split += "[" + std::string(w) + "]\n";
    split += "[*x]\n";
    const std::string h = "[" + hostile + "]\n";
    CHECK(out == h + h + h + h + split + "[" + sanitise_value(sender) + "]\n");
    // A leading ~ is the home folder, a parameter too.
    c = command("~/bin/x", v);
    CHECK(c.script == "\"${1}\"/bin/x");
    CHECK(c.params == std::vector<std::string>{hostile});
    for (const char* p : {"p1", "p2", "p3", "p4", "p5"}) {
        INFO(p);
        CHECK_FALSE(std::filesystem::exists(dir.path + "/" + p));
    }
}

TEST_CASE("format: a command template and its expansion are bounded") {
    FormatValues v = values();
    const std::string rcpt = std::string(3000, 'a') + "@example.org";
    v.rcpt = rcpt;
    CHECK(command("x %{rcpt.user}", v).params[0].size() == 3000);
    CommandResult r = expand_command("x %{rcpt.user} %{rcpt.user}", v);
    REQUIRE_FALSE(r);
    CHECK(r.error.kind == FormatError::Kind::Value);
    CHECK(r.error.offset == 15);
    CHECK(r.error.text == "the expansion is longer than 4095 bytes");
    v.rcpt = "a@b";
    r = expand_command("x %{rcpt.user[5]}", v);
    REQUIRE_FALSE(r);
    CHECK(r.error.kind == FormatError::Kind::Value);
    r = expand_command("x %{nosuch}", v);
    REQUIRE_FALSE(r);
    CHECK(r.error.kind == FormatError::Kind::Template);
    CHECK(r.error.offset == 4);
}

TEST_CASE("format: wrap_command puts the command where %{mda} stands") {
    auto wrap = [](std::string_view w, std::string_view c) {
        FormatResult r = wrap_command(w, c);
        INFO(w << " / " << c << ": " << r.error.text);
        REQUIRE(r);
        return *r.text;
    };
    CHECK(wrap("/usr/bin/env X=1 %{mda}", "procmail -f %{sender}") == "/usr/bin/env X=1 procmail -f %{sender}");
    CHECK(wrap("log %{rcpt}; %{mda}; %{mda}", "a %{dest:strip}") == "log %{rcpt}; a %{dest:strip}; a %{dest:strip}");
    // Each piece keeps its meaning: %% stays one '%', a lone '%' is doubled so
    // that no '{' after it can make a specifier, ~ is the home folder by name.
    CHECK(wrap("%{mda}{x} 100%%", "c 50%") == "c 50%%{x} 100%%");
    CHECK(wrap("~/w %{mda}", "~/bin/c %{dest}") == "%{user.directory}/w %{user.directory}/bin/c %{dest}");
    CHECK(wrap("no mda here", "c") == "no mda here");
    ShellCommand c = command(wrap("timeout 60 %{mda} || exit 75", "procmail -f %{sender} -a '%{rcpt}'"));
    CHECK(c.script == "timeout 60 procmail -f \"${1}\" -a ''\"${2}\"'' || exit 75");
    CHECK(c.params == std::vector<std::string>{"Alice@Example.com", "Bob+Lists@Example.org"});

    FormatResult r = wrap_command("w %{nosuch}", "c");
    REQUIRE_FALSE(r);
    CHECK(r.error.offset == 4);
    r = wrap_command("w %{mda}", "c %{mda}");
    REQUIRE_FALSE(r);
    CHECK(r.error.text == "%{mda} is only available in an mda wrapper's command");
}
