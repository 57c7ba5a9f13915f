/*
 * postern delivery plugin ABI, version 1 (rules shared with table plugins:
 * abi.h).
 *
 * A delivery action (mbox, maildir, lmtp, mda, relay) is a shared object
 * named `delivery-NAME.so`, found in the daemon's plugin folder (`plugin
 * path` in the config, else the installed one), that exports
 *
 *     const struct postern_delivery_plugin *postern_delivery_plugin(void);
 *
 * NAME is the action method as the config names it (`action "a" maildir`).
 *
 * The process. Delivery plugins never run inside the daemon. The daemon
 * hands batches of deliveries that share an action and an account (up to a
 * few dozen each) to the delivery agent `postern-local`, which loads the
 * plugin once and then, in one thread and in each batch's order, calls
 * `deliver` once per delivery, or `deliver_many` once for the recipients of
 * one message when the plugin offers it. One agent process serves batch
 * after batch, one at a time, all for the same action and account (plugin,
 * user, options); it ends a few seconds after its last batch, or when the
 * daemon stops or reloads, and then unloads the plugin (its destructors
 * run). A plugin may keep state across calls, and so across batches (a
 * connection, a cache), but no state that belongs to a batch: no call of
 * this ABI marks where a batch begins or ends, so a time budget or a
 * "server unreachable" meant for the batch under way would carry over into
 * the next ones. (postern's own relay and lmtp plugins keep such state; the
 * daemon starts a process per batch for those two actions.) A plugin that
 * crashes costs the batch under way a temporary failure, never the daemon;
 * the next batch gets a new process.
 *
 * What the plugin can count on in that process:
 *  - Privileges: when the daemon runs as root, the agent loads the plugin
 *    (its constructors run) as root, then becomes the recipient's uid/gid,
 *    for good, before the first call: every call runs as the recipient.
 *  - Working directory "/"; environment exactly PATH=/usr/bin:/bin, HOME,
 *    USER, LOGNAME (the recipient's) and SHELL=/bin/sh. Nothing from the
 *    daemon's environment is passed on.
 *  - stdin is not readable (no terminal, no message there); stdout and
 *    stderr belong to the agent: never write to them. Report through the
 *    return value and err, or deliver_many's results (a relay's
 *    diagnostics, too): the agent's stdout goes to its stderr, and nothing
 *    written there can pass for a result.
 *  - SIGPIPE is ignored and no signal is blocked: a write to a closed pipe
 *    or socket fails with EPIPE.
 *  - Time: the daemon kills the agent (SIGKILL) when a batch has taken 10
 *    minutes (60 for the relay action), counted from the moment the batch
 *    was handed to it, whatever it is doing; the deliveries of that batch
 *    that had no result yet fail temporarily. Bound every wait of your own
 *    well below that (network timeouts of a few minutes at most).
 */
#ifndef POSTERN_DELIVERY_H
#define POSTERN_DELIVERY_H

#include "abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One delivery: one message to one recipient. Filled by the agent, valid
 * (every string too: NUL-terminated, never NULL) for the duration of the
 * call only; the plugin copies what it keeps. */
struct postern_delivery_request {
    uint32_t struct_size; /* sizeof(struct postern_delivery_request) as the agent was built */
    /* The spooled message: headers as received with our Received: line on
     * top, line ends LF (CRLF turned to LF), no dot-stuffing, ending in LF.
     * A read-only descriptor of a regular file, opened for this delivery
     * alone (its own file offset) and at offset 0 when the call starts. The
     * plugin may read, seek, pread, fstat, mmap and dup it; it must not close
     * it: the agent owns it (it is closed once its batch is done, and a
     * later batch may get the same descriptor number for another message). */
    int message_fd;
    const char* sender;  /* envelope sender, "" for the null sender <> */
    const char* rcpt;    /* recipient as given in RCPT TO */
    const char* dest;    /* final recipient address after expansion */
    const char* user;    /* local user name the delivery runs as */
    const char* home;    /* that user's home directory */
    const char* path;    /* action argument (maildir path, mbox file, mda command, relay route), "" if none */
    const char* options; /* action options, space separated ("junk"), "" if none */
    const char* msgid;   /* queue message id, for unique file names and logs */
    /* Added in ABI 1 after msgid: check POSTERN_HAS_MEMBER before reading.
     * The DSN parameters of RFC 3461 for a relay to pass on, as they go on
     * the wire, "" if none. */
    const char* mail_params; /* "RET=HDRS ENVID=xtext" */
    const char* rcpt_params; /* "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;xtext" */
};

/* The request as ABI 1 first had it: every agent passes at least this much. */
#define POSTERN_DELIVERY_REQUEST_MIN_SIZE POSTERN_END_OF(struct postern_delivery_request, msgid)

