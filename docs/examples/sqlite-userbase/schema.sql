-- schema.sql: the tables of /var/lib/postern/mail.sqlite.
-- Addresses and logins are stored in lower case: postern lowercases
-- every key before it asks.

-- The domains this server receives mail for.
CREATE TABLE domains (
    domain TEXT PRIMARY KEY             -- 'example.org'
);

-- One row per mailbox. The address is also the login (AUTH user name).
-- The mail is delivered as uid:gid (5000 is the vmail account) into
-- home/Maildir.
CREATE TABLE users (
    address  TEXT PRIMARY KEY,          -- 'carol@example.org'
    name     TEXT NOT NULL UNIQUE,      -- 'carol': letters, digits and . _ - + only
    password TEXT NOT NULL,             -- a $6$ or $2b$ hash, never the password
    uid      INTEGER NOT NULL DEFAULT 5000,
    gid      INTEGER NOT NULL DEFAULT 5000,
    home     TEXT NOT NULL              -- '/var/vmail/example.org/carol'
);

-- Other addresses, and where their mail goes: one row per destination.
CREATE TABLE aliases (
    address     TEXT NOT NULL,          -- 'sales@example.org', or '@example.org' for all the rest
    destination TEXT NOT NULL           -- 'carol@example.org', or an address elsewhere
);

-- The addresses a user may send as besides their own.
CREATE TABLE senders (
    login   TEXT NOT NULL,              -- 'carol@example.org'
    address TEXT NOT NULL               -- 'sales@example.org', or '@example.org' for any
);
