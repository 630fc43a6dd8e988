#pragma once
// A program built on the pipeline: order-pipeline's saga (validate, reserve, pay, confirm) with
// a shop's own steps inserted anywhere and its own event handlers, run exactly like
// order-pipeline itself (the same command line, configuration keys, HTTP API, topics and
// metrics). order-pipeline is this class with nothing added.
//
//   int main(int argc, char** argv) {
//     order_pipeline::pipeline shop;
//     shop.insert_after("reserve", screening_step());
//     shop.add_handler(notification_handler());
//     return shop.run(argc, argv);
//   }
//
// Orders in flight when a release adds or removes a step keep the step list they started
// with: a step their list lacks passes their messages on unchanged, a step of their list the
// release no longer declares is skipped (and a compensation it still owes is dead-lettered for
// an operator). So every such order still ends CONFIRMED, CANCELLED or FAILED, with stock and
// money reconciled.

#include <memory>
#include <string>
#include <vector>

#include "order_pipeline/event_handlers.hpp"
#include "order_pipeline/step.hpp"

namespace order_pipeline {

class pipeline {
 public:
  // The built-in saga: validate, reserve, pay, confirm.
  pipeline();
  ~pipeline();
  pipeline(pipeline&&) noexcept;
  pipeline& operator=(pipeline&&) noexcept;

  // The step names, in saga order.
  std::vector<std::string> step_names() const;

  // Inserts a shop's step after or before the named one. std::invalid_argument when that step
  // is unknown or the new step's name is taken; the step's other rules are checked by run().
  pipeline& insert_after(const std::string& existing, step added);
  pipeline& insert_before(const std::string& existing, step added);
  // Removes a step (a built-in one included); std::invalid_argument when it is unknown.
  pipeline& remove(const std::string& name);

  // Runs `handler` for the outcomes it names (see event_handlers.hpp). Its name is checked
  // by run().
  pipeline& add_handler(event_handler handler);

  // Reads the command line as order-pipeline does (--config PATH, --check-config PATH,
  // --help-config), then serves until SIGTERM or SIGINT. Returns the process's exit status:
  // 0, 64 for a bad command line, 78 for a bad configuration or step list.
  int run(int argc, char** argv);

 private:
  struct declared;  // one step: built in (by name) or the shop's own
  std::vector<std::unique_ptr<declared>> steps_;
  std::vector<event_handler> handlers_;
};

}  // namespace order_pipeline
