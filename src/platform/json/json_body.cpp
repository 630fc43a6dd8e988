#include "platform/json/json_body.hpp"

#include <rapidjson/error/en.h>

#include <algorithm>
#include <string_view>
#include <vector>

namespace op::json {
namespace {

namespace rj = rapidjson;

std::string_view view(const rj::Value& string) {
  return {string.GetString(), string.GetStringLength()};
}

bool holds_nul(std::string_view text) {
  return text.find('\0') != std::string_view::npos;
}

std::string member_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

}  // namespace

std::optional<body_problem> find_ambiguity(const rj::Value& value, const field_names& read,
                                           const std::string& path, int depth) {
  if (depth > max_depth)
    return body_problem{"malformed_json", path,
                        "is nested deeper than " + std::to_string(max_depth) + " levels"};
  if (value.IsString()) {
    if (holds_nul(view(value)))
      return body_problem{"validation_failed", path, "must not contain the NUL character (U+0000)"};
    return std::nullopt;
  }
  if (value.IsArray()) {
    for (rj::SizeType i = 0; i < value.Size(); ++i)
      if (auto problem =
              find_ambiguity(value[i], read, path + "[" + std::to_string(i) + "]", depth + 1))
        return problem;
    return std::nullopt;
  }
  if (!value.IsObject())
    return std::nullopt;
  // Members the API does not read are ignored, as they would be by any tolerant reader.
  std::vector<std::string_view> keys;
  for (auto it = value.MemberBegin(); it != value.MemberEnd(); ++it)
    if (std::find(read.begin(), read.end(), view(it->name)) != read.end())
      keys.push_back(view(it->name));
  std::sort(keys.begin(), keys.end());
  if (auto twice = std::adjacent_find(keys.begin(), keys.end()); twice != keys.end()) {
    auto field = member_path(path, *twice);
    return body_problem{"duplicate_key", field, "appears more than once in the same object"};
  }
  for (auto it = value.MemberBegin(); it != value.MemberEnd(); ++it) {
    auto key = view(it->name);
    if (std::find(read.begin(), read.end(), key) == read.end())
      continue;
    if (auto problem = find_ambiguity(it->value, read, member_path(path, key), depth + 1))
      return problem;
  }
  return std::nullopt;
}

std::optional<body_problem> parse_object(std::string_view body, rj::Document& document,
                                         const field_names& read, unsigned flags) {
  if (body.empty())
    return body_problem{"malformed_json", "", "request body is required"};
  // Iterative: the recursive parser's stack grows with the nesting, and a 1 MiB body of
  // brackets would overflow it. Flags are a template argument: the two sets the API uses.
  constexpr unsigned base = rj::kParseValidateEncodingFlag | rj::kParseIterativeFlag;
  if (flags & rj::kParseNumbersAsStringsFlag)
    document.Parse<base | rj::kParseNumbersAsStringsFlag>(body.data(), body.size());
  else
    document.Parse<base>(body.data(), body.size());
  if (document.HasParseError())
    return body_problem{"malformed_json", "",
                        std::string("request body is not valid JSON: ") +
                            rj::GetParseError_En(document.GetParseError()) + " at offset " +
                            std::to_string(document.GetErrorOffset())};
  if (!document.IsObject())
    return body_problem{"malformed_json", "", "request body must be a JSON object"};
  return find_ambiguity(document, read, "", 0);
}

}  // namespace op::json
