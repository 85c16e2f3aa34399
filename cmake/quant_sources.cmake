# Packed quantized tensors (include/qgnn/quant/packed_tensor.h), their tests and benchmark.
# Paths relative to the repository root; appended to the lists CMakeLists.txt declares.
list(APPEND QGNN_QUANT_SOURCES
  src/quant/packed_tensor.cpp
  src/quant/packed_spmm.cpp
  src/quant/packed_linear.cpp
  src/quant/cpu/pack_kernel.cpp
)
list(APPEND QGNN_QUANT_TESTS
  tests/quant/test_packed_tensor.cpp
  tests/quant/test_packed_ops.cpp
)
list(APPEND QGNN_QUANT_BENCH
  bench/quant/bench_packed.cpp
)
