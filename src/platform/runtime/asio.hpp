#pragma once
// Include Asio through this header: Boost 1.74's awaitable.hpp uses std::exchange without
// including <utility>, which g++ 12 in C++20 mode no longer pulls in transitively.
#include <utility>
// clang-format off
#include <boost/asio.hpp>
// clang-format on

// A rule for every coroutine in this code base: never pass a temporary of class type
// (a lambda, a std::string{...}, a struct literal) as an argument of a coroutine call inside
// co_await. g++ 12 destroys such a temporary twice. Pass a named local (or std::move of one)
// instead; test/unit/coroutine_arguments_test.cpp keeps the safe forms honest.

namespace op {
namespace asio = boost::asio;
}
