// The configuration posternd uses when no -f is given; see daemon.hpp.
#include "daemon/daemon.hpp"

namespace postern::daemon {

std::string default_config_text(const std::string& state_dir, const std::string& user) {
    // Written in the same grammar as any smtpd.conf, so `posternd -n` and the
    // docs describe it like every other file. Delivery runs as the user who
    // started posternd: every local recipient gets a maildir of its own name.
    return "# posternd's embedded default configuration\n"
           "queue path \"" +
           state_dir +
           "/spool\"\n"
           "pidfile \"" +
           state_dir +
           "/posternd.pid\"\n"
           "control socket \"" +
           state_dir +
           "/run/control.sock\"\n"
           "mbox path \"" +
           state_dir +
           "/mbox\"\n"
           "listen on 127.0.0.1 port 2525\n"
           "action \"local\" maildir \"" +
           state_dir + "/mail/%{rcpt.user:lowercase}\" user \"" + user +
           "\"\n"
           "match from local for local action \"local\"\n";
}

}  // namespace postern::daemon