/* What became of one delivery, filled by deliver_many. The caller (the
 * agent) zeroes it, sets struct_size, and sets status to a value that is no
 * POSTERN_* status: a result the plugin leaves alone
 * is a temporary failure, never a delivery. The plugin sets status and text and,
 * when it knows them, the typed fields after text, which the daemon uses as
 * they are (a report's Status, Remote-MTA and Diagnostic-Code; whether a
 * "relayed" report is due) and never parses out of text. Strings are NUL
 * terminated, one line each.
 *
 * Growth (abi.h): the members after text were added within ABI 1. A plugin
 * writes one only when POSTERN_HAS_MEMBER(res, struct
 * postern_delivery_result, member) says the caller's struct has it; a plugin
 * built before them writes status and text only, and they stay empty. */
struct postern_delivery_result {
    uint32_t struct_size; /* sizeof(struct postern_delivery_result), set by the caller */
    int status;           /* POSTERN_OK, POSTERN_TEMPFAIL or POSTERN_PERMFAIL */
    char text[1024];      /* one line for the log: the reason, or where it was delivered */
    /* Added in ABI 1 after text. "" and 0 = not known. */
    char enhanced[16];       /* RFC 3463 code of the status's class: "2.0.0", "4.2.2", "5.1.1" */
    char remote_host[256];   /* the server it went to, as the route named it: "mx.example.org" */
    char remote_addr[64];    /* its address: "192.0.2.1", "2001:db8::1" */
    int remote_code;         /* the code of its reply to quote: 250, 451, 550; 0 = none */
    char remote_reply[1024]; /* its reply after the code, lines joined with " " */
    uint32_t flags;          /* POSTERN_RESULT_* bits */
};

/* flags: the next server accepted the recipient's DSN request (RFC 3461
 * NOTIFY/ORCPT), so it sends any further report, not us. */
#define POSTERN_RESULT_DSN_HANDED_ON 0x1u

/* The result as ABI 1 first had it: every agent passes at least this much. */
#define POSTERN_DELIVERY_RESULT_MIN_SIZE POSTERN_END_OF(struct postern_delivery_result, text)

struct postern_delivery_plugin {
    uint32_t abi_version; /* POSTERN_ABI_VERSION */
    uint32_t struct_size; /* sizeof(struct postern_delivery_plugin) as the plugin was built */
    const char* name;     /* action method as written in the config: "maildir"; must match the file name */

    /* Deliver one message to one recipient. Required.
     * Return POSTERN_OK: the message is durable (fsynced) at its destination,
     * or accepted by the next server; the plugin may then write into err
     * where it went (a relay: the host and its reply), which the daemon logs.
     * Return POSTERN_TEMPFAIL: the daemon keeps the mail and tries again
     * later; POSTERN_PERMFAIL: the daemon bounces it; with either, a
     * one-line reason in err. Any other value counts as POSTERN_TEMPFAIL.
     * err holds errlen >= POSTERN_ERRLEN_MIN bytes, "" on entry.
     * Called from the agent's only thread, once per delivery, in order; it
     * may keep state across calls (see the top of this file). */
    int (*deliver)(const struct postern_delivery_request* req, char* err, size_t errlen);

    /* Added in ABI 1 after deliver; optional: NULL (or a struct_size
     * without it) = not offered, and the agent calls deliver for each
     * recipient instead.
     * Deliver one message to several recipients at once, as a relay does in
     * one SMTP transaction. *reqs[0..n), n >= 1, are the same message to n
     * recipients: they share sender, path, options, msgid and mail_params;
     * each has its own message_fd (all open on the same file), so the plugin
     * reads the message from any one of them. For each i the plugin must
     * set results[i]->status and text as deliver would its return value and
     * err (the agent prepares every result first: see the struct), in
     * whatever order it learns them, and the typed fields it knows. The
     * agent calls it for a single recipient too: only it carries those. Arrays of pointers, so that either
     * struct may grow (check struct_size) without moving the elements. */
    void (*deliver_many)(const struct postern_delivery_request* const* reqs, size_t n,
                         struct postern_delivery_result* const* results);

    /* Members added later in ABI 1 go here; check struct_size (abi.h). */
};

/* The struct as ABI 1 first had it: a plugin's struct_size may not be less
 * (deliver_many came later: a plugin built before it stops at deliver). */
#define POSTERN_DELIVERY_PLUGIN_MIN_SIZE POSTERN_END_OF(struct postern_delivery_plugin, deliver)

typedef const struct postern_delivery_plugin* (*postern_delivery_plugin_fn)(void);
#define POSTERN_DELIVERY_ENTRY "postern_delivery_plugin"

#ifdef __cplusplus
}
#endif

#endif /* POSTERN_DELIVERY_H */
