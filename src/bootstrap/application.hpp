#pragma once
// The composition root: the only code that names concrete adapters. It builds the
// subsystems in dependency order, runs them, and on SIGTERM/SIGINT tears them down in the
// exact reverse order, draining HTTP first.

#include <memory>

#include "platform/config/app_config.hpp"

namespace op::bootstrap {

class application {
 public:
  explicit application(config::app_config config);
  ~application();

  // Serves until SIGTERM or SIGINT, then drains within the configured bound.
  // Returns the process exit code.
  int run();

 private:
  struct parts;
  config::app_config config_;
  std::unique_ptr<parts> parts_;
};

}  // namespace op::bootstrap
