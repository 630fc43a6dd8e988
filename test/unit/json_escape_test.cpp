#include "platform/json/json_escape.hpp"

#include <catch2/catch.hpp>
#include <string>

using namespace op;

// Caught by the fuzz targets' properties (fuzz/http_request: a 404 for a path holding bytes
// that are not UTF-8 was invalid JSON; fuzz/kafka_envelope: so were the stored headers of a
// message with such header bytes): bytes were copied into JSON strings as they were, making
// error answers, log lines and stored headers invalid JSON.
TEST_CASE("JSON strings are valid UTF-8 whatever bytes they are made of", "[json]") {
  CHECK(json::quoted("caf\xc3\xa9 \xf0\x9f\x98\x80") == "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
  CHECK(json::quoted("\xff") == R"("\ufffd")");
  CHECK(json::quoted("a\xc3") == R"("a\ufffd")");                              // cut short
  CHECK(json::quoted("\xc0\xaf") == R"("\ufffd\ufffd")");                      // overlong
  CHECK(json::quoted("\xed\xa0\x80") == R"("\ufffd\ufffd\ufffd")");            // surrogate
  CHECK(json::quoted("\xf4\x90\x80\x80") == R"("\ufffd\ufffd\ufffd\ufffd")");  // past U+10FFFF
  CHECK(json::quoted(std::string("\x00\x1f\"\\", 4)) == R"("\u0000\u001f\"\\")");
  CHECK(json::is_valid_utf8("caf\xc3\xa9"));
  CHECK_FALSE(json::is_valid_utf8("caf\xc3"));
  CHECK_FALSE(json::is_valid_utf8("\xe0\x80\x80"));
}
