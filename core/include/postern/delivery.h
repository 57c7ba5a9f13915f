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
 * plugin once and then, in one thread, hands each batch to it:
 *  - to `deliver_batch`, once for the whole batch, when the plugin offers
 *    it;
 *  - else in the batch's order, to `deliver` once per delivery, or to
 *    `deliver_many` once for the recipients of one message when the plugin
 *    offers it.
 * One agent process serves batch after batch, one at a time, all for the
 * same action and account (plugin, user, options); it ends a few seconds
 * after its last batch, or when the daemon stops or reloads, and then
 * unloads the plugin (its destructors run). A plugin may keep state across
 * calls, and so across batches (a connection, a cache). State that belongs
 * to one batch (a time budget, a "server unreachable" that fails the rest
 * of the batch at once) belongs in one deliver_batch call: deliver and
 * deliver_many are not told where a batch begins or ends, so such state
 * kept between their calls would carry over into the next batches. A plugin
 * that crashes costs the batch under way a temporary failure (its results
 * already reported stand), never the daemon; the next batch gets a new
 * process.
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
 *    well below that (network timeouts of a few minutes at most);
 *    deliver_batch is told the limit (postern_delivery_batch).
 *  - Threads: the agent calls the plugin from one thread. Within a
 *    deliver_batch call the plugin may work on the batch's deliveries in
 *    threads of its own, which must all be done with the requests and
 *    results before the call returns.
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

/* A member added to struct postern_delivery_plugin after deliver_many
 * starts as NULL in C++ (14 and later), so that a C++ plugin whose
 * positional initialiser stops before it ({ABI, size, name, deliver,
 * deliver_many}) still compiles without a -Wmissing-field-initializers
 * warning. In C, such an initialiser leaves it zero all the same; name the
 * members (designated initialisers) to keep the compiler quiet. */
#if defined(__cplusplus) && __cplusplus >= 201402L
#define POSTERN_LATER_MEMBER = nullptr
#else
#define POSTERN_LATER_MEMBER
#endif

/* A batch as deliver_batch sees it: what the agent knows of the batch as a
 * whole, and how to report a result before the call returns. Filled by the
 * agent, valid for the duration of the call only. Added in ABI 1 with
 * deliver_batch; it grows as the other structs do (abi.h): check
 * POSTERN_HAS_MEMBER before reading a member added after `agent`. */
struct postern_delivery_batch {
    uint32_t struct_size; /* sizeof(struct postern_delivery_batch) as the agent was built */
    /* How long the daemon lets this batch take, in milliseconds, counted
     * from the moment it handed the batch to the agent (a moment before
     * this call): then it kills the agent. 0 = not known. A plugin that
     * stops starting new work well before it (a relay: no new transaction
     * after a fraction of it) never has a transaction cut. */
    uint64_t time_limit_ms;
    /* Says that results[index] is final: the agent sends it to the daemon
     * at once, so that a crash later in the batch cannot lose it (a lost
     * result is a delivery tried again, which for a relay means the message
     * goes twice). Optional to call: every result not reported when
     * deliver_batch returns is sent then. Call it with this call's `batch`,
     * at most once per index, from any thread (the agent serialises the
     * calls), after setting the result; then touch that result no more. An
     * index out of range, or reported twice, is ignored. Never NULL.
     * Returns POSTERN_OK, or POSTERN_TEMPFAIL when results can no longer
     * reach the daemon (it has gone): a delivery made from then on would
     * be made again, so start no new one (and publish nothing not yet
     * published), leave the rest of the results as they are and return. */
    int (*report)(const struct postern_delivery_batch* batch, size_t index);
    void* agent; /* the agent's own, for report; the plugin leaves it alone */
};

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
     * Called from the agent's thread, once per delivery, in order; it
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

    /* Added in ABI 1 after deliver_many; optional: NULL (or a struct_size
     * without it) = not offered, and the agent calls deliver_many or
     * deliver as above; an older agent, which does not know it, does so
     * too, so a plugin that offers it keeps a working deliver.
     * Deliver a whole batch in one call: *reqs[0..n), n >= 1, in the
     * batch's order, each a delivery as deliver would get it (its own
     * message_fd). The recipients of one message are usually next to each
     * other; deliveries with the same msgid, sender, path, options and
     * mail_params are the same message and may go together, as through
     * deliver_many. For each i the plugin sets results[i]->status and text,
     * and the typed fields it knows, exactly as deliver_many does (the
     * agent prepares every result first; one left alone is a temporary
     * failure, never a delivery), in whatever order it learns them, and may
     * hand each to batch->report as soon as it is final. Deliveries are
     * independent: one failing must not fail the others unless the same
     * cause applies to them (a server that cannot be reached).
     * What the call may do that deliver cannot: scope state to the batch
     * (a time budget counted from the call's start, a destination found
     * unreachable), work on the deliveries at once (threads of its own,
     * several connections; all done before it returns), and make them
     * durable together (a maildir: the files written, then flushed in one
     * round). POSTERN_OK still means what it means for deliver: durable at
     * its destination, or accepted by the next server, before the result
     * is reported or the call returns. */
    void (*deliver_batch)(const struct postern_delivery_batch* batch,
                          const struct postern_delivery_request* const* reqs, size_t n,
                          struct postern_delivery_result* const* results) POSTERN_LATER_MEMBER;

    /* Members added later in ABI 1 go here; check struct_size (abi.h). */
};

/* The struct as ABI 1 first had it: a plugin's struct_size may not be less
 * (deliver_many and deliver_batch came later: a plugin built before them
 * stops at deliver). */
#define POSTERN_DELIVERY_PLUGIN_MIN_SIZE POSTERN_END_OF(struct postern_delivery_plugin, deliver)

typedef const struct postern_delivery_plugin* (*postern_delivery_plugin_fn)(void);
#define POSTERN_DELIVERY_ENTRY "postern_delivery_plugin"

#ifdef __cplusplus
}
#endif

#endif /* POSTERN_DELIVERY_H */
