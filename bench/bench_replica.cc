// Memory and load time of the local engine at scale (not a timed test).
//
// Creates N entries (default 1,000,000) through Replica::ApplyLocal in
// batches of 10,000 synthetic observations (no real files), then, in a fresh
// process so the first phase's heap does not blur the figure, reopens the
// replica and prints the load time, the resident memory per entry, and the
// latency of ApplyLocal for one changed file.
//
//   bench_replica [N] [STATE_DIR]      (STATE_DIR: a new temp dir if omitted)
//
// Target: under 200 bytes of resident memory per entry in steady state.
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "agent/store/replica.h"

namespace {

using gossync::store::LocalStat;
using gossync::store::Observation;
using gossync::store::Replica;
using Clock = std::chrono::steady_clock;

constexpr int kBatch = 10'000;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

uint64_t WallMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// VmRSS of this process, in bytes.
uint64_t RssBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

// A plausible path: 100 top directories, 100 below each, files below those.
std::string PathOf(uint64_t i) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "warehouse-%02llu/batch-%04llu/inventory-%08llu.csv",
                static_cast<unsigned long long>(i % 100),
                static_cast<unsigned long long>((i / 100) % 100),
                static_cast<unsigned long long>(i));
  return buf;
}

Observation FileObservation(uint64_t i, uint64_t version) {
  Observation o;
  o.path = PathOf(i);
  LocalStat s;
  s.kind = gossync::core::EntryKind::kFile;
  s.mode = 0644;
  s.size = 1000 + i % 5000;
  s.mtime_ns = 1'700'000'000'000'000'000 + static_cast<int64_t>(i * 1000 + version);
  s.ino = 1'000'000 + i;
  s.dev = 0xfd01;
  o.stat = s;
  o.hash = gossync::core::Sha256(o.path + "#" + std::to_string(version));
  return o;
}

std::unique_ptr<Replica> OpenOrDie(const std::string& dir) {
  Replica::Options o;
  o.node_name = "bench";
  o.tree_depth = gossync::core::kDefaultTreeDepth;
  o.clock = WallMs;
  // BENCH_CACHE_KIB: SQLite page cache, to see what it buys.
  if (const char* kib = std::getenv("BENCH_CACHE_KIB")) o.index.cache_kib = std::atoi(kib);
  auto r = Replica::Open(dir, std::move(o));
  if (!r.ok()) {
    std::fprintf(stderr, "open: %s\n", r.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(*r);
}

int Create(const std::string& dir, uint64_t n) {
  auto replica = OpenOrDie(dir);
  auto start = Clock::now();
  for (uint64_t i = 0; i < n; i += kBatch) {
    std::vector<Observation> batch;
    for (uint64_t j = i; j < std::min(n, i + kBatch); ++j) batch.push_back(FileObservation(j, 0));
    auto r = replica->ApplyLocal(std::move(batch));
    if (!r.ok()) {
      std::fprintf(stderr, "apply: %s\n", r.status().ToString().c_str());
      return 1;
    }
  }
  double secs = Seconds(start);
  std::printf("create: %llu entries in %.1f s (%.0f entries/s, batches of %d)\n",
              static_cast<unsigned long long>(n), secs, n / secs, kBatch);
  return 0;
}

int Load(const std::string& dir) {
  uint64_t rss_before = RssBytes();
  auto start = Clock::now();
  auto replica = OpenOrDie(dir);
  double load = Seconds(start);
  uint64_t n = replica->counts().total();
  uint64_t rss_loaded = RssBytes();
  std::printf(
      "load: %llu entries in %.2f s (index open with quick_check %.2f s, tree fill %.2f s)\n",
      static_cast<unsigned long long>(n), load, load - replica->load_ms() / 1000.0,
      replica->load_ms() / 1000.0);

  // One changed file at a time, as the watcher delivers them.
  std::vector<double> ms;
  for (int k = 0; k < 200; ++k) {
    uint64_t i = (static_cast<uint64_t>(k) * 7919) % n;
    auto t = Clock::now();
    auto r = replica->ApplyLocal({FileObservation(i, 1 + k)});
    ms.push_back(Seconds(t) * 1000);
    if (!r.ok() || r->changed.size() != 1) {
      std::fprintf(stderr, "apply one: %s\n", r.status().ToString().c_str());
      return 1;
    }
  }
  std::sort(ms.begin(), ms.end());
  std::printf("ApplyLocal of one changed file: median %.3f ms, p99 %.3f ms, max %.3f ms\n",
              ms[ms.size() / 2], ms[ms.size() * 99 / 100], ms.back());
  // Reads that repair does: a few leaves.
  for (uint32_t b = 0; b < 1000; ++b) {
    if (!replica->GetBucket(b * 61).ok()) return 1;
  }
  uint64_t rss_steady = RssBytes();
  auto per = [&](uint64_t rss) { return static_cast<double>(rss - rss_before) / n; };
  std::printf("rss: %.1f MiB before open, %.1f MiB after load, %.1f MiB steady\n",
              rss_before / 1048576.0, rss_loaded / 1048576.0, rss_steady / 1048576.0);
  std::printf(
      "resident memory per entry: %.1f B after load, %.1f B steady (target < 200 B); "
      "tree reports %.1f B/entry\n",
      per(rss_loaded), per(rss_steady), static_cast<double>(replica->tree().MemoryBytes()) / n);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::strcmp(argv[1], "--load") == 0) return Load(argv[2]);
  uint64_t n = argc >= 2 ? std::strtoull(argv[1], nullptr, 10) : 1'000'000;
  std::string dir;
  bool temp = argc < 3;
  if (temp) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "bench-replica-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) return 1;
    dir = tmpl;
  } else {
    dir = argv[2];
  }
  std::printf("bench_replica %llu %s  (rerun: build/bench/bench_replica %llu)\n",
              static_cast<unsigned long long>(n), dir.c_str(), static_cast<unsigned long long>(n));
  int rc = Create(dir, n);
  if (rc == 0) {
    std::error_code ec;
    std::printf("index.db: %.1f MiB\n",
                std::filesystem::file_size(dir + "/index.db", ec) / 1048576.0);
    std::fflush(stdout);
    // A fresh process, so the load is measured from a clean heap.
    std::error_code exe_ec;
    std::string self = std::filesystem::read_symlink("/proc/self/exe", exe_ec).string();
    std::string cmd = "'" + self + "' --load '" + dir + "'";
    rc = std::system(cmd.c_str()) == 0 ? 0 : 1;
  }
  if (temp) std::filesystem::remove_all(dir);
  return rc;
}
