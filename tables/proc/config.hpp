// tables/proc/config.hpp — the config string of a proc table:
//
//   PROGRAM [OPTION=VALUE ...] [ARGUMENT]
//
// as in `table users "proc:/usr/libexec/opensmtpd/table-passwd /etc/mail/passwd"`.
// PROGRAM is an absolute path. The words right after it of the form
// protocol=imsg|line, name=NAME or timeout=SECONDS are options; what follows
// is the program's one argument, passed verbatim as argv[1] (absent when
// empty), as OpenSMTPD passes the text after `NAME:`.
//
//   protocol  imsg (OpenSMTPD <= 7.5) or line (7.6+). Default: imsg for a
//             program in /usr/libexec/opensmtpd/ (the folder of Debian's
//             OpenSMTPD 6.8 and opensmtpd-extras, whose programs all speak
//             imsg), line anywhere else.
//   name      the table name the program is told: its argv[0], the OPEN
//             message's name, the line protocol's tablename. Default: the
//             program's file name ("table-passwd").
//   timeout   seconds a request (or the program's start) may take, 1-300;
//             default 5.
#pragma once

#include <string>
#include <string_view>
#include <variant>

namespace postern::proctable {

enum class Protocol { Imsg, Line };

struct Config {
    std::string program;
    std::string argument;  // "" = no argv[1]
    std::string name;
    Protocol protocol = Protocol::Line;
    int timeout_seconds = 5;
};

inline constexpr std::string_view kOpensmtpdLibexec = "/usr/libexec/opensmtpd/";

// The parsed config, or why it is refused.
std::variant<Config, std::string> parse_config(std::string_view text);

}  // namespace postern::proctable
