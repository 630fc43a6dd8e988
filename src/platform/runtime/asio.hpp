#pragma once
// Include Asio through this header: Boost 1.74's awaitable.hpp uses std::exchange without
// including <utility>, which g++ 12 in C++20 mode no longer pulls in transitively.
#include <utility>
// clang-format off
#include <boost/asio.hpp>
// clang-format on

namespace op {
namespace asio = boost::asio;
}
