// The YAML reader (see yaml_reader.hpp): YAML nodes to smtpd.conf lines.
//
// One function per section of the document. Each checks the shape of its
// nodes (a mapping with known keys, a scalar, a list) and says so at the
// node, then emits the tokens of the equivalent smtpd.conf line. A document
// with any such error is refused on those errors alone. What the values
// mean is left to the smtpd.conf parser reading the lines, so a bad port,
// an unknown table or `auth` on a listener without TLS is refused with the
// same words in both forms. The lines are emitted in the order
// smtpd.conf wants declarations (tables, pki, ca, wrappers, procs, filters,
// actions, then listeners and matches), whatever order the keys have here.
// The schema is documented in docs/postern.yaml.5.
#include "config/yaml_reader.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <initializer_list>
#include <optional>

#include "config/parser_impl.hpp"

namespace postern::config {

namespace {

using Node = YAML::Node;

// A bound on the tokens one document may produce: YAML aliases let a small
// file name a node many times over ("billion laughs").
constexpr std::size_t kMaxTokens = 1'000'000;

// The deepest a document nests is 6 levels (filters, a name, match, a
// condition, map, an entry); an alias may be used inside its own anchor.
constexpr int kMaxDepth = 32;

constexpr std::string_view kTop = "the configuration";

// Thrown, and caught in Reader::read, when a document passes kMaxTokens.
struct TooLarge {};

struct Field {
    std::string key;
    Node k;
    Node v;
};

// A mapping's entries in document order, its keys checked against a list.
struct Fields {
    std::vector<Field> list;
    const Field* get(std::string_view key) const {
        for (const Field& f : list)
            if (f.key == key) return &f;
        return nullptr;
    }
};

std::string one_of(std::initializer_list<std::string_view> words) {
    std::string out;
    std::size_t i = 0;
    for (std::string_view w : words) {
        if (i > 0) out += i + 1 == words.size() ? " or " : ", ";
        out += w;
        ++i;
    }
    return out;
}

bool plain_digits(const Node& n) {
    const std::string& s = n.Scalar();
    const std::size_t start = !s.empty() && s.front() == '-' ? 1 : 0;
    return n.Tag() == "?" && s.size() > start && s.find_first_not_of("0123456789", start) == std::string::npos;
}

class Reader {
public:
    explicit Reader(std::string file) : file_(std::move(file)) {}

    void read(const Node& root);

    std::vector<Line> lines;
    std::vector<Diagnostic> errors;

private:
    void read_document(const Node& root);
    bool refuse_merge_keys(const Node& n, int depth);
    Location at(const Node& n) const {
        const YAML::Mark m = n.Mark();
        if (m.is_null()) return Location{file_, 1, 1};
        return Location{file_, m.line + 1, m.column + 1};
    }
    bool fail(const Node& n, std::string message) {
        errors.push_back(Diagnostic{at(n), std::move(message)});
        return false;
    }
    static std::string found(const Node& n) {
        if (!n.IsDefined() || n.IsNull()) return "nothing";
        if (n.IsSequence()) return "a list";
        if (n.IsMap()) return "a mapping";
        const std::string& s = n.Scalar();
        return quote(s.size() > 48 ? s.substr(0, 45) + "..." : s);
    }
    bool expected(const Node& n, const std::string& what) {
        return fail(n, "expected " + what + ", found " + found(n));
    }

    Token token(Token::Kind kind, std::string text, const Node& n) {
        if (++tokens_ > kMaxTokens) throw TooLarge{};
        check_text(text, n);
        Token t;
        t.kind = kind;
        t.length = static_cast<int>(text.size());
        t.text = std::move(text);
        t.where = at(n);
        return t;
    }
    Token word(std::string_view w, const Node& n) { return token(Token::Kind::Word, std::string(w), n); }
    Token punct(std::string_view p, const Node& n) { return token(Token::Kind::Punct, std::string(p), n); }
    // A scalar as a value: quoted (never a keyword), or a number when written as one.
    Token value_token(const Node& n) {
        return token(plain_digits(n) ? Token::Kind::Number : Token::Kind::String, n.Scalar(), n);
    }

    std::optional<Fields> fields(const Node& n, const std::string& what,
                                 std::initializer_list<std::string_view> allowed);
    void check_text(std::string_view text, const Node& n);
    bool scalar(const Node& n, const std::string& what);
    std::optional<bool> boolean(const Node& n, const std::string& what);
    static bool is_bool(const Node& n);
    bool value(const Field& f, Line& line);
    bool value_spec(const Node& n, const std::string& what, bool scalar_is_table, Line& line);
    bool inline_list(const Node& n, Line& line);
    bool inline_map(const Node& n, Line& line);
    void emit(Line line) {
        if (!line.empty()) lines.push_back(std::move(line));
    }
    void flag(const Fields& fs, std::string_view key, const std::string& what, Line& line);

    void globals(const Fields& top);
    void setting(const Field* f, std::initializer_list<std::string_view> words);
    void smtp(const Field& f);
    void mta(const Field& f);
    void srs(const Field& f);
    void queue(const Field& f);
    void bounce(const Field& f);
    void metrics(const Field& f);
    template <typename Fn>
    void named(const Field* section, const std::string& what, Fn each);
    void table(const Field& f);
    void pki(const Field& f);
    void ca(const Field& f);
    void proc(const Field& f);
    bool proc_options(const Fields& fs, Line& line);
    void filter(const Field& f);
    bool builtin_filter(const Fields& fs, const std::string& what, Line& line);
    void action(const Field& f);
    void local_options(const Fields& fs, Line& line);
    void relay_options(const Fields& fs, Line& line);
    void listener(const Node& n);
    void listener_tls(const Fields& fs, Line& line);
    void listener_auth(const Fields& fs, Line& line);
    void match(const Node& n);
    bool criterion(const Field& f, Line& line);
    bool source_or_target(const Field& f, std::initializer_list<std::string_view> words,
                          std::initializer_list<std::string_view> with_value, Line& line);

