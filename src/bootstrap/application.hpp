#pragma once
// The composition root: the only code that names concrete adapters. It builds the
// subsystems in dependency order, runs them, and on SIGTERM/SIGINT tears them down in the
// exact reverse order, draining HTTP first.

#include <memory>
#include <vector>

#include "order_pipeline/event_handlers.hpp"
#include "order_pipeline/step.hpp"
#include "platform/config/app_config.hpp"

namespace op::bootstrap {

// What a program built on the pipeline declares (order_pipeline::pipeline).
struct program_declaration {
  // The saga's steps, in order: a built-in one by name alone (no action), or a shop's own.
  std::vector<order_pipeline::step> steps;
  std::vector<order_pipeline::event_handler> handlers;
};

class application {
 public:
  // Throws std::invalid_argument naming the step or handler for a step list or handler the
  // rules refuse.
  application(config::app_config config, program_declaration program);
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
