// filters/rspamd/reply.cpp — decoding rspamd's /checkv2 reply (see reply.hpp).

#include "reply.hpp"

#include <array>
#include <cmath>
#include <limits>
#include <utility>

namespace postern::rspamd {

namespace {

constexpr std::array<std::pair<Action, std::string_view>, 6> kActions{{
    {Action::Reject, "reject"},
    {Action::SoftReject, "soft reject"},
    {Action::RewriteSubject, "rewrite subject"},
    {Action::AddHeader, "add header"},
    {Action::Greylist, "greylist"},
    {Action::NoAction, "no action"},
}};

}  // namespace

std::string_view action_name(Action a) {
    for (const auto& [action, name] : kActions)
        if (action == a) return name;
    return "no action";
}

std::optional<Action> parse_action(std::string_view name) {
    for (const auto& [action, n] : kActions)
        if (n == name) return action;
    return std::nullopt;
}

namespace {

using json::Type;
using json::Value;

// A field name (RFC 5322 section 3.6.8): printable ASCII but ':'. Checked
// because the name becomes the start of a header line we write.
bool is_field_name(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (c < 33 || c > 126 || c == ':') return false;
    return true;
}

// Decoding stops at the first problem; each step returns false after
// recording it, with the path of the field.
class Decoder {
public:
    std::optional<DecodeError> error;

    bool fail(std::string path, std::string_view what) {
        if (!error) error = DecodeError{0, path + ": " + std::string(what)};
        return false;
    }
    bool wrong_type(std::string path, const Value& v, std::string_view expected) {
        return fail(std::move(path),
                    "expected " + std::string(expected) + ", not " + std::string(json::type_name(v.type())));
    }

    const std::string* string(const Value& v, const std::string& path) {
        if (const auto* s = v.as_string()) return s;
        wrong_type(path, v, "a string");
        return nullptr;
    }
    std::optional<double> number(const Value& v, const std::string& path) {
        if (const auto* d = v.as_number()) return *d;
        wrong_type(path, v, "a number");
        return std::nullopt;
    }
    std::optional<int> integer(const Value& v, const std::string& path) {
        auto d = number(v, path);
        if (!d) return std::nullopt;
        if (*d != std::floor(*d) || *d < std::numeric_limits<int>::min() || *d > std::numeric_limits<int>::max()) {
            fail(path, "expected an integer");
            return std::nullopt;
        }
        return static_cast<int>(*d);
    }
    const json::Object* object(const Value& v, const std::string& path) {
        if (const auto* o = v.as_object()) return o;
        wrong_type(path, v, "an object");
        return nullptr;
    }

    bool top(const Value& root, Reply& r) {
        const auto* o = object(root, "reply");
        if (!o) return false;
        // rspamd's error replies are {"error": "..."}.
        if (const auto* e = root.find("error"); e && !root.find("action")) {
            const auto* text = e->as_string();
            return fail("error", text ? "rspamd says: " + *text : std::string("rspamd reports an error"));
        }
        const Value* action = root.find("action");
        if (!action) return fail("action", "missing");
        const auto* name = string(*action, "action");
        if (!name) return false;
        auto a = parse_action(*name);
        if (!a) return fail("action", "unknown action \"" + *name + "\"");
        r.action = *a;

        const Value* score = root.find("score");
        if (!score) return fail("score", "missing");
        auto s = number(*score, "score");
        if (!s) return false;
        r.score = *s;
        if (const Value* v = root.find("required_score")) {
            auto rs = number(*v, "required_score");
            if (!rs) return false;
            r.required_score = *rs;
        }
        if (const Value* v = root.find("is_skipped")) {
            const bool* b = v->as_bool();
            if (!b) return wrong_type("is_skipped", *v, "a boolean");
            r.is_skipped = *b;
        }
        if (const Value* v = root.find("subject")) {
            const auto* subj = string(*v, "subject");
            if (!subj) return false;
            r.subject = *subj;
        }
        if (const Value* v = root.find("messages"); v && !messages(*v, r)) return false;
        if (const Value* v = root.find("milter"); v && !milter(*v, r)) return false;
        if (const Value* v = root.find("dkim-signature"); v && !dkim(*v, r)) return false;
        if (const Value* v = root.find("symbols"); v && !symbols(*v, r)) return false;
        return true;
    }

