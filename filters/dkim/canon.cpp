// dkim/canon.cpp — RFC 6376 3.4 canonicalization, headers whole and the body
// streamed into SHA-256.

#include "dkim/canon.hpp"

#include <algorithm>
#include <array>

#include "postern/support/ascii.hpp"

namespace postern::dkim {

namespace {

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

// Appends `text` with every WSP run made one SP. Leading WSP becomes one SP
// unless `trim_front`; trailing WSP is always dropped (both relaxed forms
// drop it). With `unfold`, each CRLF is skipped, which unfolds a folded
// header value: the WSP after the CRLF of a fold is then part of a run like
// any other. A lone CR or LF is no line end here (a body line never holds
// a CRLF) and stays, as dkimpy keeps it.
void append_compressed(std::string& out, std::string_view text, bool trim_front, bool unfold) {
    bool space = false;
    bool any = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (unfold && c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
            ++i;
            continue;
        }
        if (is_wsp(c)) {
            space = true;
            continue;
        }
        if (space && (any || !trim_front)) out += ' ';
        space = false;
        any = true;
        out += c;
    }
}

}  // namespace

std::string_view canon_name(Canon c) { return c == Canon::Simple ? "simple" : "relaxed"; }

std::optional<Canon> canon_from_name(std::string_view name) {
    if (util::iequals(name, "simple")) return Canon::Simple;
    if (util::iequals(name, "relaxed")) return Canon::Relaxed;
    return std::nullopt;
}

std::string canon_header(Canon c, std::string_view name, std::string_view value) {
    std::string out;
    out.reserve(name.size() + value.size() + 3);
    if (c == Canon::Simple) {
        out.append(name);
        out += ':';
        out.append(value);
    } else {
        // A header name holds no WSP, except what a sloppy writer left
        // before the colon ("Subject : x"): relaxed deletes it.
        for (char ch : name)
            if (!is_wsp(ch)) out += util::to_lower(ch);
        out += ':';
        append_compressed(out, value, true, true);
    }
    out += "\r\n";
    return out;
}

BodyHasher::BodyHasher(Canon c, std::optional<std::uint64_t> limit) : canon_(c), limit_(limit), ctx_(EVP_MD_CTX_new()) {
    // Without a context (memory exhausted) finish() gives an empty bh=,
    // which no signature matches: a failed check, never a false pass.
    if (ctx_ && EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) ctx_.reset();
}

void BodyHasher::emit(std::string_view bytes) {
    length_ += bytes.size();
    std::uint64_t take = bytes.size();
    if (limit_) take = std::min<std::uint64_t>(take, *limit_ - std::min(*limit_, hashed_));
    if (take == 0) return;
    if (ctx_ && EVP_DigestUpdate(ctx_.get(), bytes.data(), take) != 1) ctx_.reset();
    hashed_ += take;
}

void BodyHasher::flush_empty_lines() {
    // Many empty lines in a row are legal (and cheap to send): hash them in
    // blocks rather than one call each.
    static constexpr std::string_view kBlock = "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
                                               "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n";
    while (pending_empty_ > 0) {
        std::uint64_t n = std::min<std::uint64_t>(pending_empty_, kBlock.size() / 2);
        emit(kBlock.substr(0, n * 2));
        pending_empty_ -= n;
    }
}

void BodyHasher::line(std::string_view text) {
    if (finished_) return;
    if (canon_ == Canon::Relaxed) {
        scratch_.clear();
        append_compressed(scratch_, text, false, false);
        text = scratch_;
    }
    // An empty line may be one of the trailing ones both forms drop: count
    // it, and hash it only once a non-empty line shows it was not.
    if (text.empty()) {
        ++pending_empty_;
        return;
    }
    flush_empty_lines();
    emit(text);
    emit("\r\n");
}

BodyHash BodyHasher::finish() {
    BodyHash out{canon_, {}, length_};
    if (finished_) return out;
    finished_ = true;
    pending_empty_ = 0;  // trailing: dropped
    if (canon_ == Canon::Simple && length_ == 0) emit("\r\n");
    out.length = length_;
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int len = 0;
    if (ctx_ && EVP_DigestFinal_ex(ctx_.get(), digest.data(), &len) == 1)
        out.base64 = base64_encode(std::string_view(reinterpret_cast<const char*>(digest.data()), len));
    ctx_.reset();
    return out;
}

}  // namespace postern::dkim
