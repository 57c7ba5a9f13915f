// tables/db/makemap.cpp — postern-makemap(8) and newaliases: build a
// Berkeley DB map from a text file, as OpenSMTPD's makemap does, so that
// `table NAME db:/path.db` lines and the maps already on disk keep working.
//
//   makemap [-U] [-d hash|btree] [-o dbfile] [-t aliases|set] file
//   newaliases [-f config]
//
// The input format is map_source.hpp's; the output is dbfile.hpp's, written
// by temporary file and rename. `-t aliases` checks each value with the same
// alias syntax rules the daemon expands with (core/expand/alias_list), and
// newaliases finds the aliases map with the daemon's own config parser: a
// map makemap accepts is one the daemon reads the same way.
//
// Depends on: dbfile and map_source (this folder), postern_expand (alias
// syntax) and postern_config (newaliases). See docs/makemap.8.
#include "makemap.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "dbfile.hpp"
#include "expand/alias_list.hpp"
#include "map_source.hpp"

#ifndef POSTERN_DEFAULT_CONFIG
#define POSTERN_DEFAULT_CONFIG "/etc/postern/smtpd.conf"
#endif

namespace postern::makemap {
namespace {

using dbmap::Format;
using dbmap::MapType;

struct Options {
    bool dump = false;  // -U
    Format format = Format::Hash;
    std::string output;  // -o
    MapType type = MapType::Plain;
    std::string input;
};

// The program's name for messages: argv[0]'s base name.
std::string g_prog = "makemap";

void fail(const std::string& text) { std::fprintf(stderr, "%s: %s\n", g_prog.c_str(), text.c_str()); }

int usage(FILE* to, int status, bool newaliases) {
    if (newaliases) std::fprintf(to, "usage: %s [-f config]\n", g_prog.c_str());
    else std::fprintf(to, "usage: %s [-U] [-d hash|btree] [-o dbfile] [-t aliases|set] file\n", g_prog.c_str());
    return status;
}

std::string base_name(std::string_view path) {
    size_t slash = path.rfind('/');
    return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

// "" when `value` is a list of valid alias elements (aliases(5)), else why not.
std::string check_alias(std::string_view value) {
    std::vector<std::string> elements;
    std::string why;
    if (!expand::split_alias_list(value, &elements, &why)) return why;
    if (elements.empty()) return "expected at least one recipient";
    for (const auto& e : elements) {
        auto el = expand::classify_element(e);
        if (el.kind == expand::Element::Kind::Invalid) return el.value;
    }
    return {};
}

bool read_all(int fd, std::string* text) {
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n == 0) return true;
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        text->append(buf, static_cast<size_t>(n));
    }
}

// The source text, and the mode and owner the map gets: the source file's,
// or for stdin those of the map it replaces (0644 for a new one).
struct Source {
    std::string text;
    mode_t mode = 0644;
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
};

mode_t current_umask() {
    mode_t m = ::umask(0);  // the only way to read it; set back at once
    ::umask(m);
    return m;
}

bool read_source(const std::string& input, const std::string& output, Source* src) {
    struct stat st {};
    if (input == "-") {
        src->mode = ::stat(output.c_str(), &st) == 0 ? st.st_mode & 07777 : 0644 & ~current_umask();
        if (!read_all(STDIN_FILENO, &src->text)) {
            fail(std::string("reading stdin: ") + std::strerror(errno));
            return false;
        }
        return true;
    }
    int fd = ::open(input.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !read_all(fd, &src->text)) {
        int e = fd >= 0 && st.st_mode != 0 && !S_ISREG(st.st_mode) ? EINVAL : errno;
        if (fd >= 0) ::close(fd);
        fail(input + ": " + (e == EINVAL ? "not a regular file" : std::strerror(e)));
        return false;
    }
    ::close(fd);
    src->mode = st.st_mode & 07777;
    // The owner too, when we may: a map of root's stays root's.
    if (::geteuid() == 0) {
        src->uid = st.st_uid;
        src->gid = st.st_gid;
    }
    return true;
}

// Builds `output` from `input`; the number of entries, or nullopt after
// printing why not.
std::optional<size_t> build(const std::string& input, const std::string& output, Format format, MapType type) {
    Source src;
    if (!read_source(input, output, &src)) return std::nullopt;
    std::vector<dbmap::Record> records;
    std::string error;
    const std::string name = input == "-" ? "<stdin>" : input;
    if (!dbmap::parse_map_source(src.text, name, type, check_alias, &records, &error) ||
        !dbmap::write_map(output, format, records, src.mode, src.uid, src.gid, &error)) {
        fail(error);
        return std::nullopt;
    }
    return records.size();
}

// -U: the map's records as "key<TAB>value" lines.
int dump(const std::string& path) {
    std::string error;
    auto reader = dbmap::Reader::open(path, &error);
    if (!reader) {
        fail(error);
        return 1;
    }
    std::string out;
    bool ok = reader->for_each(
        [&](std::string_view k, std::string_view v) {
            out.append(k);
            out += '\t';
            out.append(v);
            out += '\n';
        },
        &error);
    std::fwrite(out.data(), 1, out.size(), stdout);
    if (!ok) {
        fail(error);
        return 1;
    }
    return 0;
}

// Fills `o`; returns -1 to go on, or an exit status.
int parse_args(int argc, char** argv, Options* o) {
    int i = 1;
    auto value = [&](std::string_view opt, std::string* out) {
        if (i + 1 >= argc || !*argv[i + 1]) {
            fail("option " + std::string(opt) + " needs a value");
            return false;
        }
        *out = argv[++i];
        return true;
    };
    for (; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--") {
            ++i;
            break;
        }
        if (a.size() < 2 || a[0] != '-') break;  // "-" alone is the file (stdin)
        std::string v;
        if (a == "-h" || a == "--help") return usage(stdout, 0, false);
        if (a == "-U") {
            o->dump = true;
        } else if (a == "-d") {
            if (!value(a, &v)) return usage(stderr, 2, false);
            if (v == "hash") o->format = Format::Hash;
            else if (v == "btree") o->format = Format::Btree;
            else {
                fail("-d " + v + ": expected hash or btree");
                return usage(stderr, 2, false);
            }
        } else if (a == "-o") {
            if (!value(a, &o->output)) return usage(stderr, 2, false);
        } else if (a == "-t") {
            if (!value(a, &v)) return usage(stderr, 2, false);
            if (v == "aliases") o->type = MapType::Aliases;
            else if (v == "set") o->type = MapType::Set;
            else {
                fail("-t " + v + ": expected aliases or set");
                return usage(stderr, 2, false);
            }
        } else {
            fail("unknown option '" + std::string(a) + "'");
            return usage(stderr, 2, false);
        }
    }
    if (argc - i != 1) return usage(stderr, 2, false);
    o->input = argv[i];
    return -1;
}

