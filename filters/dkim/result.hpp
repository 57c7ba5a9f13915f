// dkim/result.hpp — a value or the typed reason there is none.
//
// The DKIM core never throws: every operation that can fail on outside input
// (a key file, a key table, a signature header, a DNS record) returns a
// Result. C++20 has no std::expected, and the core's error types are distinct
// from its value types, so a variant of the two is enough.
//
// Depends on: nothing but the standard library.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <utility>
#include <variant>

namespace postern::dkim {

template <class T, class E>
class Result {
public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    Result(E error) : v_(std::in_place_index<1>, std::move(error)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    // Calling value() on an error (or error() on a value) is a bug in the
    // caller, not bad input: it aborts rather than throw bad_variant_access.
    T& value() & { return *checked<0>(); }
    const T& value() const& { return *checked<0>(); }
    T&& value() && { return std::move(*checked<0>()); }
    const E& error() const { return *checked<1>(); }

private:
    template <std::size_t I>
    auto* checked() {
        auto* p = std::get_if<I>(&v_);
        if (p == nullptr) std::abort();
        return p;
    }
    template <std::size_t I>
    const auto* checked() const {
        const auto* p = std::get_if<I>(&v_);
        if (p == nullptr) std::abort();
        return p;
    }

    std::variant<T, E> v_;
};

}  // namespace postern::dkim