    std::string file_;
    std::size_t tokens_ = 0;
};

// What the smtpd.conf lexer refuses in a quoted string, refused here too:
// YAML's escapes ("\n") would otherwise carry a line break into a banner,
// a header or a command line.
void Reader::check_text(std::string_view text, const Node& n) {
    for (char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            char byte[8];
            std::snprintf(byte, sizeof byte, "0x%02x", c);
            fail(n, "unexpected control character (byte " + std::string(byte) + ") in a value");
            return;
        }
    }
    if (text.size() > kMaxTokenLength) fail(n, "value is longer than " + std::to_string(kMaxTokenLength) + " bytes");
}

std::optional<Fields> Reader::fields(const Node& n, const std::string& what,
                                     std::initializer_list<std::string_view> allowed) {
    if (!n.IsMap()) {
        expected(n, "a mapping for " + what);
        return std::nullopt;
    }
    Fields out;
    for (auto it = n.begin(); it != n.end(); ++it) {
        const Node k = it->first;
        if (!k.IsScalar()) {
            expected(k, "a key in " + what);
            continue;
        }
        const std::string key = k.Scalar();
        if (const Field* prev = out.get(key)) {
            const Location p = at(prev->k);
            fail(k, "key " + quote(key) + " is given twice in " + what + " (first at " + std::to_string(p.line) + ":" +
                        std::to_string(p.column) + ")");
            continue;
        }
        // x-NAME at the top: a place for YAML anchors, as in docker-compose files.
        if (what == kTop && key.starts_with("x-")) continue;
        if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
            fail(k, "unknown key " + quote(key) + " in " + what + "; expected " + one_of(allowed));
            continue;
        }
        out.list.push_back(Field{key, k, it->second});
    }
    return out;
}

bool Reader::scalar(const Node& n, const std::string& what) { return n.IsScalar() || expected(n, what); }

bool Reader::is_bool(const Node& n) {
    if (!n.IsScalar() || n.Tag() != "?") return false;
    const std::string s = util::lowercase(n.Scalar());
    return s == "true" || s == "false" || s == "yes" || s == "no";
}

std::optional<bool> Reader::boolean(const Node& n, const std::string& what) {
    if (!is_bool(n)) {
        expected(n, "true or false for " + what);
        return std::nullopt;
    }
    const std::string s = util::lowercase(n.Scalar());
    return s == "true" || s == "yes";
}

// `key: true` adds the word `key` (at the key) to the line; false adds nothing.
void Reader::flag(const Fields& fs, std::string_view key, const std::string& what, Line& line) {
    const Field* f = fs.get(key);
    if (!f) return;
    auto b = boolean(f->v, quote(key) + " in " + what);
    if (b && *b) line.push_back(word(key, f->k));
}

// A scalar value after the words already on the line.
bool Reader::value(const Field& f, Line& line) {
    if (!scalar(f.v, "a value for " + quote(f.key))) return false;
    line.push_back(value_token(f.v));
    return true;
}

// VALUE or TABLE (docs/postern.yaml.5): a scalar (a value, or a table's name
// when `scalar_is_table`), a list (an inline list table), or a mapping with
// one of value, table, list or map, and regex.
bool Reader::value_spec(const Node& n, const std::string& what, bool scalar_is_table, Line& line) {
    if (n.IsScalar() && !n.IsNull()) {
        if (!scalar_is_table) {
            line.push_back(value_token(n));
            return true;
        }
        line.push_back(punct("<", n));
        line.push_back(token(Token::Kind::String, n.Scalar(), n));
        line.push_back(punct(">", n));
        return true;
    }
    if (n.IsSequence()) return inline_list(n, line);
    if (!n.IsMap())
        return expected(n, (scalar_is_table ? "a table name, a list or a mapping for "
                                            : "a value, a list "
                                              "or a mapping for ") +
                               what);
    auto fs = fields(n, what, {"value", "table", "list", "map", "regex"});
    if (!fs) return false;
    const Field* chosen = nullptr;
    for (const Field& f : fs->list) {
        if (f.key == "regex") continue;
        if (chosen)
            return fail(f.k, quote(f.key) + " cannot be used together with " + quote(chosen->key) + " in " + what);
        chosen = &f;
    }
    if (!chosen) return fail(n, what + " needs one of value, table, list or map");
    if (const Field* r = fs->get("regex")) {
        auto b = boolean(r->v, "'regex'");
        if (!b) return false;
        if (*b) line.push_back(word("regex", r->k));
    }
    if (chosen->key == "list") {
        if (!chosen->v.IsSequence()) return expected(chosen->v, "a list for 'list'");
        return inline_list(chosen->v, line);
    }
    if (chosen->key == "map") return inline_map(chosen->v, line);
    if (!scalar(chosen->v,
                "a " + std::string(chosen->key == "table" ? "table name" : "value") + " for " + quote(chosen->key)))
        return false;
    if (chosen->key == "value") {
        line.push_back(value_token(chosen->v));
        return true;
    }
    line.push_back(punct("<", chosen->v));
    line.push_back(token(Token::Kind::String, chosen->v.Scalar(), chosen->v));
    line.push_back(punct(">", chosen->v));
    return true;
}

