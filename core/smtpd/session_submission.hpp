// smtpd/session_submission.hpp — what a session adds to a message that is
// submitted, not relayed: a Date: and a Message-ID: field when the message
// has none.
//
// RFC 6409 section 8 lets a submission server (MSA) complete a message its
// user's program left incomplete: sections 8.2 and 8.3 name a missing Date:
// and Message-ID:. A relay must leave the message alone beyond its
// Received: (RFC 5321 section 6.4), so the session adds them only where it
// is sure to act as an MSA: on the local socket and for an authenticated
// client (SmtpSession::submission() in session_data.cpp). OpenSMTPD adds
// the same two on its local socket, loopback and port 587 listeners.
//
// The fields go at the end of the header section, before the message's
// filters see it, so that a DKIM signer can sign them (OpenSMTPD adds them
// after its filters).
//
// Depends on: nothing beyond the standard library (unit-tested on its own).
#pragma once

#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace postern::smtpd {

struct AddedFields {
    std::string date;        // Date:'s value ("Mon, 07 Dec 2026 13:16:15 +0100")
    std::string message_id;  // Message-ID:'s value ("<...@host>")
};

// Adds "Date: ..." and "Message-ID: ..." to `message` (LF line ends; a whole
// message, or the part of one before its empty line) where its header
// section has no field of that name (in any case). The header section is the
// fields (and their continuation lines) from the top up to the first line
// that is not one; the added fields go at its end. When it ends at a line
// that is not empty (a message without a header section, or with a line that
// is not a field in it), an empty line is added after them, so that the
// line stays in the body, where a reader puts it (and is not read as a
// continuation of Message-ID:), as postern-sendmail does with such input.
// Returns the names of the fields added, in order.
std::vector<std::string_view> add_missing_fields(std::string& message, const AddedFields& fields);

// True when `line` starts a header field: a name of printable characters
// other than ':', then ':' (spaces before it allowed, as the obsolete
// syntax does), the rule add_missing_fields reads the header section by.
bool starts_field(std::string_view line);

// RFC 5322 date-time in local time, for Date: and Received:.
std::string rfc5322_date(std::time_t t);

// A Message-ID: value that no other message has: the queue's message id
// (unique in the queue), 64 random bits (unique beyond it) and the name the
// server goes by: "<0123456789abcdef.89abcdef@mx.example.org>".
std::string new_message_id_value(std::string_view msgid, std::string_view host);

}  // namespace postern::smtpd
