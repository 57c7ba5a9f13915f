// sendmail/message.hpp — the message postern-sendmail reads: its lines, its
// header fields, the addresses in them (-t), and the fields it adds when
// they are missing.
//
// What sendmail programs do, and what this one does: a line "." alone ends
// the input unless -i/-oi is given (Sendmail, Postfix); a first line
// "From " (an mbox separator) is dropped; with -t the recipients come from
// To:, Cc: and Bcc: (of a resent message, from its most recent Resent-To:,
// Resent-Cc: and Resent-Bcc:), and the Bcc: fields are removed (Resent-Bcc:
// too); From:, Date: and Message-ID: are
// added when the message has none (OpenSMTPD's enqueuer adds From: and
// Date:, and its daemon Message-ID: on the local socket).
#pragma once

#include <cstdio>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace postern::sendmail {

// Reads the message's lines (line ends removed: LF or CRLF) from `in` up to
// its end, or up to a line "." unless `ignore_dots`. False with `error`
// when reading fails.
bool read_message(std::FILE* in, bool ignore_dots, std::vector<std::string>* lines, std::string* error);

struct Message {
    // Each field whole: its first line and its continuation lines, joined
    // with "\n" (as they came, not unfolded).
    std::vector<std::string> fields;
    std::vector<std::string> body;  // the lines after the header section
};

// Splits the lines into the header section and the body. The header
// section ends at an empty line (not kept), or at the first line that is
// neither a field nor a continuation (kept as the body's first line).
Message split(std::vector<std::string> lines);

// The message as lines again: fields, an empty line, the body.
std::vector<std::string> join(const Message& m);

// The field's name ("Bcc" for "bcc: x"), as written.
std::string_view field_name(std::string_view field);
// The unfolded values of every field called `name` (case-insensitive).
std::vector<std::string> field_values(const Message& m, std::string_view name);
void remove_fields(Message& m, std::string_view name);

// A field -t reads recipients from: its name ("To", "Resent-Cc", as this
// program names them) and its unfolded value.
struct RecipientField {
    std::string name;
    std::string value;
};
// The fields that name the recipients. A message with a Resent-* field was
// resent (RFC 5322 section 3.6.6), and goes to the Resent-To:, Resent-Cc:
// and Resent-Bcc: of the most recent resent block, as Sendmail and Postfix
// send it; its To:, Cc: and Bcc: name the first sending's recipients. Each
// resending puts its block on top, so the most recent block is the first,
// and it ends where a field of it comes again (the next, older, block) or
// at a trace field (Received: or Return-Path:, which come before each
// block). Any other message: To:, Cc: and Bcc:. `resent` says which.
std::vector<RecipientField> recipient_fields(const Message& m, bool* resent);
// Removes Bcc: and Resent-Bcc:, whose recipients are blind copies.
void remove_blind_copies(Message& m);

// The addresses of an RFC 5322 address list ("A <a@x>, b@y (Bob), team:
// c@z;"), without display names, comments or group names; a route
// (<@r:a@x>) is dropped. False with `error` for what cannot be read
// (an unclosed quote, comment or angle bracket).
bool parse_address_list(std::string_view list, std::vector<std::string>* out, std::string* error);

// A display name as a From: header writes it: as is when it is atoms and
// spaces, else as a quoted string.
std::string display_name(std::string_view name);

// RFC 5322 date-time in local time ("Mon, 07 Dec 2026 13:16:15 +0100").
std::string rfc5322_date(std::time_t t);

struct Additions {
    std::string from;        // the From: value to add ("Name <user@host>")
    std::string message_id;  // "<...@host>"
    std::time_t now = 0;
};

// Adds From:, Date: and Message-ID: where the message has none, at the top
// of the header section.
void add_missing_fields(Message& m, const Additions& a);

}  // namespace postern::sendmail