    bool messages(const Value& v, Reply& r) {
        if (!object(v, "messages")) return false;
        if (const Value* m = v.find("smtp_message")) {
            const auto* text = string(*m, "messages.smtp_message");
            if (!text) return false;
            r.smtp_message = *text;
        }
        return true;
    }

    bool milter(const Value& v, Reply& r) {
        if (!object(v, "milter")) return false;
        if (const Value* a = v.find("add_headers"); a && !add_headers(*a, r)) return false;
        if (const Value* rm = v.find("remove_headers"); rm && !remove_headers(*rm, r)) return false;
        if (const Value* n = v.find("no_action")) {
            const bool* b = n->as_bool();
            if (!b) return wrong_type("milter.no_action", *n, "a boolean");
            r.no_action = *b;
        }
        return true;
    }

    // One header: "value" or {"value": "...", "order": N} ("index" is the
    // older name of "order").
    bool one_header(const std::string& name, const Value& v, const std::string& path, Reply& r) {
        if (const auto* s = v.as_string()) {
            r.add_headers.push_back({name, *s, -1});
            return true;
        }
        if (!v.as_object())
            return wrong_type(path, v, "a string, an object with a string \"value\", or an array of them");
        const Value* value = v.find("value");
        if (!value) return fail(path + ".value", "missing");
        const auto* text = string(*value, path + ".value");
        if (!text) return false;
        int order = -1;
        const Value* o = v.find("order");
        std::string opath = path + ".order";
        if (!o) {
            o = v.find("index");
            opath = path + ".index";
        }
        if (o) {
            auto n = integer(*o, opath);
            if (!n) return false;
            order = *n;
        }
        r.add_headers.push_back({name, *text, order});
        return true;
    }

    bool add_headers(const Value& v, Reply& r) {
        const auto* o = object(v, "milter.add_headers");
        if (!o) return false;
        for (const auto& [name, h] : *o) {
            std::string path = "milter.add_headers." + name;
            if (!is_field_name(name)) return fail(path, "not a header field name");
            if (const auto* items = h.as_array()) {
                for (std::size_t i = 0; i < items->size(); ++i)
                    if (!one_header(name, (*items)[i], path + "[" + std::to_string(i) + "]", r)) return false;
            } else if (!one_header(name, h, path, r)) {
                return false;
            }
        }
        return true;
    }

    bool remove_headers(const Value& v, Reply& r) {
        const auto* o = object(v, "milter.remove_headers");
        if (!o) return false;
        for (const auto& [name, n] : *o) {
            std::string path = "milter.remove_headers." + name;
            if (!is_field_name(name)) return fail(path, "not a header field name");
            auto which = integer(n, path);
            if (!which) return false;
            r.remove_headers.push_back({name, *which});
        }
        return true;
    }

    bool dkim(const Value& v, Reply& r) {
        if (const auto* s = v.as_string()) {
            r.dkim_signatures.push_back(*s);
            return true;
        }
        const auto* items = v.as_array();
        if (!items) return wrong_type("dkim-signature", v, "a string or an array of strings");
        for (std::size_t i = 0; i < items->size(); ++i) {
            const auto* s = string((*items)[i], "dkim-signature[" + std::to_string(i) + "]");
            if (!s) return false;
            r.dkim_signatures.push_back(*s);
        }
        return true;
    }

    bool symbols(const Value& v, Reply& r) {
        const auto* o = object(v, "symbols");
        if (!o) return false;
        for (const auto& [name, sym] : *o) {
            std::string path = "symbols." + name;
            if (!object(sym, path)) return false;
            Symbol s{name, 0};
            if (const Value* score = sym.find("score")) {
                auto d = number(*score, path + ".score");
                if (!d) return false;
                s.score = *d;
            }
            r.symbols.push_back(std::move(s));
        }
        return true;
    }
};

}  // namespace

DecodeResult decode_reply(std::string_view body, const json::Limits& limits) {
    json::ParseResult parsed = json::parse(body, limits);
    if (auto* e = std::get_if<json::ParseError>(&parsed)) return DecodeError{e->offset, "JSON: " + e->message};
    Reply reply;
    Decoder d;
    if (!d.top(std::get<json::Value>(parsed), reply)) return std::move(*d.error);
    return reply;
}

}  // namespace postern::rspamd
