# bench_scan: scan + hash throughput and rescan time of the store scanner
# (bench/bench_scan.cc). Included by bench/CMakeLists.txt.
add_executable(bench_scan ${CMAKE_CURRENT_LIST_DIR}/bench_scan.cc)
target_link_libraries(bench_scan PRIVATE gossync_store OpenSSL::Crypto Threads::Threads)
target_compile_features(bench_scan PRIVATE cxx_std_20)