// [a, b]: `{ a, b }`, an anonymous list table named after where the list starts.
bool Reader::inline_list(const Node& n, Line& line) {
    line.push_back(punct("{", n));
    bool ok = true;
    for (const Node& e : n) {
        if (!e.IsScalar() || e.IsNull()) {
            ok = expected(e, "a table entry (a scalar)") && ok;
            continue;
        }
        line.push_back(value_token(e));
        line.push_back(punct(",", e));
    }
    line.push_back(punct("}", n));
    return ok;
}

// {k: v, ...}: `{ k = v, ... }`.
bool Reader::inline_map(const Node& n, Line& line) {
    if (!n.IsMap()) return expected(n, "a mapping of keys to values for 'map'");
    line.push_back(punct("{", n));
    bool ok = true;
    for (auto it = n.begin(); it != n.end(); ++it) {
        if (!it->first.IsScalar() || !it->second.IsScalar() || it->second.IsNull()) {
            ok = expected(it->second.IsScalar() ? it->first : it->second, "a key and a scalar value") && ok;
            continue;
        }
        line.push_back(value_token(it->first));
        line.push_back(punct("=", it->first));
        line.push_back(value_token(it->second));
        line.push_back(punct(",", it->second));
    }
    line.push_back(punct("}", n));
    return ok;
}

void Reader::read(const Node& root) {
    try {
        read_document(root);
    } catch (const TooLarge&) {
        lines.clear();
        fail(root, "the document is too large (more than " + std::to_string(kMaxTokens) + " values)");
    }
}

// yaml-cpp 0.7 reads `<<: *anchor` as a key like any other: say so, rather
// than report the keys it would have merged as missing. The walk also
// bounds the nesting: yaml-cpp accepts an alias inside its own anchor
// (`&a [*a]`), a structure without end.
bool Reader::refuse_merge_keys(const Node& n, int depth) {
    if (++tokens_ > kMaxTokens) throw TooLarge{};
    if (depth > kMaxDepth)
        return fail(n, "nested more than " + std::to_string(kMaxDepth) +
                           " levels deep (is an alias inside its own anchor?)");
    if (n.IsSequence())
        for (const Node& e : n)
            if (!refuse_merge_keys(e, depth + 1)) return false;
    if (!n.IsMap()) return true;
    for (auto it = n.begin(); it != n.end(); ++it) {
        if (it->first.IsScalar() && it->first.Scalar() == "<<" && it->first.Tag() == "?")
            fail(it->first, "merge keys ('<<') are not supported: write the keys out, or anchor a whole mapping "
                            "and name it with an alias");
        if (!refuse_merge_keys(it->first, depth + 1) || !refuse_merge_keys(it->second, depth + 1)) return false;
    }
    return true;
}

void Reader::read_document(const Node& root) {
    if (!root.IsDefined() || root.IsNull()) return;  // the parser says a match is missing
    refuse_merge_keys(root, 0);
    tokens_ = 0;
    if (!errors.empty()) return;
    auto top = fields(root, std::string(kTop),
                      {"hostname",     "queue", "control-socket", "pidfile", "plugin-path", "mbox-path", "smtp",
                       "mta",          "srs",   "bounce",         "metrics", "tables",      "pki",       "ca",
                       "mda-wrappers", "procs", "filters",        "actions", "listeners",   "matches",   "admd",
                       "scheduler"});
    if (!top) return;
    globals(*top);
    named(top->get("tables"), "'tables'", [this](const Field& f) { table(f); });
    named(top->get("pki"), "'pki'", [this](const Field& f) { pki(f); });
    named(top->get("ca"), "'ca'", [this](const Field& f) { ca(f); });
    named(top->get("mda-wrappers"), "'mda-wrappers'", [this](const Field& f) {
        if (scalar(f.v, "a command for mda wrapper " + quote(f.key)))
            emit({word("mda", f.k), word("wrapper", f.k), token(Token::Kind::String, f.key, f.k), value_token(f.v)});
    });
    named(top->get("procs"), "'procs'", [this](const Field& f) { proc(f); });
    named(top->get("filters"), "'filters'", [this](const Field& f) { filter(f); });
    named(top->get("actions"), "'actions'", [this](const Field& f) { action(f); });
    for (std::string_view key : {"listeners", "matches"}) {
        const Field* f = top->get(key);
        if (!f) continue;
        if (!f->v.IsSequence()) {
            expected(f->v, "a list under " + quote(key));
            continue;
        }
        for (const Node& n : f->v) key == "listeners" ? listener(n) : match(n);
    }
}

// ---- globals -------------------------------------------------------------

void Reader::setting(const Field* f, std::initializer_list<std::string_view> words) {
    if (!f) return;
    Line line;
    for (std::string_view w : words) line.push_back(word(w, f->k));
    if (value(*f, line)) emit(std::move(line));
}

void Reader::globals(const Fields& top) {
    setting(top.get("hostname"), {"hostname"});
    setting(top.get("control-socket"), {"control", "socket"});
    setting(top.get("pidfile"), {"pidfile"});
    setting(top.get("plugin-path"), {"plugin", "path"});
    setting(top.get("mbox-path"), {"mbox", "path"});
    if (const Field* f = top.get("queue")) queue(*f);
    if (const Field* f = top.get("smtp")) smtp(*f);
    if (const Field* f = top.get("mta")) mta(*f);
    if (const Field* f = top.get("srs")) srs(*f);
    if (const Field* f = top.get("bounce")) bounce(*f);
    if (const Field* f = top.get("metrics")) metrics(*f);
    setting(top.get("admd"), {"admd"});
    if (const Field* f = top.get("scheduler")) {
        auto fs = fields(f->v, "'scheduler'", {"max-evp-batch-size"});
        if (fs) setting(fs->get("max-evp-batch-size"), {"scheduler", "limit", "max-evp-batch-size"});
    }
}

