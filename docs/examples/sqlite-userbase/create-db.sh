install -d -m 0750 -o root -g _postern /var/lib/postern
sqlite3 /var/lib/postern/mail.sqlite < schema.sql
chgrp _postern /var/lib/postern/mail.sqlite
chmod 0640 /var/lib/postern/mail.sqlite
sqlite3 /var/lib/postern/mail.sqlite "INSERT INTO domains (domain) VALUES ('example.org')"
