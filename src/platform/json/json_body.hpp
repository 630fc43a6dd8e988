#pragma once
// Reading a request body as JSON, refusing what RapidJSON accepts but an API must not, in
// the members the API reads: a key given twice in one object (which of the two counts would
// be unspecified) and the character U+0000 in a string (PostgreSQL text cannot hold it, and C
// strings end at it, so a stored value would silently differ from the accepted one). Members
// the API does not read are ignored, whatever they hold.

#include <rapidjson/document.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace op::json {

// Why a body was refused: `error` is the API's error code (malformed_json, duplicate_key,
// validation_failed), `field` the JSON path of the offending value ("items[0].productName"),
// empty when the body as a whole is at fault, and `rule` what is wrong with it.
struct body_problem {
  std::string error;
  std::string field;
  std::string rule;

  // "items[0].productName must not contain ...", or the rule alone for the whole body.
  std::string message() const { return field.empty() ? rule : field + " " + rule; }
};

// The member names the API reads, at any level of the body ("items" and "productId" alike).
using field_names = std::vector<std::string_view>;

// Parses `body` into `document` (strings validated as UTF-8; with
// rapidjson::kParseNumbersAsStringsFlag in `flags` numbers keep their decimal text). Returns
// the first problem, or nothing when `document` is a JSON object the API may read.
std::optional<body_problem> parse_object(std::string_view body, rapidjson::Document& document,
                                         const field_names& read, unsigned flags = 0);

// Request bodies are flat; deeper nesting is refused before it can cost stack or time.
inline constexpr int max_depth = 32;

// A duplicate key, a string holding U+0000 or nesting deeper than max_depth under `value`,
// in the members named in `read`, depth first; `path` is the JSON path of `value` itself
// ("" for the root), `depth` its level.
std::optional<body_problem> find_ambiguity(const rapidjson::Value& value, const field_names& read,
                                           const std::string& path, int depth);

}  // namespace op::json
