#pragma once
// What the fuzz targets share: a property check that stops the run (libFuzzer then saves the
// input as a crash-* artifact), and small independent helpers the properties are written with.

#include <rapidjson/document.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace op::fuzz {

[[noreturn]] inline void property_failed(const char* expr, const char* file, int line,
                                         const std::string& detail) {
  std::fprintf(stderr, "\nproperty failed: %s\n  at %s:%d\n  %s\n", expr, file, line,
               detail.c_str());
  std::abort();
}

// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF); written apart from the code under test.
inline bool is_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    std::size_t n;
    unsigned cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (text.size() - i <= n)
      return false;
    for (std::size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}

// Characters (code points) of well-formed UTF-8 text.
inline std::size_t utf8_length(std::string_view text) {
  std::size_t n = 0;
  for (char c : text)
    n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// True when `text` is one complete JSON document in valid UTF-8.
inline bool is_json(std::string_view text, rapidjson::Document& doc) {
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(text.data(), text.size());
  return !doc.HasParseError();
}

// The JSON error shape every handler uses: {"error": <code>, "field": <field or null>,
// "message": <sentence>}.
inline bool is_error_json(std::string_view body) {
  rapidjson::Document doc;
  if (!is_json(body, doc) || !doc.IsObject())
    return false;
  auto error = doc.FindMember("error");
  auto message = doc.FindMember("message");
  auto field = doc.FindMember("field");
  return error != doc.MemberEnd() && error->value.IsString() && error->value.GetStringLength() &&
         message != doc.MemberEnd() && message->value.IsString() && field != doc.MemberEnd() &&
         (field->value.IsNull() || field->value.IsString());
}

}  // namespace op::fuzz

#define FUZZ_CHECK(cond, detail)                                        \
  do {                                                                  \
    if (!(cond))                                                        \
      ::op::fuzz::property_failed(#cond, __FILE__, __LINE__, (detail)); \
  } while (false)
