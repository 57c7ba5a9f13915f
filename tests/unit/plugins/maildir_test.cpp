// tests/unit/plugins/maildir_test.cpp — delivery-maildir.so: exact bytes in
// new/, nothing left in tmp/, junk routing and failures.
#include "support.hpp"

namespace {

const std::string kMessage = "Subject: hello\nFrom: alice@example.org\n\nbody line\n";

const postern::util::DeliveryPlugin& maildir() {
    static auto p = test::load_delivery("maildir");
    return p;
}

test::Outcome deliver(const test::TempDir& dir, const test::Request& r, const std::string& message) {
    auto fd = test::message_fd(dir, message);
    return test::deliver(maildir(), r, fd.get());
}

// The one file in DIR/new; fails the test unless there is exactly one.
std::string only_message(const std::string& maildir) {
    auto names = test::list_dir(maildir + "/new");
    REQUIRE(names.size() == 1);
    return test::read_file(maildir + "/new/" + names[0]);
}

mode_t mode_of(const std::string& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

}  // namespace

TEST_CASE("maildir: creates the folders and writes exactly the headers and message") {
    test::TempDir dir;
    test::Request r;
    r.path = dir / "deep/er/Maildir";
    auto out = deliver(dir, r, kMessage);
    INFO(out.error);
    REQUIRE(out.status == POSTERN_OK);
    CHECK(only_message(r.path) == "Return-Path: <alice@example.org>\nDelivered-To: bob@example.com\n" + kMessage);
    CHECK(test::list_dir(r.path) == std::vector<std::string>{"cur", "new", "tmp"});
    CHECK(test::list_dir(r.path + "/tmp").empty());
    CHECK(test::list_dir(r.path + "/cur").empty());
    CHECK(mode_of(r.path) == 0700);
    CHECK(mode_of(dir / "deep") == 0700);
    CHECK(mode_of(r.path + "/new") == 0700);
    auto name = test::list_dir(r.path + "/new")[0];
    CHECK(mode_of(r.path + "/new/" + name) == 0600);
}

TEST_CASE("maildir: null sender, default folder and unique names") {
    test::TempDir dir;
    test::Request r;
    r.sender = "";
    r.dest = "carol@example.net";
    r.home = dir.path();
    REQUIRE(deliver(dir, r, kMessage).status == POSTERN_OK);
    CHECK(only_message(dir / "Maildir") == "Return-Path: <>\nDelivered-To: carol@example.net\n" + kMessage);

    for (int i = 0; i < 20; ++i) REQUIRE(deliver(dir, r, kMessage).status == POSTERN_OK);
    CHECK(test::list_dir(dir / "Maildir/new").size() == 21);
    CHECK(test::list_dir(dir / "Maildir/tmp").empty());
}

// The folders are made sure of by trying the maildir's own first (it is
// nearly always there), and the host name is asked once per process: a
// maildir whose parts vanish between two deliveries of one living agent is
// made again, and every name still ends with this host's name.
TEST_CASE("maildir: folders removed between deliveries are made again, names end with the host name") {
    test::TempDir dir;
    test::Request r;
    r.path = dir / "box/Maildir";
    REQUIRE(deliver(dir, r, kMessage).status == POSTERN_OK);
    std::filesystem::remove_all(dir / "box");
    REQUIRE(deliver(dir, r, kMessage).status == POSTERN_OK);
    CHECK(test::list_dir(r.path) == std::vector<std::string>{"cur", "new", "tmp"});
    std::filesystem::remove_all(r.path + "/new");
    REQUIRE(deliver(dir, r, kMessage).status == POSTERN_OK);
    auto names = test::list_dir(r.path + "/new");
    REQUIRE(names.size() == 1);
    CHECK(mode_of(r.path + "/new") == 0700);
    char host[256] = "";
    REQUIRE(::gethostname(host, sizeof host - 1) == 0);
    std::string escaped;  // as maildir readers want '/' and ':'
    for (const char* c = host; *c; ++c) escaped += *c == '/' ? "\\057" : *c == ':' ? "\\072" : std::string(1, *c);
    CHECK(names[0].ends_with("." + escaped));
}

TEST_CASE("maildir: a large message and one without a body arrive intact") {
    test::TempDir dir;
    test::Request r;
    r.path = dir / "big";
    std::string big = "Subject: big\n\n";
    for (int i = 0; big.size() < 300000; ++i) big += "line " + std::to_string(i) + "\n";
    REQUIRE(deliver(dir, r, big).status == POSTERN_OK);
    CHECK(only_message(r.path) == "Return-Path: <alice@example.org>\nDelivered-To: bob@example.com\n" + big);

    r.path = dir / "headers-only";
    REQUIRE(deliver(dir, r, "Subject: no body").status == POSTERN_OK);
    CHECK(only_message(r.path) == "Return-Path: <alice@example.org>\nDelivered-To: bob@example.com\nSubject: no body");
}

TEST_CASE("maildir: junk option routes X-Spam: yes into .Junk") {
    test::TempDir dir;
    test::Request r;
    r.path = dir / "Maildir";
    r.options = "junk";
    std::string spam = "Subject: buy\nx-spam:   YES  \n\nbody\n";
    REQUIRE(deliver(dir, r, spam).status == POSTERN_OK);
    CHECK(only_message(r.path + "/.Junk") ==
          "Return-Path: <alice@example.org>\nDelivered-To: bob@example.com\n" + spam);
    CHECK(test::list_dir(r.path + "/new").empty());

    // Only the header counts, and only the value "yes".
    std::string ham = "Subject: hi\nX-Spam: no\nX-Spam-Score: yes\n\nX-Spam: yes\n";
    REQUIRE(deliver(dir, r, ham).status == POSTERN_OK);
    CHECK(only_message(r.path) == "Return-Path: <alice@example.org>\nDelivered-To: bob@example.com\n" + ham);
    CHECK(test::list_dir(r.path + "/.Junk/new").size() == 1);
}

TEST_CASE("maildir: without the junk option spam stays in the inbox") {
    test::TempDir dir;
    test::Request r;
    r.path = dir / "Maildir";
    REQUIRE(deliver(dir, r, "X-Spam: yes\n\nbody\n").status == POSTERN_OK);
    CHECK(test::list_dir(r.path + "/new").size() == 1);
    CHECK(test::list_dir(r.path + "/.Junk/new").empty());
}

TEST_CASE("maildir: an unwritable folder is a temporary failure, nothing half-written") {
    test::TempDir dir;
    REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);  // nobody may enter, not write
    std::string locked = dir / "locked";
    REQUIRE(::mkdir(locked.c_str(), 0555) == 0);
    test::Request r;
    r.path = locked + "/Maildir";
    auto fd = test::message_fd(dir, kMessage);
    maildir();  // loaded as root: the build tree may be a checkout under a 0700 home
    auto out = test::in_child([&] {
        if (!test::drop_privileges()) return test::Outcome{-2, "cannot drop privileges"};
        return test::deliver(maildir(), r, fd.get());
    });
    CHECK(out.status == POSTERN_TEMPFAIL);
    CHECK(out.error == "maildir: mkdir " + r.path + ": Permission denied");
    CHECK(test::list_dir(locked).empty());

