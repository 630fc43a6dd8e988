// order-pipeline: the order processing server. See README.md.

#include <cstring>
#include <filesystem>
#include <iostream>

#include "bootstrap/application.hpp"
#include "platform/config/app_config.hpp"
#include "platform/log/logging.hpp"

namespace {

void print_usage() {
  std::cout << "usage: order-pipeline [--config PATH] [--help-config] [--check-config PATH]\n"
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

int main(int argc, char** argv) {
  std::optional<std::string> config_path;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--config") && i + 1 < argc) {
      config_path = argv[++i];
    } else if (!std::strcmp(argv[i], "--check-config") && i + 1 < argc) {
      // Lets operators and the deploy checks validate a file without starting the server.
      config_path = argv[++i];
      check_only = true;
    } else if (!std::strcmp(argv[i], "--help-config")) {
      std::cout << op::config::describe_keys();
      return 0;
    } else if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      print_usage();
      return 0;
    } else {
      std::cerr << "unknown argument: " << argv[i] << "\n";
      print_usage();
      return 64;
    }
  }
  if (!config_path) {
    if (const char* env = std::getenv("CONFIG_FILE"))
      config_path = env;
    else if (std::filesystem::exists("config/application.yml"))
      config_path = "config/application.yml";
  }

  op::config::app_config config;
  try {
    config = op::config::load(config_path, op::config::process_environment());
  } catch (const op::config::config_error& e) {
    std::cerr << "configuration error: " << e.what() << "\n";
    return 78;
  }
  if (check_only) {
    std::cout << "configuration OK: " << *config_path << "\n";
    return 0;
  }
  op::log::init({config.logging.root_level, config.logging.levels});
  op::log::get("app")->info("configuration: {}", config_path.value_or("(defaults)"));
  op::bootstrap::application app(std::move(config));
  return app.run();
}
