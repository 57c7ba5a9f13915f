hash=$(python3 -W ignore -c 'import crypt; print(crypt.crypt("dave password", crypt.mksalt(crypt.METHOD_BLOWFISH)))')
sqlite3 /var/lib/postern/mail.sqlite "INSERT INTO users (address, name, password, home) VALUES ('dave@example.org', 'dave', '$hash', '/var/vmail/example.org/dave')"