void Reader::queue(const Field& f) {
    auto fs = fields(f.v, "'queue'", {"path", "ttl", "compression", "encryption"});
    if (!fs) return;
    setting(fs->get("path"), {"queue", "path"});
    setting(fs->get("ttl"), {"queue", "ttl"});
    if (const Field* c = fs->get("compression")) {
        Line line{word("queue", c->k)};
        flag(*fs, "compression", "'queue'", line);
        if (line.size() > 1) emit(std::move(line));
    }
    // encryption: true (the key from the key file) or the key itself.
    if (const Field* e = fs->get("encryption")) {
        Line line{word("queue", e->k)};
        if (!is_bool(e->v)) {
            line.push_back(word("encryption", e->k));
            if (value(*e, line)) emit(std::move(line));
        } else {
            flag(*fs, "encryption", "'queue' (or the key)", line);
            if (line.size() > 1) emit(std::move(line));
        }
    }
}

void Reader::smtp(const Field& f) {
    auto fs = fields(f.v, "'smtp'",
                     {"max-message-size", "max-mails", "max-rcpt", "max-sessions", "max-sessions-per-address",
                      "max-conn-rate", "max-auth-failures", "command-timeout", "tls-timeout", "min-data-rate",
                      "sub-addr-delim", "ciphers"});
    if (!fs) return;
    for (const Field& s : fs->list) {
        const bool limit = s.key != "max-message-size" && s.key != "sub-addr-delim" && s.key != "ciphers";
        Line line{word("smtp", s.k)};
        if (limit) line.push_back(word("limit", s.k));
        line.push_back(word(s.key, s.k));
        if (value(s, line)) emit(std::move(line));
    }
}

void Reader::mta(const Field& f) {
    auto fs = fields(f.v, "'mta'",
                     {"resolver", "family", "max-conn-per-domain", "max-conn-per-relay", "max-conn-for-domain",
                      "session-mail-max", "session-keepalive"});
    if (!fs) return;
    setting(fs->get("resolver"), {"mta", "resolver"});
    if (const Field* fam = fs->get("family")) {
        if (!fam->v.IsScalar() || (fam->v.Scalar() != "inet4" && fam->v.Scalar() != "inet6"))
            expected(fam->v, "inet4 or inet6 for 'family'");
        else emit({word("mta", fam->k), word("limit", fam->k), word(fam->v.Scalar(), fam->v)});
    }
    setting(fs->get("max-conn-per-domain"), {"mta", "limit", "max-conn-per-domain"});
    setting(fs->get("max-conn-per-relay"), {"mta", "limit", "max-conn-per-relay"});
    // max-conn-for-domain: {DOMAIN: N, ...}, each `mta limit for domain D max-conn-per-domain N`.
    if (const Field* per = fs->get("max-conn-for-domain")) {
        if (!per->v.IsMap()) {
            expected(per->v, "a mapping of domain: number for 'max-conn-for-domain'");
            return;
        }
        for (auto it = per->v.begin(); it != per->v.end(); ++it) {
            if (!it->first.IsScalar()) {
                expected(it->first, "a domain in 'max-conn-for-domain'");
                continue;
            }
            const Field d{it->first.Scalar(), it->first, it->second};
            Line line{word("mta", d.k),
                      word("limit", d.k),
                      word("for", d.k),
                      word("domain", d.k),
                      token(Token::Kind::String, d.key, d.k),
                      word("max-conn-per-domain", d.k)};
            if (value(d, line)) emit(std::move(line));
        }
    }
    setting(fs->get("session-mail-max"), {"mta", "limit", "session-mail-max"});
    setting(fs->get("session-keepalive"), {"mta", "limit", "session-keepalive"});
}

void Reader::srs(const Field& f) {
    auto fs = fields(f.v, "'srs'", {"key", "backup-key", "ttl"});
    if (!fs) return;
    setting(fs->get("key"), {"srs", "key"});
    setting(fs->get("backup-key"), {"srs", "key", "backup"});
    setting(fs->get("ttl"), {"srs", "ttl"});
}

void Reader::bounce(const Field& f) {
    auto fs = fields(f.v, "'bounce'", {"warn-interval"});
    if (!fs) return;
    const Field* w = fs->get("warn-interval");
    if (!w) return;
    Line line{word("bounce", w->k), word("warn-interval", w->k)};
    if (w->v.IsScalar() && !w->v.IsNull()) {
        line.push_back(value_token(w->v));
    } else if (w->v.IsSequence() && w->v.size() > 0) {
        for (const Node& d : w->v) {
            if (!scalar(d, "a delay in 'warn-interval'")) return;
            if (line.size() > 2) line.push_back(punct(",", d));
            line.push_back(value_token(d));
        }
    } else {
        expected(w->v, "a delay or a list of delays for 'warn-interval'");
        return;
    }
    emit(std::move(line));
}

void Reader::metrics(const Field& f) {
    auto fs = fields(f.v, "'metrics'", {"listen-on", "port"});
    if (!fs) return;
    const Field* on = fs->get("listen-on");
    if (!on) {
        fail(f.v, "'metrics' needs 'listen-on'");
        return;
    }
    Line line{word("metrics", f.k), word("listen", on->k), word("on", on->k)};
    if (!value(*on, line)) return;
    if (const Field* port = fs->get("port")) {
        line.push_back(word("port", port->k));
        if (!value(*port, line)) return;
    }
    emit(std::move(line));
}

// ---- declarations ----------------------------------------------------------

