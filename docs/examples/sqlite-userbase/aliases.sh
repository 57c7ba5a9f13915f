sqlite3 /var/lib/postern/mail.sqlite "INSERT INTO aliases (address, destination) VALUES ('postmaster@example.org', 'carol@example.org'), ('sales@example.org', 'carol@example.org'), ('sales@example.org', 'dave@example.org')"
sqlite3 /var/lib/postern/mail.sqlite "INSERT INTO senders (login, address) VALUES ('carol@example.org', 'sales@example.org')"
