// order-pipeline: the order processing server (see README.md): the pipeline's built-in saga,
// validate -> reserve -> pay -> confirm, with nothing added.

#include "order_pipeline/pipeline.hpp"

int main(int argc, char** argv) {
  return order_pipeline::pipeline().run(argc, argv);
}
