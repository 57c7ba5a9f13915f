// smtpd/meters.hpp — what the SMTP server counts for the metrics endpoint
// (metrics::process()): sessions, messages and recipients refused by reply
// code, TLS versions. One function per event, so the session code says what
// happened and this file says how it is counted.
#pragma once

#include <string>
#include <string_view>

#include "metrics/registry.hpp"

namespace postern::smtpd::meters {

inline metrics::Gauge& sessions_current() {
    static metrics::Gauge& g = metrics::process().gauge("postern_sessions_current", "SMTP sessions open now");
    return g;
}

inline void session_opened() {
    static metrics::Counter& total = metrics::process().counter("postern_sessions_total", "SMTP sessions accepted");
    total.inc();
    sessions_current().add(1);
}

inline void session_closed() { sessions_current().add(-1); }

// At the greeting, with 421: too-many-sessions, paused, filter-down.
inline void session_refused(std::string_view reason) {
    metrics::process()
        .counter("postern_sessions_refused_total", "SMTP sessions refused at the greeting, by reason",
                 {{"reason", std::string(reason)}})
        .inc();
}

inline void message_accepted() {
    static metrics::Counter& c = metrics::process().counter("postern_messages_accepted_total",
                                                            "Messages accepted (250 after DATA)");
    c.inc();
}

// After DATA, or when the queue could not commit it.
inline void message_refused(int code) {
    metrics::process()
        .counter("postern_messages_refused_total", "Messages refused after DATA, by reply code",
                 {{"code", std::to_string(code)}})
        .inc();
}

inline void recipient_refused(int code) {
    metrics::process()
        .counter("postern_recipients_refused_total", "RCPT TO refused, by reply code", {{"code", std::to_string(code)}})
        .inc();
}

inline void tls_established(std::string_view version) {
    metrics::process()
        .counter("postern_tls_sessions_total", "TLS handshakes completed, by protocol version",
                 {{"version", std::string(version)}})
        .inc();
}

}  // namespace postern::smtpd::meters