// A section that maps names to declarations.
template <typename Fn>
void Reader::named(const Field* section, const std::string& what, Fn each) {
    if (!section) return;
    if (!section->v.IsMap()) {
        expected(section->v, "a mapping of names under " + what);
        return;
    }
    std::vector<std::string> seen;
    for (auto it = section->v.begin(); it != section->v.end(); ++it) {
        if (!it->first.IsScalar() || it->first.Scalar().empty()) {
            expected(it->first, "a name in " + what);
            continue;
        }
        const std::string name = it->first.Scalar();
        if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
            fail(it->first, quote(name) + " is given twice in " + what);
            continue;
        }
        seen.push_back(name);
        each(Field{name, it->first, it->second});
    }
}

// NAME: "backend:/path" | "/path" | [list] | {list: [...]} | {map: {...}}
void Reader::table(const Field& f) {
    Line line{word("table", f.k), token(Token::Kind::String, f.key, f.k)};
    if (f.v.IsScalar() && !f.v.IsNull()) {
        line.push_back(value_token(f.v));
    } else if (f.v.IsSequence()) {
        if (!inline_list(f.v, line)) return;
    } else {
        auto fs = fields(f.v, "table " + quote(f.key), {"list", "map"});
        if (!fs) return;
        if (fs->list.size() != 1) {
            fail(f.v, "table " + quote(f.key) + " needs one of list or map");
            return;
        }
        const Field& e = fs->list.front();
        if (e.key == "list" && !e.v.IsSequence()) {
            expected(e.v, "a list for 'list'");
            return;
        }
        if (!(e.key == "list" ? inline_list(e.v, line) : inline_map(e.v, line))) return;
    }
    emit(std::move(line));
}

void Reader::pki(const Field& f) {
    auto fs = fields(f.v, "pki " + quote(f.key), {"cert", "key", "dhe"});
    if (!fs) return;
    Line line{word("pki", f.k), token(Token::Kind::String, f.key, f.k)};
    for (const Field& e : fs->list) {
        line.push_back(word(e.key, e.k));
        if (e.key == "dhe") {
            if (!scalar(e.v, "none, auto or legacy for 'dhe'")) return;
            line.push_back(word(e.v.Scalar(), e.v));
        } else if (!value(e, line)) {
            return;
        }
    }
    emit(std::move(line));
}

void Reader::ca(const Field& f) {
    auto fs = fields(f.v, "ca " + quote(f.key), {"cert"});
    if (!fs) return;
    const Field* cert = fs->get("cert");
    if (!cert) {
        fail(f.v, "ca " + quote(f.key) + " needs 'cert'");
        return;
    }
    Line line{word("ca", f.k), token(Token::Kind::String, f.key, f.k), word("cert", cert->k)};
    if (value(*cert, line)) emit(std::move(line));
}

// NAME: {command, user, group, chroot, protocol, timeout, on-failure}
void Reader::proc(const Field& f) {
    const std::string what = "proc " + quote(f.key);
    auto fs = fields(f.v, what, {"command", "user", "group", "chroot", "protocol", "timeout", "on-failure"});
    if (!fs) return;
    const Field* command = fs->get("command");
    if (!command) {
        fail(f.v, what + " needs 'command'");
        return;
    }
    Line line{word("proc", f.k), token(Token::Kind::String, f.key, f.k)};
    if (value(*command, line) && proc_options(*fs, line)) emit(std::move(line));
}

bool Reader::proc_options(const Fields& fs, Line& line) {
    for (const Field& e : fs.list) {
        if (e.key == "command" || e.key == "proc-exec") continue;
        line.push_back(word(e.key, e.k));
        if (e.key == "on-failure") {
            if (!scalar(e.v, "tempfail or pass for 'on-failure'")) return false;
            line.push_back(word(e.v.Scalar(), e.v));
        } else if (!value(e, line)) {
            return false;
        }
    }
    return true;
}

// NAME: {proc: P} | {proc-exec: CMD, options} | {chain: [...]} |
// {phase: P, match: {...}, DECISION: ...}
void Reader::filter(const Field& f) {
    const std::string what = "filter " + quote(f.key);
    if (!f.v.IsMap()) {
        expected(f.v, "a mapping for " + what);
        return;
    }
    const Node& v = f.v;  // const: a lookup must not add the key
    const char* kind = nullptr;
    for (const char* k : {"proc", "proc-exec", "chain", "phase"})
        if (v[k]) {
            if (kind) {
                fail(f.v, what + ": '" + std::string(k) + "' cannot be used together with '" + kind + "'");
                return;
            }
            kind = k;
        }
    if (!kind) {
        fail(f.v, what + " needs one of proc, proc-exec, chain or phase");
        return;
    }
    Line line{word("filter", f.k), token(Token::Kind::String, f.key, f.k)};
    const std::string k = kind;
    if (k == "proc") {
        auto fs = fields(f.v, what, {"proc"});
        if (!fs || !fs->get("proc")) return;
        line.push_back(word("proc", fs->get("proc")->k));
        if (!value(*fs->get("proc"), line)) return;
    } else if (k == "proc-exec") {
        auto fs = fields(f.v, what, {"proc-exec", "user", "group", "chroot", "protocol", "timeout", "on-failure"});
        if (!fs || !fs->get("proc-exec")) return;
        line.push_back(word("proc-exec", fs->get("proc-exec")->k));
        if (!value(*fs->get("proc-exec"), line) || !proc_options(*fs, line)) return;
    } else if (k == "chain") {
        auto fs = fields(f.v, what, {"chain"});
        if (!fs || !fs->get("chain")) return;
        const Field& c = *fs->get("chain");
        if (!c.v.IsSequence()) {
            expected(c.v, "a list of filter names for 'chain'");
            return;
        }
        line.push_back(word("chain", c.k));
        if (!inline_list(c.v, line)) return;
    } else {
        auto fs = fields(f.v, what, {"phase", "match", "reject", "disconnect", "rewrite", "junk", "report", "bypass"});
        if (!fs || !builtin_filter(*fs, what, line)) return;
    }
    emit(std::move(line));
}

