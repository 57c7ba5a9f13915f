/*
 * postern delivery plugin ABI, version 1.
 *
 * A delivery action (mbox, maildir, lmtp, mda, relay) is a shared object named
 * `delivery-NAME.so` that exports
 *
 *     const struct postern_delivery_plugin *postern_delivery_plugin(void);
 *
 * Delivery plugins never run inside the daemon. The daemon starts the
 * delivery agent `postern-local` for each delivery, already switched to the
 * recipient's uid/gid, with the spooled message (headers as received, with
 * our Received: line, CRLF line ends removed to LF) readable on a file
 * descriptor. The agent loads the plugin and calls `deliver` once. A plugin
 * that crashes therefore costs one temporary failure, never the daemon.
 */
#ifndef POSTERN_DELIVERY_H
#define POSTERN_DELIVERY_H

#include "abi.h"

#ifdef __cplusplus
extern "C" {
#endif

struct postern_delivery_request {
    uint32_t struct_size; /* sizeof(struct postern_delivery_request) */
    int message_fd;       /* readable, positioned at the start of the message */
    const char* sender;   /* envelope sender, "" for the null sender <> */
    const char* rcpt;     /* recipient as given in RCPT TO */
    const char* dest;     /* final recipient address after expansion */
    const char* user;     /* local user name the delivery runs as */
    const char* home;     /* that user's home directory */
    const char* path;     /* action argument (maildir path, mbox file), "" if none */
    const char* options;  /* action options, space separated ("junk"), "" if none */
    const char* msgid;    /* queue message id, for unique file names and logs */
    /* Added in ABI 1 after msgid (check struct_size): the DSN parameters of
     * RFC 3461 for a relay to pass on, as they go on the wire, "" if none. */
    const char* mail_params; /* "RET=HDRS ENVID=xtext" */
    const char* rcpt_params; /* "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;xtext" */
};

struct postern_delivery_result {
    uint32_t struct_size; /* sizeof(struct postern_delivery_result), set by the caller */
    int status;           /* POSTERN_OK, POSTERN_TEMPFAIL or POSTERN_PERMFAIL */
    char text[1024];      /* one line: the reason, or where it was delivered */
};

struct postern_delivery_plugin {
    uint32_t abi_version; /* POSTERN_ABI_VERSION */
    uint32_t struct_size; /* sizeof(struct postern_delivery_plugin) */
    const char* name;     /* action method as written in the config: "maildir" */

    /* Deliver one message. Return POSTERN_OK, POSTERN_TEMPFAIL or
     * POSTERN_PERMFAIL; on failure write a one-line reason into err. A
     * POSTERN_OK means the message is durable (fsynced) at its destination;
     * a plugin may then write into err where it went (a relay: the host and
     * its reply), which the daemon logs. */
    int (*deliver)(const struct postern_delivery_request* req, char* err, size_t errlen);

    /* Added in ABI 1 after deliver (check struct_size; NULL = not offered):
     * deliver one message to several recipients at once, as a relay does in
     * one SMTP transaction. *reqs[0..n) share the message, sender, path,
     * options and mail_params; *results[i] answers *reqs[i] as deliver
     * would. Arrays of pointers, so that either struct may grow (check
     * struct_size) without moving the elements. */
    void (*deliver_many)(const struct postern_delivery_request* const* reqs, size_t n,
                         struct postern_delivery_result* const* results);
};

typedef const struct postern_delivery_plugin* (*postern_delivery_plugin_fn)(void);
#define POSTERN_DELIVERY_ENTRY "postern_delivery_plugin"

#ifdef __cplusplus
}
#endif

#endif /* POSTERN_DELIVERY_H */
