// The smtpd.conf lexer: turns the text of one config file into logical lines
// of tokens, each token carrying the file, line and column it came from.
//
// A logical line is one directive: physical lines joined by `\`+newline, and
// by newlines inside an open `{ ... }` (multi-line inline tables). `#` starts a
// comment to the end of the line. `$name` at the start of an unquoted token is
// replaced by the macro's value, lexed again (values are not expanded twice,
// as in OpenSMTPD). The lexer knows nothing of directives: the parser asks for
// one line at a time, so a macro defined on one line is usable on the next.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace postern::config {

struct Token {
    enum class Kind {
        Word,    // bare text: keywords, names, addresses
        String,  // "..." or '...': never a keyword
        Number,  // -?[0-9]+ written bare
        Punct,   // { } < > ! = => , ( )
    };
    Kind kind = Kind::Word;
    std::string text;  // the value: without quotes for String, "=>" for that punct
    Location where;
    int length = 0;  // bytes taken in the source, to point just past the token

    bool is_word(std::string_view w) const { return kind == Kind::Word && text == w; }
    bool is_punct(std::string_view p) const { return kind == Kind::Punct && text == p; }
    // Anything usable as a value: a word, a quoted string or a number.
    bool is_value() const { return kind != Kind::Punct; }
};

using Line = std::vector<Token>;

// 'text', as diagnostics name a word.
std::string quote(std::string_view s);
// How a token is named in "found ..." (long values cut, so one bad line
// cannot make an unreadable message).
std::string describe(const Token& t);

// Reads the tokens of one logical line, front to back (the parser's and the
// pre-6.4 translator's view of a line).
class Cursor {
public:
    explicit Cursor(const Line& line) : line_(line) {}

    bool done() const { return i_ >= line_.size(); }
    const Token* peek(std::size_t ahead = 0) const { return i_ + ahead < line_.size() ? &line_[i_ + ahead] : nullptr; }
    const Token& take() { return line_[i_++]; }
    bool word(std::string_view w) const { return !done() && line_[i_].is_word(w); }
    bool punct(std::string_view p) const { return !done() && line_[i_].is_punct(p); }
    bool value() const { return !done() && line_[i_].is_value(); }

    // Where the next token is, or just past the last one at the end of line.
    Location where() const;
    std::string found() const { return done() ? "end of line" : describe(line_[i_]); }

private:
    const Line& line_;
    std::size_t i_ = 0;
};

// The longest token accepted, as OpenSMTPD's 8 KiB buffer.
inline constexpr std::size_t kMaxTokenLength = 8192;

class Lexer {
public:
    // `text` is the whole file; `file` names it in every Location.
    Lexer(std::string text, std::string file);

    enum class Status { Line, Bad, End };
    // Read the next logical line into `out`. Bad: a lexing error was added to
    // `errors` and the rest of that line skipped (`out` is unusable). End: no
    // more lines.
    Status next_line(const Macros& macros, Line& out, std::vector<Diagnostic>& errors);

    const std::string& file() const { return file_; }

private:
    int peek(std::size_t ahead = 0) const;
    void advance();          // one byte, keeping line and column
    bool at_splice() const;  // `\` + newline (or `\` + CR LF)
    void skip_splice();
    void skip_comment();
    void skip_rest_of_line();  // after an error: to the end of the logical line
    Location here() const { return Location{file_, line_, column_}; }

    bool read_quoted(Token& tok, std::vector<Diagnostic>& errors);
    bool read_word(Token& tok, std::vector<Diagnostic>& errors);
    bool expand_macro(const Macros& macros, Line& out, std::vector<Diagnostic>& errors);
    // Lex a macro's value (no expansion inside it); every token is placed at `at`.
    static bool lex_value(std::string_view name, std::string_view value, const Location& at, Line& out,
                          std::vector<Diagnostic>& errors);

    std::string text_;
    std::string file_;
    std::size_t pos_ = 0;
    int line_ = 1;
    int column_ = 1;
    bool expand_ = true;  // false when lexing a macro's value
};

}  // namespace postern::config