// phase P match [!] CONDITION [TABLE] DECISION [VALUE]
bool Reader::builtin_filter(const Fields& fs, const std::string& what, Line& line) {
    const Field* phase = fs.get("phase");
    const Field* match = fs.get("match");
    if (!phase || !scalar(phase->v, "a phase for 'phase'")) return false;
    line.push_back(word("phase", phase->k));
    line.push_back(word(phase->v.Scalar(), phase->v));
    if (!match) return fail(phase->k, what + " needs 'match' with its condition");
    auto cond = fields(match->v, "'match' of " + what,
                       {"not", "fcrdns", "rdns", "src", "helo", "auth", "mail-from", "rcpt-to"});
    if (!cond) return false;
    line.push_back(word("match", match->k));
    if (const Field* n = cond->get("not")) {
        auto b = boolean(n->v, "'not'");
        if (!b) return false;
        if (*b) line.push_back(punct("!", n->k));
    }
    const Field* c = nullptr;
    for (const Field& e : cond->list)
        if (e.key != "not") {
            if (c)
                return fail(e.k, "a built-in filter tests one condition, and " + quote(e.key) +
                                     " would be a second one: put one filter per condition in a chain");
            c = &e;
        }
    if (!c)
        return fail(match->v, "'match' of " + what +
                                  " needs a condition (fcrdns, rdns, src, helo, auth, "
                                  "mail-from or rcpt-to)");
    line.push_back(word(c->key, c->k));
    if (is_bool(c->v)) {
        if (!*boolean(c->v, quote(c->key)))
            return expected(c->v, "true or a table for " + quote(c->key) + " (negate with not: true)");
    } else if (!value_spec(c->v, quote(c->key), true, line)) {
        return false;
    }
    const Field* d = nullptr;
    for (const Field& e : fs.list)
        if (e.key != "phase" && e.key != "match") {
            if (d) return fail(e.k, quote(e.key) + " cannot be used together with " + quote(d->key));
            d = &e;
        }
    if (!d) return fail(phase->k, what + " needs a decision (reject, disconnect, rewrite, junk, report or bypass)");
    line.push_back(word(d->key, d->k));
    if (d->key == "junk" || d->key == "bypass") {
        auto b = boolean(d->v, quote(d->key));
        return b && (*b || expected(d->v, "true for " + quote(d->key)));
    }
    return value(*d, line);
}

// ---- actions ---------------------------------------------------------------

void Reader::action(const Field& f) {
    const std::string what = "action " + quote(f.key);
    if (!f.v.IsMap()) {
        expected(f.v, "a mapping for " + what);
        return;
    }
    const Node& v = f.v;  // const: a lookup must not add the key
    const Node method = v["method"];
    if (!method) {
        fail(f.v, what + " needs 'method' (mbox, maildir, mda, lmtp, forward-only, expand-only or relay)");
        return;
    }
    const std::string m = method.IsScalar() ? method.Scalar() : "";
    std::optional<Fields> fs;
    const std::string with = what + " (method " + m + ")";
    if (m == "relay")
        fs = fields(f.v, with,
                    {"method", "host", "domain", "backup", "backup-mx", "helo", "helo-src", "src", "auth", "tls", "pki",
                     "ca", "mail-from", "srs", "ciphers", "protocols", "ttl"});
    else if (m == "maildir")
        fs = fields(f.v, with, {"method", "path", "junk", "alias", "virtual", "userbase", "user", "wrapper", "ttl"});
    else if (m == "mda")
        fs = fields(f.v, with, {"method", "command", "alias", "virtual", "userbase", "user", "wrapper", "ttl"});
    else if (m == "lmtp")
        fs = fields(f.v, with,
                    {"method", "destination", "rcpt-to", "alias", "virtual", "userbase", "user", "wrapper", "ttl"});
    else fs = fields(f.v, with, {"method", "alias", "virtual", "userbase", "user", "wrapper", "ttl"});
    if (!fs) return;
    Line line{word("action", f.k), token(Token::Kind::String, f.key, f.k)};
    if (!scalar(method, "a method for 'method'")) return;
    line.push_back(word(m, method));
    const char* required = m == "mda" ? "command" : m == "lmtp" ? "destination" : nullptr;
    if (required && !fs->get(required)) {
        fail(f.v, what + " (method " + m + ") needs '" + required + "'");
        return;
    }
    if (m == "relay") relay_options(*fs, line);
    else local_options(*fs, line);
    emit(std::move(line));
}

void Reader::local_options(const Fields& fs, Line& line) {
    for (std::string_view first : {"path", "command", "destination"})
        if (const Field* p = fs.get(first)) value(*p, line);
    flag(fs, "junk", "the action", line);
    flag(fs, "rcpt-to", "the action", line);
    for (std::string_view key : {"alias", "virtual", "userbase", "user", "wrapper", "ttl"}) {
        const Field* e = fs.get(key);
        if (!e) continue;
        line.push_back(word(key, e->k));
        if (key == "alias" || key == "virtual" || key == "userbase") value_spec(e->v, quote(e->key), true, line);
        else value(*e, line);
    }
}

