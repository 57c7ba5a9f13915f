hash=$(posternctl encrypt 'carol password')
sqlite3 /var/lib/postern/mail.sqlite "INSERT INTO users (address, name, password, home) VALUES ('carol@example.org', 'carol', '$hash', '/var/vmail/example.org/carol')"
