// Format templates; see format.hpp.
//
// A template is read once into pieces (literal text, the home folder, a
// specifier), then the pieces are filled. check_format() stops after the
// reading, so `posternd -n` and a delivery agree on what a good template is.
// A command's pieces are also read as /bin/sh would read them (ShellQuoting),
// to know how to quote a parameter reference where each specifier stands.
#include "delivery/format.hpp"

#include <algorithm>
#include <charconv>
#include <vector>

#include "postern/support/address.hpp"
#include "util/ascii.hpp"

namespace postern::delivery {
namespace {

using util::iequals;

enum class Name {
    Sender,
    SenderUser,
    SenderDomain,
    Rcpt,
    RcptUser,
    RcptDomain,
    Dest,
    DestUser,
    DestDomain,
    UserName,
    UserDirectory,
    MboxFrom,
    Mda,
};

struct NameEntry {
    std::string_view text;
    Name name;
};

constexpr NameEntry kNames[] = {
    {"sender", Name::Sender},
    {"sender.user", Name::SenderUser},
    {"sender.domain", Name::SenderDomain},
    {"rcpt", Name::Rcpt},
    {"rcpt.user", Name::RcptUser},
    {"rcpt.domain", Name::RcptDomain},
    {"dest", Name::Dest},
    {"dest.user", Name::DestUser},
    {"dest.domain", Name::DestDomain},
    {"user.username", Name::UserName},
    {"user.directory", Name::UserDirectory},
    {"mbox.from", Name::MboxFrom},
    {"mda", Name::Mda},
};

constexpr std::string_view kNameList =
    "sender, sender.user, sender.domain, rcpt, rcpt.user, rcpt.domain, dest, dest.user, dest.domain, "
    "user.username, user.directory or mbox.from";

enum class Mod { Lowercase, Uppercase, Strip };

// [N], [N:], [:M], [N:M] as written; resolved against a value's length later.
struct Slice {
    bool single = false;
    std::optional<long> begin, end;
    std::string_view text;  // "[...]", for messages
};

struct Spec {
    Name name = Name::Sender;
    std::optional<Slice> slice;
    std::vector<Mod> mods;
    bool raw = false;
    std::string_view text;  // "%{...}" as written
    std::size_t offset = 0;
};

struct Piece {
    enum class Kind { Text, Home, Spec } kind = Kind::Text;
    std::string_view text;
    Spec spec;
};

FormatError template_error(std::size_t offset, std::string text) {
    return {FormatError::Kind::Template, offset, std::move(text)};
}

FormatError value_error(std::size_t offset, std::string text) {
    return {FormatError::Kind::Value, offset, std::move(text)};
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

// A slice bound: an optional '-' and digits, no larger than any expansion.
std::optional<long> slice_number(std::string_view s) {
    long v = 0;
    std::string_view digits = !s.empty() && s[0] == '-' ? s.substr(1) : s;
    if (digits.empty() || digits.size() > 5) return std::nullopt;
    for (char c : digits)
        if (!util::is_digit(c)) return std::nullopt;
    std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (v > static_cast<long>(kMaxExpansion)) return std::nullopt;
    return s[0] == '-' ? -v : v;
}

// Where /bin/sh stands after reading some text of a command: which quotes
// are open, inside $(...) and `...` too (each opens a quoting of its own),
// and whether a backslash escapes the next byte. Enough to quote a parameter
// reference so that the shell reads it as one word of the value. Should it
// misjudge an exotic construct (a here-document, ${x:-"..."}), the value
// would at worst be split into words or kept as a literal "${N}": a
// parameter's value is never parsed as shell syntax, whatever the quoting.
class ShellQuoting {
public:
    void feed(std::string_view text) {
        for (char c : text) feed(c);
    }

    // A reference to parameter n, as this place in the text needs it.
    std::string reference(std::size_t n) {
        std::string ref = "${" + std::to_string(n) + "}";
        prev_ = 'x';  // a word goes on: no comment, no "$(" after it
        word_start_ = false;
        switch (top().quote) {
        case Quote::None: return comment_ ? ref : "\"" + ref + "\"";
        case Quote::Double: return ref;
        case Quote::Single: return "'\"" + ref + "\"'";
        }
        return ref;
    }

    // The next byte would be taken literally by a backslash (outside single
    // quotes): a reference put there would lose its quoting.
    bool escaped() const { return escape_ && !comment_; }

private:
    enum class Quote { None, Single, Double };
    struct Level {
        char closer;  // '\0' the command itself, ')' a $(...), '`' a `...`
        Quote quote = Quote::None;
        int parens = 0;  // '(' open inside a $(...)
    };
    std::vector<Level> levels_{Level{'\0'}};
    bool escape_ = false, comment_ = false, word_start_ = true;
    char prev_ = ' ';

    Level& top() { return levels_.back(); }

    void feed(char c) {
        char prev = prev_;
        prev_ = c;
        if (comment_) {
            comment_ = c != '\n';
            word_start_ = true;
            return;
        }
        if (escape_) {
            escape_ = false;
            word_start_ = false;
            prev_ = '\0';  // "\$(" opens nothing
            return;
        }
        Level& l = top();
        if (l.quote == Quote::Single) {
            if (c == '\'') l.quote = Quote::None;
            return;
        }
        if (c == '\\') {
            escape_ = true;
            return;
        }
        if (c == '`') {
            if (l.closer == '`' && l.quote == Quote::None) levels_.pop_back();
            else levels_.push_back(Level{'`'});
            return;
        }
        if (c == '(' && prev == '$') {
            levels_.push_back(Level{')'});
            word_start_ = true;
            return;
        }
        if (l.quote == Quote::Double) {
            if (c == '"') l.quote = Quote::None;
            return;
        }
        bool starts_word = word_start_;
        word_start_ = c == ' ' || c == '\t' || c == '\n' || c == ';' || c == '&' || c == '|' || c == '(' || c == ')' ||
                      c == '<' || c == '>';
        if (c == '\'') l.quote = Quote::Single;
        else if (c == '"') l.quote = Quote::Double;
        else if (c == '#' && starts_word) comment_ = true;
        else if (c == '(' && l.closer == ')') ++l.parens;
        else if (c == ')' && l.closer == ')' && l.parens-- == 0) levels_.pop_back();
    }
};

// The command-only template errors: a specifier a backslash would escape.
std::optional<FormatError> shell_check(const std::vector<Piece>& pieces) {
    ShellQuoting q;
    std::size_t n = 0;
    for (const Piece& p : pieces) {
        if (p.kind == Piece::Kind::Text) {
            q.feed(p.text);
            continue;
        }
        if (q.escaped())
            return template_error(p.spec.offset, "expected no backslash right before " + quoted(p.spec.text) +
                                                     " in a command: it would escape the quoting of the value");
        q.reference(++n);
    }
    return std::nullopt;
}

// Reads one template into pieces. Offsets in errors are bytes of `tmpl`.
class Reader {
public:
    Reader(std::string_view tmpl, FormatUse use) : tmpl_(tmpl), use_(use) {}

    std::optional<FormatError> run(std::vector<Piece>* out) {
        std::size_t i = 0;
        if (auto e = home(out, &i)) return e;
        std::size_t text_start = i;
        auto flush = [&](std::size_t end) {
            if (end > text_start) out->push_back({Piece::Kind::Text, tmpl_.substr(text_start, end - text_start), {}});
        };
        while (i < tmpl_.size()) {
            if (tmpl_[i] != '%' || i + 1 >= tmpl_.size() || (tmpl_[i + 1] != '%' && tmpl_[i + 1] != '{')) {
                ++i;
                continue;
            }
            flush(i);
            if (tmpl_[i + 1] == '%') {  // "%%": one literal '%'
                out->push_back({Piece::Kind::Text, tmpl_.substr(i, 1), {}});
                i += 2;
            } else {
                Piece p{Piece::Kind::Spec, {}, {}};
                if (auto e = spec(i, &p.spec)) return e;
                i += p.spec.text.size();
                out->push_back(std::move(p));
            }
            text_start = i;
        }
        flush(i);
        if (use_ == FormatUse::Path) return std::nullopt;
        return shell_check(*out);
    }

private:
    std::string_view tmpl_;
    FormatUse use_;

    // "~" or "~/..." at the very start is the home folder. "~name" would be
    // another user's home: never in a path (a mail folder outside the
    // recipient's reach); in a command it is the shell's own syntax.
    std::optional<FormatError> home(std::vector<Piece>* out, std::size_t* i) {
        if (tmpl_.empty() || tmpl_[0] != '~') return std::nullopt;
        if (tmpl_.size() == 1 || tmpl_[1] == '/') {
            out->push_back({Piece::Kind::Home, {}, {}});
            *i = 1;
            return std::nullopt;
        }
        if (use_ != FormatUse::Path) return std::nullopt;
        std::string_view name = tmpl_.substr(0, tmpl_.find('/'));
        return template_error(0, "expected '~/' (the user's home folder) or %{user.directory}, found " + quoted(name) +
                                     ": another user's home is not supported");
    }

    // The specifier at `at` ("%{..."): name, slice, modifiers.
    std::optional<FormatError> spec(std::size_t at, Spec* s) {
        std::size_t close = tmpl_.find('}', at + 2);
        if (close == std::string_view::npos) return template_error(at, "expected '}' to close this '%{'");
        s->offset = at;
        s->text = tmpl_.substr(at, close + 1 - at);
        std::size_t pos = at + 2;
        std::string_view body = tmpl_.substr(pos, close - pos);

        std::size_t name_end = body.find_first_of("[:");
        std::string_view name = body.substr(0, name_end);
        if (auto e = lookup(name, pos, s)) return e;
        body.remove_prefix(name.size());
        pos += name.size();
        if (s->name == Name::Mda && !body.empty())
            return template_error(pos, "expected '}' after '%{mda', found " + quoted(body) +
                                           ": the wrapped command takes no slice or modifier");

        if (!body.empty() && body[0] == '[') {
            std::size_t rb = body.find(']');
            if (rb == std::string_view::npos)
                return template_error(pos, "expected ']' to close the slice in " + quoted(s->text));
            if (auto e = slice(body.substr(0, rb + 1), pos, s)) return e;
            body.remove_prefix(rb + 1);
            pos += rb + 1;
        }
        if (body.empty()) return std::nullopt;
        if (body[0] != ':')
            return template_error(pos, "expected ':' and modifiers or '}' after " + quoted(tmpl_.substr(at, pos - at)) +
                                           ", found " + quoted(body));
        return modifiers(body.substr(1), pos + 1, s);
    }

    std::optional<FormatError> lookup(std::string_view name, std::size_t pos, Spec* s) {
        for (const auto& n : kNames) {
            if (!iequals(n.text, name)) continue;
            // %{mda} is the wrapped command; there is none outside a wrapper.
            if (n.name == Name::Mda && use_ != FormatUse::Wrapper)
                return template_error(pos, "%{mda} is only available in an mda wrapper's command");
            s->name = n.name;
            return std::nullopt;
        }
        return template_error(pos, "expected a format name (" + std::string(kNameList) + ") after '%{', found " +
                                       (name.empty() ? std::string("nothing") : quoted(name)));
    }

    std::optional<FormatError> slice(std::string_view text, std::size_t pos, Spec* s) {
        Slice sl;
        sl.text = text;
        std::string_view inside = text.substr(1, text.size() - 2);
        auto bad = [&] {
            return template_error(pos, "expected a slice [N], [N:], [:M] or [N:M] (whole numbers, negative ones "
                                       "counting from the end) in " +
                                           quoted(s->text) + ", found " + quoted(text));
        };
        std::size_t colon = inside.find(':');
        if (colon == std::string_view::npos) {
            sl.single = true;
            sl.begin = slice_number(inside);
            if (!sl.begin) return bad();
        } else {
            std::string_view b = inside.substr(0, colon), e = inside.substr(colon + 1);
            if (!b.empty() && !(sl.begin = slice_number(b))) return bad();
            if (!e.empty() && !(sl.end = slice_number(e))) return bad();
        }
        s->slice = sl;
        return std::nullopt;
    }

    std::optional<FormatError> modifiers(std::string_view list, std::size_t pos, Spec* s) {
        for (;;) {
            std::size_t bar = list.find('|');
            std::string_view m = list.substr(0, bar);
            if (iequals(m, "lowercase")) s->mods.push_back(Mod::Lowercase);
            else if (iequals(m, "uppercase")) s->mods.push_back(Mod::Uppercase);
            else if (iequals(m, "strip")) s->mods.push_back(Mod::Strip);
            else if (iequals(m, "raw")) s->raw = true;
            else
                return template_error(pos, "expected a modifier (lowercase, uppercase, strip or raw) in " +
                                               quoted(s->text) + ", found " +
                                               (m.empty() ? std::string("nothing") : quoted(m)));
            // The values of a command go to /bin/sh as parameters, which it
            // never parses; but a command may hand them to another shell
            // (su -c "...", ssh, eval) that would. Sanitised, they are inert
            // there too: `raw` stays a path's modifier.
            if (s->raw && use_ != FormatUse::Path)
                return template_error(pos, "'raw' cannot be used in an mda command: envelope values reach "
                                           "/bin/sh only sanitised (the command finds them unchanged in "
                                           "$SENDER, $RECIPIENT, $LOCAL, $DOMAIN...)");
            if (bar == std::string_view::npos) return std::nullopt;
            list.remove_prefix(bar + 1);
            pos += bar + 1;
        }
    }
};

std::string raw_value(Name name, const FormatValues& v) {
    switch (name) {
    case Name::Sender: return std::string(v.sender);
    case Name::SenderUser: return std::string(util::local_part(v.sender));
    case Name::SenderDomain: return std::string(util::domain_part(v.sender));
    case Name::Rcpt: return std::string(v.rcpt);
    case Name::RcptUser: return std::string(util::local_part(v.rcpt));
    case Name::RcptDomain: return std::string(util::domain_part(v.rcpt));
    case Name::Dest: return std::string(v.dest);
    case Name::DestUser: return std::string(util::local_part(v.dest));
    case Name::DestDomain: return std::string(util::domain_part(v.dest));
    case Name::UserName: return std::string(v.user);
    case Name::UserDirectory: return std::string(v.home);
    case Name::MboxFrom: return v.sender.empty() ? std::string("MAILER-DAEMON") : std::string(v.sender);
    case Name::Mda: return std::string(v.mda.value_or(""));
    }
    return {};
}

// "alice+tag@example.org" -> "alice@example.org", "alice+tag" -> "alice":
// the tag runs from the first delimiter to the end of the local part.
void strip_tag(std::string& v, char delim) {
    std::size_t local_end = v.rfind('@');
    if (local_end == std::string::npos) local_end = v.size();
    std::size_t tag = v.find(delim);
    if (tag < local_end) v.erase(tag, local_end - tag);
}

void apply_modifiers(std::string& v, const Spec& s, char delim) {
    for (Mod m : s.mods) {
        if (m == Mod::Strip) strip_tag(v, delim);
        else
            for (char& c : v) c = m == Mod::Lowercase ? util::to_lower(c) : util::to_upper(c);
    }
}

// An empty value stays empty whatever the slice (the null sender has no
// first letter to take); otherwise a slice must start inside the value.
std::optional<FormatError> apply_slice(std::string& v, const Spec& s) {
    if (!s.slice || v.empty()) return std::nullopt;
    const Slice& sl = *s.slice;
    const long len = static_cast<long>(v.size());
    long b = sl.begin.value_or(0);
    if (b < 0) b += len;
    long e = b;  // inclusive
    if (!sl.single) {
        if (!sl.end) e = len - 1;
        else if (*sl.end >= 0) e = std::min(*sl.end, len - 1);
        else e = len - 1 + *sl.end;
    }
    const std::string size = " (the value of " + std::string(s.text) + " is " + std::to_string(len) + " bytes long)";
    if (b < 0 || b >= len)
        return value_error(s.offset, "the slice " + std::string(sl.text) + " starts outside the value" + size);
    if (e < b)
        return value_error(s.offset, "the slice " + std::string(sl.text) + " leaves nothing of the value" + size);
    v = v.substr(static_cast<std::size_t>(b), static_cast<std::size_t>(e - b + 1));
    return std::nullopt;
}

// With `raw`, in a path: only what would leave the folder the template names.
std::string sanitise_raw_path(std::string_view value) {
    std::string out(value);
    for (char& c : out) {
        auto u = static_cast<unsigned char>(c);
        if (c == '/' || u < 0x20 || u == 0x7f) c = ':';
    }
    if (!out.empty() && out[0] == '.') out[0] = ':';
    return out;
}

bool trusted(Name name) { return name == Name::UserDirectory || name == Name::Mda; }

// What `raw` leaves of a value: the path rule in a path, the value itself as
// a command's parameter (where the reader refuses it today: see modifiers()),
// nothing (the full sanitising) spliced into a command's text.
enum class Raw { Path, Param, Ignored };

// One specifier's value: modifiers, slice, then sanitising.
std::optional<FormatError> spec_value(const Spec& s, const FormatValues& values, Raw raw, std::string* out) {
    std::string v = raw_value(s.name, values);
    apply_modifiers(v, s, values.subaddr_delim);
    if (auto e = apply_slice(v, s)) return e;
    if (trusted(s.name) || (s.raw && raw == Raw::Param)) *out = std::move(v);
    else if (s.raw && raw == Raw::Path) *out = sanitise_raw_path(v);
    else *out = sanitise_value(v);
    return std::nullopt;
}

}  // namespace

std::string sanitise_value(std::string_view value) {
    std::string out(value);
    for (char& c : out) {
        bool safe = util::is_alnum(c) || c == '@' || c == '.' || c == '_' || c == '+' || c == '-' || c == '=';
        if (!safe) c = ':';
    }
    if (!out.empty() && out[0] == '.') out[0] = ':';
    return out;
}

std::optional<FormatError> check_format(std::string_view tmpl, FormatUse use) {
    std::vector<Piece> pieces;
    return Reader(tmpl, use).run(&pieces);
}

FormatResult expand_format(std::string_view tmpl, const FormatValues& values, FormatUse use) {
    std::vector<Piece> pieces;
    if (auto e = Reader(tmpl, use).run(&pieces)) return {std::nullopt, std::move(*e)};
    std::string out;
    for (const Piece& p : pieces) {
        std::size_t offset = p.kind == Piece::Kind::Spec ? p.spec.offset : 0;
        if (p.kind == Piece::Kind::Text) {
            out += p.text;
        } else if (p.kind == Piece::Kind::Home) {
            out += values.home;
            // "~/x" with home "/" is "/x", not "//x".
            if (!out.empty() && out.back() == '/' && tmpl.size() > 1) out.pop_back();
        } else {
            std::string v;
            Raw raw = use == FormatUse::Path ? Raw::Path : Raw::Ignored;
            if (auto e = spec_value(p.spec, values, raw, &v)) return {std::nullopt, std::move(*e)};
            out += v;
        }
        if (out.size() > kMaxExpansion)
            return {std::nullopt,
                    value_error(offset, "the expansion is longer than " + std::to_string(kMaxExpansion) + " bytes")};
    }
    return {std::move(out), {}};
}

CommandResult expand_command(std::string_view tmpl, const FormatValues& values) {
    std::vector<Piece> pieces;
    if (auto e = Reader(tmpl, FormatUse::Command).run(&pieces)) return {std::nullopt, std::move(*e)};
    ShellCommand cmd;
    ShellQuoting q;
    std::size_t size = 0;
    for (const Piece& p : pieces) {
        if (p.kind == Piece::Kind::Text) {
            cmd.script += p.text;
            q.feed(p.text);
        } else {
            std::string v;
            if (p.kind == Piece::Kind::Home) v = values.home;
            else if (auto e = spec_value(p.spec, values, Raw::Param, &v)) return {std::nullopt, std::move(*e)};
            cmd.params.push_back(std::move(v));
            cmd.script += q.reference(cmd.params.size());
            size += cmd.params.back().size() + 1;
        }
        if (cmd.script.size() + size > kMaxExpansion)
            return {std::nullopt,
                    value_error(p.kind == Piece::Kind::Spec ? p.spec.offset : 0,
                                "the expansion is longer than " + std::to_string(kMaxExpansion) + " bytes")};
    }
    return {std::move(cmd), {}};
}

FormatResult wrap_command(std::string_view wrapper, std::string_view command) {
    std::vector<Piece> outer, inner;
    if (auto e = Reader(wrapper, FormatUse::Wrapper).run(&outer)) return {std::nullopt, std::move(*e)};
    if (auto e = Reader(command, FormatUse::Command).run(&inner)) return {std::nullopt, std::move(*e)};
    // Each piece written back as a template that reads as that piece alone,
    // wherever it lands: '%' doubled, the home folder by its name.
    auto write = [](const std::vector<Piece>& pieces, std::string* out, const auto& on_mda) {
        for (const Piece& p : pieces) {
            if (p.kind == Piece::Kind::Home) {
                *out += "%{user.directory}";
            } else if (p.kind == Piece::Kind::Spec) {
                if (p.spec.name == Name::Mda) on_mda(out);
                else *out += p.spec.text;
            } else {
                for (char c : p.text) *out += c == '%' ? std::string_view("%%") : std::string_view(&c, 1);
            }
        }
    };
    std::string out;
    auto none = [](std::string*) {};
    write(outer, &out, [&](std::string* o) { write(inner, o, none); });
    // The two are good alone; together a backslash at the end of the
    // wrapper's text may escape a value of the command's.
    if (auto e = check_format(out, FormatUse::Command)) return {std::nullopt, std::move(*e)};
    return {std::move(out), {}};
}

}  // namespace postern::delivery