void Reader::relay_options(const Fields& fs, Line& line) {
    for (const Field& e : fs.list) {
        const std::string& k = e.key;
        if (k == "method" || k == "ttl" || k == "backup" || k == "backup-mx") continue;
        if (k == "srs") {
            flag(fs, "srs", "the relay", line);
            continue;
        }
        if (k == "tls") {
            if (e.v.IsScalar() && e.v.Scalar() == "no-verify") {
                line.push_back(word("tls", e.k));
                line.push_back(word("no-verify", e.v));
            } else {
                flag(fs, "tls", "the relay (or no-verify)", line);
            }
            continue;
        }
        line.push_back(word(k, e.k));
        if (k == "host" || k == "src") value_spec(e.v, quote(k), false, line);
        else if (k == "domain" || k == "helo-src" || k == "auth") value_spec(e.v, quote(k), true, line);
        else value(e, line);
    }
    const Field* mx = fs.get("backup-mx");
    if (mx) {
        line.push_back(word("backup", mx->k));
        line.push_back(word("mx", mx->k));
        value(*mx, line);
    } else {
        flag(fs, "backup", "the relay", line);
    }
    if (const Field* ttl = fs.get("ttl")) {
        line.push_back(word("ttl", ttl->k));
        value(*ttl, line);
    }
}

// ---- listeners ---------------------------------------------------------------

void Reader::listener(const Node& n) {
    auto fs = fields(n, "a listener",
                     {"listen-on",  "port",          "family",      "hostname", "hostnames",     "tag",
                      "mask-src",   "tls",           "tls-require", "smtps",    "verify",        "pki",
                      "ca",         "ciphers",       "protocols",   "auth",     "auth-optional", "senders",
                      "masquerade", "received-auth", "no-dsn",      "proxy-v2", "filter"});
    if (!fs) return;
    const Field* on = fs->get("listen-on");
    if (!on) {
        fail(n, "a listener needs 'listen-on' (an address, an interface, a host name or socket)");
        return;
    }
    if (!scalar(on->v, "an address, an interface, a host name or socket for 'listen-on'")) return;
    Line line{word("listen", on->k), word("on", on->k)};
    line.push_back(on->v.Scalar() == "socket" && on->v.Tag() == "?" ? word("socket", on->v) : value_token(on->v));
    for (std::string_view key : {"port", "hostname", "tag"})
        if (const Field* e = fs->get(key)) {
            line.push_back(word(key, e->k));
            value(*e, line);
        }
    if (const Field* fam = fs->get("family")) {
        if (!fam->v.IsScalar() || (fam->v.Scalar() != "inet4" && fam->v.Scalar() != "inet6"))
            expected(fam->v, "inet4 or inet6 for 'family'");
        else line.push_back(word(fam->v.Scalar(), fam->v));
    }
    if (const Field* e = fs->get("hostnames")) {
        line.push_back(word("hostnames", e->k));
        value_spec(e->v, "'hostnames'", true, line);
    }
    flag(*fs, "mask-src", "a listener", line);
    listener_tls(*fs, line);
    listener_auth(*fs, line);
    flag(*fs, "received-auth", "a listener", line);
    flag(*fs, "no-dsn", "a listener", line);
    flag(*fs, "proxy-v2", "a listener", line);
    if (const Field* e = fs->get("filter")) {
        line.push_back(word("filter", e->k));
        if (e->v.IsSequence()) inline_list(e->v, line);
        else value(*e, line);
    }
    emit(std::move(line));
}

void Reader::listener_tls(const Fields& fs, Line& line) {
    bool verified = false;
    for (std::string_view key : {"tls", "tls-require", "smtps"}) {
        const Field* e = fs.get(key);
        if (!e) continue;
        auto b = boolean(e->v, quote(key));
        if (!b || !*b) continue;
        line.push_back(word(key, e->k));
        const Field* v = fs.get("verify");
        if (key != "tls" && v && !verified) {
            auto vb = boolean(v->v, "'verify'");
            if (vb && *vb) line.push_back(word("verify", v->k));
            verified = true;
        }
    }
    if (!verified) flag(fs, "verify", "a listener", line);  // the parser says where it belongs
    if (const Field* p = fs.get("pki")) {
        const std::vector<Node> names = p->v.IsSequence() ? std::vector<Node>(p->v.begin(), p->v.end())
                                                          : std::vector<Node>{p->v};
        for (const Node& name : names) {
            if (!scalar(name, "a pki name (or a list of them) for 'pki'")) continue;
            line.push_back(word("pki", p->k));
            line.push_back(value_token(name));
        }
    }
    for (std::string_view key : {"ca", "ciphers", "protocols"})
        if (const Field* e = fs.get(key)) {
            line.push_back(word(key, e->k));
            value(*e, line);
        }
}

void Reader::listener_auth(const Fields& fs, Line& line) {
    for (std::string_view key : {"auth", "auth-optional"}) {
        const Field* e = fs.get(key);
        if (!e) continue;
        if (is_bool(e->v)) {
            flag(fs, key, "a listener", line);
            continue;
        }
        line.push_back(word(key, e->k));
        value_spec(e->v, quote(key), true, line);
    }
    if (const Field* s = fs.get("senders")) {
        line.push_back(word("senders", s->k));
        value_spec(s->v, "'senders'", true, line);
    }
    flag(fs, "masquerade", "a listener", line);
}

// ---- matches -------------------------------------------------------------------