int run_makemap(int argc, char** argv) {
    Options o;
    if (int rc = parse_args(argc, argv, &o); rc >= 0) return rc;
    if (o.dump) return dump(o.input);
    if (o.output.empty()) {
        if (o.input == "-") {
            fail("reading stdin: give the map's name with -o dbfile");
            return usage(stderr, 2, false);
        }
        o.output = o.input + ".db";
    }
    return build(o.input, o.output, o.format, o.type) ? 0 : 1;
}

// ---- newaliases ----

// The db maps the configuration's aliases come from: the table named
// "aliases" and every table an action names with `alias <t>`, each once.
// Sets *plain to a file: table among them (read as it is, nothing to build).
std::vector<const config::TableDecl*> alias_tables(const config::Config& c, const config::TableDecl** plain) {
    std::vector<std::string> names;
    if (c.find_table("aliases")) names.emplace_back("aliases");
    for (const auto& a : c.actions)
        if (!a.alias_table.empty() && std::find(names.begin(), names.end(), a.alias_table) == names.end())
            names.push_back(a.alias_table);
    std::vector<const config::TableDecl*> out;
    for (const auto& n : names) {
        const auto* t = c.find_table(n);
        if (!t) continue;
        if (t->backend == "db") out.push_back(t);
        else if (t->backend == "file" && !*plain) *plain = t;
    }
    return out;
}

int run_newaliases(int argc, char** argv) {
    std::string path = POSTERN_DEFAULT_CONFIG;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "-h" || a == "--help") return usage(stdout, 0, true);
        if (a == "-f" && i + 1 < argc && *argv[i + 1]) {
            path = argv[++i];
        } else {
            fail("unexpected argument '" + std::string(a) + "'");
            return usage(stderr, 2, true);
        }
    }
    auto parsed = config::parse_file(path);
    if (!parsed.config) {
        for (const auto& e : parsed.errors) std::fprintf(stderr, "%s\n", config::format(e).c_str());
        fail("cannot find the aliases table: " + path + " has errors");
        return 1;
    }
    const config::TableDecl* plain = nullptr;
    auto tables = alias_tables(*parsed.config, &plain);
    if (tables.empty()) {
        if (plain) {  // nothing to build: the daemon reads the text as it is
            std::printf("%s: read as it is (table %s file:%s), nothing to build\n", plain->source.c_str(),
                        plain->name.c_str(), plain->source.c_str());
            return 0;
        }
        fail(path + ": no db: table named aliases or used by an action's alias");
        return 1;
    }
    int status = 0;
    for (const auto* t : tables) {
        const std::string& db = t->source;
        if (db.size() <= 3 || !db.ends_with(".db")) {
            fail(config::format({t->where, "table " + t->name + ": cannot tell the source of " + db +
                                               " (expected a name ending in .db, built from the name without it)"}));
            status = 1;
            continue;
        }
        // Keep the map's format: a btree map stays one.
        Format format = Format::Hash;
        std::string ignored;
        if (auto old = dbmap::Reader::open(db, &ignored)) format = old->format();
        const std::string source = db.substr(0, db.size() - 3);
        auto n = build(source, db, format, MapType::Aliases);
        if (!n) {
            status = 1;
            continue;
        }
        std::printf("%s: %zu aliases\n", source.c_str(), *n);
    }
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    g_prog = argc > 0 && argv[0] ? base_name(argv[0]) : "makemap";
    int rc = g_prog == "newaliases" ? run_newaliases(argc, argv) : run_makemap(argc, argv);
    if (std::fflush(stdout) != 0 && rc == 0) {
        fail(std::string("writing the output: ") + std::strerror(errno));
        rc = 1;
    }
    return rc;
}

}  // namespace postern::makemap
