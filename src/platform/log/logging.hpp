#pragma once
// Structured logging: one JSON object per line on stderr, one named logger per module
// (http, kafka, db, saga, ...), each with its own level from configuration.

#include <spdlog/spdlog.h>

#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace op::log {

struct settings {
  std::string root_level = "info";
  std::map<std::string, std::string> levels;
};

// Installs the JSON sink and the levels. Call once, before any other thread logs.
void init(const settings& s);

// The module's logger; created on first use with the configured level.
std::shared_ptr<spdlog::logger> get(std::string_view module);

}  // namespace op::log