void Reader::match(const Node& n) {
    auto fs = fields(n, "a match",
                     {"from", "for", "auth", "helo", "mail-from", "rcpt-to", "tag", "tls", "not", "action", "reject"});
    if (!fs) return;
    const Field* action = fs->get("action");
    const Field* reject = fs->get("reject");
    if (reject && action) {
        fail(reject->k, "'reject' cannot be used together with 'action'");
        return;
    }
    std::optional<bool> rejects;
    if (reject && !(rejects = boolean(reject->v, "'reject'"))) return;
    if (!action && !(rejects && *rejects)) {
        fail(n, "a match needs 'action: NAME' or 'reject: true'");
        return;
    }
    Line line{word("match", n)};
    for (const Field& f : fs->list) {
        if (f.key == "action" || f.key == "reject") continue;
        if (f.key != "not") {
            criterion(f, line);
            continue;
        }
        auto negated = fields(f.v, "'not'", {"from", "for", "auth", "helo", "mail-from", "rcpt-to", "tag", "tls"});
        if (!negated) continue;
        for (const Field& g : negated->list) {
            line.push_back(punct("!", g.k));
            criterion(g, line);
        }
    }
    if (action) {
        line.push_back(word("action", action->k));
        value(*action, line);
    } else {
        line.push_back(word("reject", reject->k));
    }
    emit(std::move(line));
}

bool Reader::criterion(const Field& f, Line& line) {
    if (f.key == "from")
        return source_or_target(f, {"any", "local", "socket", "rdns", "auth"}, {"src", "rdns", "auth", "mail-from"},
                                line);
    if (f.key == "for") return source_or_target(f, {"any", "local"}, {"domain", "rcpt-to"}, line);
    line.push_back(word(f.key, f.k));
    if (f.key == "tls") {  // tls: true
        if (is_bool(f.v) && *boolean(f.v, "'tls'")) return true;
        line.pop_back();
        return expected(f.v, "true for 'tls' (for sessions in clear, write not: {tls: true})");
    }
    if (f.key == "auth" && is_bool(f.v)) {
        if (*boolean(f.v, "'auth'")) return true;
        line.pop_back();
        return expected(f.v, "true or a value for 'auth' (for sessions without auth, write not: {auth: true})");
    }
    return value_spec(f.v, quote(f.key), false, line);
}

// from: any | local | ... | {src: VALUE} ...; for: any | local | {domain: VALUE} ...
bool Reader::source_or_target(const Field& f, std::initializer_list<std::string_view> words,
                              std::initializer_list<std::string_view> with_value, Line& line) {
    line.push_back(word(f.key, f.k));
    if (f.v.IsScalar() && !f.v.IsNull()) {
        if (std::find(words.begin(), words.end(), f.v.Scalar()) == words.end()) {
            std::string list;
            for (std::string_view w : words) list += std::string(w) + ", ";
            list.resize(list.size() - 2);
            return expected(f.v, list + " or a mapping for " + quote(f.key));
        }
        line.push_back(word(f.v.Scalar(), f.v));
        return true;
    }
    auto fs = fields(f.v, quote(f.key), with_value);
    if (!fs) return false;
    if (fs->list.size() != 1) return fail(f.v, quote(f.key) + " needs one of " + one_of(with_value));
    const Field& e = fs->list.front();
    line.push_back(word(e.key, e.k));
    if (e.key != "src" && e.key != "domain" && e.key != "rcpt-to" && e.key != "mail-from" && is_bool(e.v)) {
        if (*boolean(e.v, quote(e.key))) return true;
        return expected(e.v, "true or a value for " + quote(e.key));
    }
    return value_spec(e.v, quote(e.key), false, line);
}

}  // namespace

bool is_yaml_name(std::string_view path) {
    auto ends = [&](std::string_view s) { return path.size() > s.size() && path.substr(path.size() - s.size()) == s; };
    return ends(".yaml") || ends(".yml");
}

ParseResult read_yaml_text(std::string_view text, const std::string& name, const Macros& overrides) {
    Reader reader(name);
    std::vector<Diagnostic> warnings;
    if (!overrides.empty())
        warnings.push_back(Diagnostic{Location{name, 1, 1}, "-D has no effect on a YAML configuration: it has no "
                                                            "macros (use YAML anchors, or your tool's variables)"});
    try {
        reader.read(YAML::Load(std::string(text)));
    } catch (const YAML::Exception& e) {
        ParseResult r;
        const Location at = e.mark.is_null() ? Location{name, 1, 1}
                                             : Location{name, e.mark.line + 1, e.mark.column + 1};
        r.errors.push_back(Diagnostic{at, "invalid YAML: " + e.msg});
        return r;
    }
    // A document of the wrong shape is refused on its shape alone: half of
    // it read would only add errors about what the other half declares.
    if (!reader.errors.empty()) {
        ParseResult r;
        r.errors = std::move(reader.errors);
        std::stable_sort(r.errors.begin(), r.errors.end(), [](const Diagnostic& a, const Diagnostic& b) {
            return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
        });
        r.warnings = std::move(warnings);
        return r;
    }
    const Macros none;  // the parser keeps a reference
    detail::Parser parser(none);
    for (const Line& line : reader.lines) parser.read_line(line);
    ParseResult r = parser.finish(name);
    for (Diagnostic& d : r.errors)
        if (d.message.starts_with("no 'match' rule"))  // in the words of this form
            d.message = "no match: nothing would ever be accepted; add at least one entry under 'matches'";
    r.warnings.insert(r.warnings.begin(), warnings.begin(), warnings.end());
    return r;
}

ParseResult read_yaml_file(const std::string& path, const Macros& overrides) {
    std::string why;
    auto text = detail::read_whole_file(path, why);
    if (!text) {
        ParseResult r;
        r.errors.push_back(Diagnostic{Location{path, 0, 0}, "cannot read config file: " + why});
        return r;
    }
    return read_yaml_text(*text, path, overrides);
}

}  // namespace postern::config
