// Result<T>: a value or an Error, used at module boundaries (std::expected is C++23).
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace codepilot {

// Error codes shared by modules; the API layer maps them to HTTP statuses in one place.
enum class ErrorCode {
    invalid_argument,  // the caller sent something wrong (400)
    not_found,         // 404
    unauthenticated,   // missing or invalid credentials (401)
    permission_denied, // authenticated, but not allowed (403)
    too_large,         // 413
    context_overflow,  // the prompt does not fit the model's context (400)
    overloaded,        // admission queue full (503 + Retry-After)
    rate_limited,      // a quota refused it (429 + Retry-After)
    unavailable,       // engine stopped or model not loaded (503)
    unsupported,       // the model cannot do what was asked (400)
    internal,          // 500
    bad_gateway,       // an upstream server gave a broken answer (502)
    conflict,          // clashes with the current state, e.g. a model that is loaded (409)
};

struct Error {
    ErrorCode code = ErrorCode::internal;
    std::string message;
    std::string param; // the request field at fault, when there is one
};

template <typename T> class Result {
public:
    Result(T value) : data_(std::move(value)) {}     // NOLINT(google-explicit-constructor)
    Result(Error error) : data_(std::move(error)) {} // NOLINT(google-explicit-constructor)

    bool ok() const { return data_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() & { return std::get<0>(data_); }
    const T& value() const& { return std::get<0>(data_); }
    T&& value() && { return std::get<0>(std::move(data_)); }
    T* operator->() { return &std::get<0>(data_); }
    const T* operator->() const { return &std::get<0>(data_); }
    T& operator*() & { return std::get<0>(data_); }
    const T& operator*() const& { return std::get<0>(data_); }
    T operator*() && { return std::get<0>(std::move(data_)); } // by value: safe on temporaries
    const Error& error() const { return std::get<1>(data_); }

private:
    std::variant<T, Error> data_;
};

// Result<void> equivalent.
struct Ok {};
using Status = Result<Ok>;

inline Error make_error(ErrorCode code, std::string message, std::string param = {}) {
    return Error{code, std::move(message), std::move(param)};
}

} // namespace codepilot
