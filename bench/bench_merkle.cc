// bench_merkle: the Merkle tree at scale (DESIGN.md section 2).
//
// Builds a tree of N entries (default 1,000,000, depth 4), then times
// incremental updates, each one Replace + Flush: what the agent does when
// one file changes. Prints the median and tail per update, and the memory
// the tree takes per entry, both as the tree counts it (MemoryBytes) and as
// the kernel sees it (VmRSS delta from /proc/self/status).
//
//   bench_merkle [entries] [updates] [depth]
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "agent/core/merkle_tree.h"

namespace {

using gossync::core::Hash256;
using gossync::core::MerkleTree;
using gossync::core::Sha256;

// Resident set size in bytes, from /proc/self/status (VmRSS, in kB).
size_t RssBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return 0;
}

std::string PathOf(uint64_t i) {
  return "data/d" + std::to_string(i / 1000) + "/file-" + std::to_string(i) + ".bin";
}

// An entry digest stand-in: distinct per (path, version), as Entry::Digest is.
Hash256 DigestOf(const std::string& path, uint32_t version) {
  return Sha256(path + "#" + std::to_string(version));
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t entries = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1'000'000;
  const uint64_t updates = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 200'000;
  const int depth = argc > 3 ? std::atoi(argv[3]) : gossync::core::kDefaultTreeDepth;
  if (entries == 0 || updates == 0 || depth < gossync::core::kMinTreeDepth ||
      depth > gossync::core::kMaxTreeDepth) {
    std::fprintf(stderr, "usage: %s [entries>0] [updates>0] [depth 1..6]\n", argv[0]);
    return 2;
  }
  using Clock = std::chrono::steady_clock;
  std::printf("bench_merkle: %" PRIu64 " entries, depth %d, %" PRIu64 " updates\n", entries, depth,
              updates);

  // Everything the benchmark itself needs is allocated before the baseline.
  std::vector<uint32_t> version(entries, 1);
  std::vector<double> samples_ns;
  samples_ns.reserve(updates);
  std::mt19937_64 rng(42);
  // libcrypto sets up its provider on the first digest; that is not the tree.
  (void)Sha256(std::string_view("warm-up"));

  const size_t rss_before = RssBytes();
  MerkleTree tree(depth);
  const auto build_start = Clock::now();
  for (uint64_t i = 0; i < entries; ++i) {
    std::string path = PathOf(i);
    tree.Insert(tree.BucketOf(path), DigestOf(path, 1));
  }
  const Hash256 root = tree.Root();
  const double build_s = std::chrono::duration<double>(Clock::now() - build_start).count();
  const size_t rss_after = RssBytes();
  const size_t mem = tree.MemoryBytes();

  // Incremental updates: the digests are computed outside the timed region;
  // the timer covers Replace + Flush only.
  for (uint64_t u = 0; u < updates; ++u) {
    const uint64_t k = rng() % entries;
    const std::string path = PathOf(k);
    const uint32_t bucket = tree.BucketOf(path);
    const Hash256 old_digest = DigestOf(path, version[k]);
    const Hash256 new_digest = DigestOf(path, ++version[k]);
    const auto t0 = Clock::now();
    tree.Replace(bucket, old_digest, new_digest);
    tree.Flush();
    const auto t1 = Clock::now();
    samples_ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
  }
  double sum = 0;
  for (double s : samples_ns) sum += s;

  std::printf("  build:      %.2f s (%.0f ns per insert, root %s...)\n", build_s,
              build_s * 1e9 / static_cast<double>(entries),
              gossync::core::ToHex(root).substr(0, 16).c_str());
  std::printf("  leaves:     %zu non-empty, %.1f entries per leaf\n", tree.leaf_count(),
              static_cast<double>(entries) / static_cast<double>(tree.leaf_count()));
  std::printf("  update:     median %.2f us, p99 %.2f us, mean %.2f us (Replace + Flush)\n",
              Percentile(samples_ns, 0.5) / 1000, Percentile(samples_ns, 0.99) / 1000,
              sum / static_cast<double>(samples_ns.size()) / 1000);
  std::printf("  memory:     MemoryBytes %.1f MB = %.1f bytes per entry\n",
              static_cast<double>(mem) / 1e6,
              static_cast<double>(mem) / static_cast<double>(entries));
  std::printf("  rss delta:  %.1f MB = %.1f bytes per entry (VmRSS before and after the build)\n",
              static_cast<double>(rss_after - rss_before) / 1e6,
              static_cast<double>(rss_after - rss_before) / static_cast<double>(entries));
  std::printf("  rerun:      %s %" PRIu64 " %" PRIu64 " %d\n", argv[0], entries, updates, depth);
  return 0;
}
