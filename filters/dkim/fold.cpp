// dkim/fold.cpp — header field layout under 78 columns.

#include "dkim/fold.hpp"

#include <algorithm>

namespace postern::dkim {

namespace {

constexpr std::size_t kTab = 8;

}  // namespace

Folder::Folder(std::string_view name) : lines_{std::string(name) + ":"}, name_size_(name.size() + 1) {}

std::size_t Folder::columns() const {
    const std::string& line = lines_.back();
    // Only continuation lines start with the one HTAB; none is inside.
    if (lines_.size() > 1) return kTab + line.size() - 1;
    return line.size();
}

void Folder::new_line() { lines_.emplace_back("\t"); }

void Folder::word(std::string_view piece, bool space) {
    bool at_start = lines_.size() > 1 ? lines_.back().size() == 1 : false;
    std::size_t need = piece.size() + (space && !at_start ? 1 : 0);
    if (!at_start && columns() + need > kWidth) {
        new_line();
        at_start = true;
    }
    if (space && !at_start) lines_.back() += ' ';
    lines_.back().append(piece);
}

void Folder::breakable(std::string_view text) {
    while (!text.empty()) {
        std::size_t room = columns() < kWidth ? kWidth - columns() : 0;
        if (room == 0) {
            new_line();
            continue;
        }
        std::size_t n = std::min(room, text.size());
        lines_.back().append(text.substr(0, n));
        text.remove_prefix(n);
    }
}

std::string Folder::value() const {
    std::string out = lines_.front().substr(name_size_);
    for (std::size_t i = 1; i < lines_.size(); ++i) {
        out += "\r\n";
        out += lines_[i];
    }
    return out;
}

}  // namespace postern::dkim
