// order_pipeline::pipeline: the public entry point of a program built on the pipeline. It
// keeps the declared step list and handlers, reads the command line and the configuration
// (with the keys the added steps bring), and hands both to the composition root.

#include "order_pipeline/pipeline.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>

#include "bootstrap/application.hpp"
#include "platform/config/app_config.hpp"
#include "platform/log/logging.hpp"

namespace order_pipeline {

struct pipeline::declared {
  std::string name;
  std::optional<step> own;  // empty for a built-in step
};

namespace {

const char* const built_in_steps[] = {"validate", "reserve", "pay", "confirm"};

void print_usage(const char* program) {
  std::cout << "usage: " << program
            << " [--config PATH] [--help-config] [--check-config PATH]\n"
               "  --config PATH        YAML configuration (default: config/application.yml when "
               "it exists)\n"
               "  --help-config        list every configuration key, its default and environment "
               "variables\n"
               "  --check-config PATH  load PATH with the environment's overrides, as a start "
               "would, and exit:\n"
               "                       0 when valid, 78 naming the first unknown key or bad "
               "value\n";
}

}  // namespace

pipeline::pipeline() {
  for (const char* name : built_in_steps)
    steps_.push_back(std::make_unique<declared>(declared{name, std::nullopt}));
}

pipeline::~pipeline() = default;
pipeline::pipeline(pipeline&&) noexcept = default;
pipeline& pipeline::operator=(pipeline&&) noexcept = default;

std::vector<std::string> pipeline::step_names() const {
  std::vector<std::string> out;
  for (const auto& s : steps_)
    out.push_back(s->name);
  return out;
}

pipeline& pipeline::insert_after(const std::string& existing, step added) {
  auto at = std::find_if(steps_.begin(), steps_.end(),
                         [&](const auto& s) { return s->name == existing; });
  if (at == steps_.end())
    throw std::invalid_argument("no step named '" + existing + "' to insert after");
  return insert_before(at + 1 == steps_.end() ? std::string() : (*(at + 1))->name,
                       std::move(added));
}

pipeline& pipeline::insert_before(const std::string& existing, step added) {
  for (const auto& s : steps_)
    if (s->name == added.name)
      throw std::invalid_argument("a step named '" + added.name + "' is already declared");
  auto at = existing.empty() ? steps_.end()
                             : std::find_if(steps_.begin(), steps_.end(),
                                            [&](const auto& s) { return s->name == existing; });
  if (!existing.empty() && at == steps_.end())
    throw std::invalid_argument("no step named '" + existing + "' to insert before");
  auto name = added.name;
  steps_.insert(at, std::make_unique<declared>(declared{std::move(name), std::move(added)}));
  return *this;
}

pipeline& pipeline::remove(const std::string& name) {
  auto at =
      std::find_if(steps_.begin(), steps_.end(), [&](const auto& s) { return s->name == name; });
  if (at == steps_.end())
    throw std::invalid_argument("no step named '" + name + "' to remove");
  steps_.erase(at);
  return *this;
}

pipeline& pipeline::add_handler(event_handler handler) {
  handlers_.push_back(std::move(handler));
  return *this;
}

int pipeline::run(int argc, char** argv) {
  namespace config = op::config;
  std::optional<std::string> config_path;
  bool check_only = false;
  // The keys a shop's steps bring: their topics and deadlines.
  std::vector<config::step_keys> added_steps;
  for (const auto& s : steps_)
    if (s->own)
      added_steps.push_back({s->name, s->own->topic.empty() ? "orders." + s->name : s->own->topic,
                             s->own->deadline.value_or(std::chrono::milliseconds(300000))});
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--config") && i + 1 < argc) {
      config_path = argv[++i];
    } else if (!std::strcmp(argv[i], "--check-config") && i + 1 < argc) {
      // Lets operators and the deploy checks validate a file without starting the server.
      config_path = argv[++i];
      check_only = true;
    } else if (!std::strcmp(argv[i], "--help-config")) {
      std::cout << config::describe_keys(added_steps);
      return 0;
    } else if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      print_usage(argv[0]);
      return 0;
    } else {
      std::cerr << "unknown argument: " << argv[i] << "\n";
      print_usage(argv[0]);
      return 64;
    }
  }
  if (!config_path) {
    if (const char* env = std::getenv("CONFIG_FILE"))
      config_path = env;
    else if (std::filesystem::exists("config/application.yml"))
      config_path = "config/application.yml";
  }

  config::app_config loaded;
  try {
    loaded = config::load(config_path, config::process_environment(), added_steps);
  } catch (const config::config_error& e) {
    std::cerr << "configuration error: " << e.what() << "\n";
    return 78;
  }
  if (check_only) {
    std::cout << "configuration OK: " << *config_path << "\n";
    return 0;
  }
  op::log::init({loaded.logging.root_level, loaded.logging.levels});
  op::log::get("app")->info("configuration: {}", config_path.value_or("(defaults)"));
  op::bootstrap::program_declaration program;
  for (auto& s : steps_) {
    if (s->own) {
      program.steps.push_back(std::move(*s->own));
    } else {
      step built_in;
      built_in.name = s->name;
      program.steps.push_back(std::move(built_in));
    }
  }
  steps_.clear();
  program.handlers = std::move(handlers_);
  std::unique_ptr<op::bootstrap::application> app;
  try {
    app = std::make_unique<op::bootstrap::application>(std::move(loaded), std::move(program));
  } catch (const std::invalid_argument& e) {
    std::cerr << "the program's steps or handlers: " << e.what() << "\n";
    return 78;
  }
  return app->run();
}

}  // namespace order_pipeline
