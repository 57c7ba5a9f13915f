// filters/rspamd/verdict.hpp — what filter-rspamd does with rspamd's answer.
//
// A pure mapping from a decoded Reply to a Verdict: accept the message with
// header edits, or refuse it with a whole SMTP reply. The program applies it
// to the message it holds (edits.hpp) or answers the commit with the reply.
//
//   reject          550 5.7.1 <smtp_message, or "Spam message rejected">
//   soft reject     451 4.7.1 <smtp_message, or "Try again later">
//   greylist        451 4.7.1 Greylisted, try again later
//                   (Policy::greylist_tempfails; see there)
//   rewrite subject accept, Subject replaced by rspamd's "subject" (rspamd
//                   has already put the old subject in its template)
//   add header      accept, with X-Spam: Yes (the junk marker OpenSMTPD and
//                   postern write), X-Spam-Score and X-Spam-Status (the
//                   layout of Debian's filter-rspamd), at the top
//   no action       accept
//
// Every accept also carries what rspamd asked for itself: its DKIM-Signature
// (at the top), milter.add_headers and milter.remove_headers. A header of
// ours is left out when rspamd adds one of that name (its x-spam-status
// routine writes X-Spam-Status). milter.no_action makes any action an accept
// that only adds X-Rspamd-Action, as rspamd's own milter does.
//
// Depends on: reply.hpp, edits.hpp.
#pragma once

#include <string>

#include "edits.hpp"
#include "reply.hpp"

namespace postern::rspamd {

enum class Disposition { Accept, Reject, Tempfail };

struct Verdict {
    Disposition disposition = Disposition::Accept;
    // For Reject and Tempfail: the SMTP reply, code, enhanced code and text
    // on one line ("550 5.7.1 Gtube pattern"); empty for Accept.
    std::string reply;
    Edits edits;  // for Accept
};

struct Policy {
    // rspamd leaves the action "greylist" when a score passed the greylist
    // threshold and no greylisting module decided otherwise (its greylist
    // module, which needs redis, turns it into "soft reject" while it delays
    // a message and into "no action" once it lets it through). rspamd's own
    // milter accepts such mail; by default we tempfail it, as asked of us.
    bool greylist_tempfails = true;
};

Verdict decide(const Reply& reply, const Policy& policy = {});

// rspamd's suggested reply text made fit for one SMTP reply line: control
// bytes become spaces, blanks are trimmed, and it is cut (on a UTF-8
// boundary) to 400 bytes.
std::string smtp_text(std::string_view text);

}  // namespace postern::rspamd
