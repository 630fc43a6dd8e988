// Checks under Valgrind that the admin token comparison never branches on, or indexes memory
// by, the tokens' bytes: both tokens are marked undefined, so Memcheck reports any
// conditional jump that depends on them ("ctgrind"). Run as
//   valgrind --error-exitcode=3 constant_time_check            (must exit 0)
//   valgrind --error-exitcode=3 constant_time_check --control  (must exit 3)
// where --control compares with operator==, which stops at the first difference: it proves
// the check can fail.

#include <valgrind/memcheck.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "platform/http/bearer_auth.hpp"

int main(int argc, char** argv) {
  const bool control = argc > 1 && std::strcmp(argv[1], "--control") == 0;
  const std::string expected = "s3cret-admin-token-0123456789";
  const std::vector<std::string> presented = {
      expected,                                       // equal
      "X" + expected.substr(1),                       // differs at the first byte
      expected.substr(0, expected.size() - 1) + "X",  // at the last
      expected.substr(0, 5),                          // shorter
      expected + "-and-more",                         // longer
  };
  int wrong = 0;
  for (const auto& candidate : presented) {
    std::string secret = expected, guess = candidate;
    VALGRIND_MAKE_MEM_UNDEFINED(secret.data(), secret.size());
    VALGRIND_MAKE_MEM_UNDEFINED(guess.data(), guess.size());
    bool equal = control ? std::string_view(guess) == std::string_view(secret)
                         : op::http::constant_time_equal(guess, secret);
    // The caller branches on the outcome, which may depend on the tokens; only the comparison
    // itself must not.
    VALGRIND_MAKE_MEM_DEFINED(&equal, sizeof equal);
    if (equal != (candidate == expected))
      ++wrong;
  }
  if (wrong)
    std::fprintf(stderr, "%d comparisons gave the wrong answer\n", wrong);
  return wrong ? 1 : 0;
}
