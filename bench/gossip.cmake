# bench_gossip_sim: the gossip simulator (tests/testutil/sim_cluster.h) at
# 1,000 and 10,000 nodes. Included from bench/CMakeLists.txt. Memory: about
# 100 bytes per (node, member) pair, so 10,000 nodes take ~8 GB.
add_executable(bench_gossip_sim ${CMAKE_CURRENT_LIST_DIR}/bench_gossip_sim.cc)
target_link_libraries(bench_gossip_sim PRIVATE gossync_core)
