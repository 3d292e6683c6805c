# bench_replica: load time and resident memory of the Replica at 1,000,000
# entries, and the latency of one local change. Included by bench/CMakeLists.txt.
#   cmake --build build --target bench_replica && ./build/bench/bench_replica
add_executable(bench_replica ${CMAKE_CURRENT_LIST_DIR}/bench_replica.cc)
target_link_libraries(bench_replica PRIVATE gossync_store)
target_compile_features(bench_replica PRIVATE cxx_std_20)