    // new/ exists but tmp/ is not writable: still nothing in new/.
    std::string md = dir / "md";
    for (const char* sub : {"", "/cur", "/new", "/tmp"}) REQUIRE(::mkdir((md + sub).c_str(), 0755) == 0);
    r.path = md;
    out = test::in_child([&] {
        if (!test::drop_privileges()) return test::Outcome{-2, "cannot drop privileges"};
        return test::deliver(maildir(), r, fd.get());
    });
    CHECK(out.status == POSTERN_TEMPFAIL);
    CHECK(out.error.starts_with("maildir: create " + md + "/tmp/"));
    CHECK(out.error.ends_with(": Permission denied"));
    CHECK(test::list_dir(md + "/new").empty());
}

TEST_CASE("maildir: bad requests are refused with a reason") {
    test::TempDir dir;
    test::Request r;
    r.path = "relative/Maildir";
    auto out = deliver(dir, r, kMessage);
    CHECK(out.status == POSTERN_TEMPFAIL);
    CHECK(out.error == "maildir: folder \"relative/Maildir\" is not an absolute path");

    r.path = "";
    r.home = "";
    out = deliver(dir, r, kMessage);
    CHECK(out.status == POSTERN_TEMPFAIL);
    CHECK(out.error == "maildir: folder \"\" is not an absolute path");

    r.path = dir / "Maildir";
    r.options = "junk sparkle";
    out = deliver(dir, r, kMessage);
    CHECK(out.status == POSTERN_TEMPFAIL);
    CHECK(out.error == "maildir: unknown option \"sparkle\"");
    CHECK(test::list_dir(r.path).empty());

    std::string file = dir / "plainfile";
    test::write_file(file, "x");
    r.options = "";
    r.path = file + "/Maildir";
    out = deliver(dir, r, kMessage);
    CHECK(out.status == POSTERN_TEMPFAIL);
    CHECK(out.error == "maildir: mkdir " + file + "/Maildir: Not a directory");
}

// An agent killed mid-write leaves its file in tmp/: the next delivery to
// the maildir removes the files named by this host's agents whose process
// has ended, and nothing else (a living agent's file in progress, a file of
// another program's, one of another host's).
TEST_CASE("maildir: tmp files of agents that have ended are removed, no others") {
    test::TempDir dir;
    test::Request r;
    r.path = dir / "Maildir";
    REQUIRE(deliver(dir, r, kMessage).status == POSTERN_OK);  // makes the folders
    auto names = test::list_dir(r.path + "/new");
    REQUIRE(names.size() == 1);
    const std::string host = names[0].substr(names[0].find('.', names[0].find('R')) + 1);

    pid_t gone = ::fork();  // a PID that has ended, as a killed agent's
    REQUIRE(gone >= 0);
    if (gone == 0) ::_exit(0);
    REQUIRE(::waitpid(gone, nullptr, 0) == gone);
    auto name = [&](long pid, const std::string& h) {
        return "1796692493.M471902P" + std::to_string(pid) + "Q7R80ae2d88." + h;
    };
    const std::string abandoned = name(gone, host);
    const std::string living = name(::getppid(), host);  // a process that runs
    const std::string other_host = name(gone, host + "x");
    const std::string foreign = "1796692493.M471902P" + std::to_string(gone) + "." + host;  // another MDA's form
    for (const auto& n : {abandoned, living, other_host, foreign}) test::write_file(r.path + "/tmp/" + n, "half");

    REQUIRE(deliver(dir, r, kMessage).status == POSTERN_OK);
    auto left = test::list_dir(r.path + "/tmp");
    std::sort(left.begin(), left.end());
    std::vector<std::string> want = {living, other_host, foreign};
    std::sort(want.begin(), want.end());
    CHECK(left == want);
    CHECK(test::list_dir(r.path + "/new").size() == 2);
}
