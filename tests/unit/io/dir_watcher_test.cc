#include "agent/io/dir_watcher.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "agent/io/clock.h"
#include "tests/unit/io/temp_dir.h"
#include "tests/unit/io/test_loop.h"

namespace gossync::io {
namespace {

namespace fs = std::filesystem;
using testing::kDeadlineMs;
using testing::NewLoop;
using testing::TempDir;

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

// Collects what a watcher reports.
struct Recorder {
  std::vector<std::vector<std::string>> batches;
  std::set<std::string> seen;  // every path reported since the last Reset
  int overflows = 0;
  int limits = 0;
  int errors = 0;
  Status last_error;

  DirWatcherCallbacks Callbacks() {
    return DirWatcherCallbacks{
        .on_changes =
            [this](std::vector<std::string> paths) {
              CHECK(std::is_sorted(paths.begin(), paths.end()));
              CHECK(std::adjacent_find(paths.begin(), paths.end()) == paths.end());
              seen.insert(paths.begin(), paths.end());
              batches.push_back(std::move(paths));
            },
        .on_overflow = [this] { ++overflows; },
        .on_watch_limit = [this] { ++limits; },
        .on_error =
            [this](const Status& s) {
              ++errors;
              last_error = s;
            },
    };
  }
  void Reset() {
    batches.clear();
    seen.clear();
  }
  bool Saw(std::initializer_list<std::string> paths) const {
    return std::all_of(paths.begin(), paths.end(),
                       [&](const std::string& p) { return seen.count(p) > 0; });
  }
};

std::unique_ptr<DirWatcher> Watch(Loop& loop, const TempDir& dir, Recorder& rec,
                                  DirWatcherOptions options = {}) {
  auto w = DirWatcher::Start(loop.get(), dir.path().string(), std::move(options), rec.Callbacks());
  REQUIRE(w.ok());
  return std::move(w).value();
}

// Runs the loop until `rec` saw all of `paths`.
void Expect(Loop& loop, Recorder& rec, std::initializer_list<std::string> paths) {
  bool ok = loop.RunUntil([&] { return rec.Saw(paths); }, kDeadlineMs);
  if (!ok) {
    std::string got;
    for (const auto& p : rec.seen) got += p + " ";
    INFO("reported: " << got);
    REQUIRE(ok);
  }
}

// A marker file proves the watcher caught up: whatever it reports before the marker
// was reported in time, and whatever it has not reported by then it never will.
void Settle(Loop& loop, const TempDir& dir, Recorder& rec, const std::string& marker) {
  WriteFile(dir / marker, "m");
  Expect(loop, rec, {marker});
}

TEST_CASE("DirWatcher: reports created, modified, renamed and deleted files", "[io][dir_watcher]") {
  auto loop = NewLoop();
  TempDir dir;
  Recorder rec;
  auto w = Watch(*loop, dir, rec);
  CHECK(w->watch_count() == 1);

  WriteFile(dir / "a.txt", "one");
  Expect(*loop, rec, {"a.txt"});
  rec.Reset();
  WriteFile(dir / "a.txt", "two");
  Expect(*loop, rec, {"a.txt"});
  rec.Reset();
  fs::rename(dir / "a.txt", dir / "b.txt");
  Expect(*loop, rec, {"a.txt", "b.txt"});
  rec.Reset();
  REQUIRE(chmod((dir / "b.txt").c_str(), 0600) == 0);
  Expect(*loop, rec, {"b.txt"});
  rec.Reset();
  fs::create_symlink("b.txt", dir / "link");
  Expect(*loop, rec, {"link"});
  rec.Reset();
  fs::remove(dir / "b.txt");
  Expect(*loop, rec, {"b.txt"});
  CHECK(rec.overflows == 0);
  CHECK(rec.errors == 0);
}

TEST_CASE("DirWatcher: mkdir -p then a file in it reports every level, then watches it",
          "[io][dir_watcher]") {
  auto loop = NewLoop();
  TempDir dir;
  Recorder rec;
  auto w = Watch(*loop, dir, rec);
  // All of this happens before the watcher reads a single event, so the watches on
  // x/y and x/y/z can only be added after their contents exist.
  fs::create_directories(dir / "x/y/z");
  WriteFile(dir / "x/y/z/f", "deep");
  Expect(*loop, rec, {"x", "x/y", "x/y/z", "x/y/z/f"});
  CHECK(w->watch_count() == 4);
  rec.Reset();
  WriteFile(dir / "x/y/z/g", "later");
  Expect(*loop, rec, {"x/y/z/g"});
}

TEST_CASE("DirWatcher: a directory moved in from outside is reported with its contents",
          "[io][dir_watcher]") {
  auto loop = NewLoop();
  TempDir dir, outside;
  fs::create_directories(outside / "d/sub");
  WriteFile(outside / "d/f1", "1");
  WriteFile(outside / "d/sub/f2", "2");
  Recorder rec;
  auto w = Watch(*loop, dir, rec);
  fs::rename(outside / "d", dir / "d");
  Expect(*loop, rec, {"d", "d/f1", "d/sub", "d/sub/f2"});
  CHECK(w->watch_count() == 3);
  rec.Reset();
  WriteFile(dir / "d/sub/f3", "3");
  Expect(*loop, rec, {"d/sub/f3"});
}

TEST_CASE("DirWatcher: a directory moved out is reported and no longer watched",
          "[io][dir_watcher]") {
  auto loop = NewLoop();
  TempDir dir, outside;
  fs::create_directories(dir / "m/sub");
  Recorder rec;
  auto w = Watch(*loop, dir, rec);
  CHECK(w->watch_count() == 3);
  fs::rename(dir / "m", outside / "m");
  Expect(*loop, rec, {"m"});
  CHECK(w->watch_count() == 1);
  rec.Reset();
  WriteFile(outside / "m/sub/after", "x");
  Settle(*loop, dir, rec, "marker");
  CHECK(rec.seen == std::set<std::string>{"marker"});
}

TEST_CASE("DirWatcher: a directory renamed inside the tree is re-watched under its new name",
          "[io][dir_watcher]") {
  auto loop = NewLoop();
  TempDir dir;
  fs::create_directories(dir / "old/inner");
  WriteFile(dir / "old/inner/f", "x");
  Recorder rec;
  auto w = Watch(*loop, dir, rec);
  fs::rename(dir / "old", dir / "new");
  Expect(*loop, rec, {"old", "new", "new/inner", "new/inner/f"});
  CHECK(w->watch_count() == 3);
  rec.Reset();
  WriteFile(dir / "new/inner/g", "y");
  Expect(*loop, rec, {"new/inner/g"});
  CHECK(rec.seen.count("old/inner/g") == 0);
}

TEST_CASE("DirWatcher: deleting a directory tree drops its watches", "[io][dir_watcher]") {
  auto loop = NewLoop();
  TempDir dir;
  fs::create_directories(dir / "t/u/v");
  WriteFile(dir / "t/u/v/f", "x");
  Recorder rec;
  auto w = Watch(*loop, dir, rec);
  CHECK(w->watch_count() == 4);
  fs::remove_all(dir / "t");
  Expect(*loop, rec, {"t"});
  CHECK(testing::PollUntil(*loop, [&] { return w->watch_count() == 1; }));
}

TEST_CASE("DirWatcher: ignored paths are not reported and ignored directories not watched",
          "[io][dir_watcher]") {
  auto loop = NewLoop();
  TempDir dir;
  fs::create_directories(dir / "cache/deep");
  int ignore_calls = 0;
  DirWatcherOptions options;
  options.ignore = [&](std::string_view rel, bool is_dir) {
    ++ignore_calls;
    return (is_dir && rel == "cache") || rel.ends_with(".swp");
  };
  Recorder rec;
  auto w = Watch(*loop, dir, rec, options);
  CHECK(w->watch_count() == 1);
  CHECK(ignore_calls > 0);
  WriteFile(dir / "cache/deep/x", "x");
  WriteFile(dir / "cache/y", "y");
  WriteFile(dir / "doc.swp", "s");
  fs::create_directories(dir / "keep");
  WriteFile(dir / "keep/z.swp", "s");
  WriteFile(dir / "keep/z", "z");
  Expect(*loop, rec, {"keep", "keep/z"});
  Settle(*loop, dir, rec, "marker");
  CHECK(rec.seen == std::set<std::string>{"keep", "keep/z", "marker"});
  CHECK(w->watch_count() == 2);
}

TEST_CASE("DirWatcher: a single change arrives once the directory has been quiet for debounce",
          "[io][dir_watcher]") {
  auto loop = NewLoop();
  TempDir dir;
  Recorder rec;
  DirWatcherOptions options;
  options.debounce_ms = 50;
  auto w = Watch(*loop, dir, rec, options);
  const int64_t start = MonotonicMillis();
  WriteFile(dir / "one", "1");
  Expect(*loop, rec, {"one"});
  const int64_t latency = MonotonicMillis() - start;
  INFO("latency " << latency << " ms");
  CHECK(latency >= 50);   // debounced, not reported at the first event
  CHECK(latency < 1000);  // DESIGN.md wants 100 ms; loose for a loaded test machine
  CHECK(rec.batches.size() == 1);
}

TEST_CASE("DirWatcher: a burst of 1,000 writes arrives in few batches", "[io][dir_watcher]") {
  auto loop = NewLoop();
  TempDir dir;
  Recorder rec;
  auto w = Watch(*loop, dir, rec);
  // The burst runs on another thread while the loop reads events as they come.
  std::atomic<bool> written{false};
  std::thread writer([&] {
    std::vector<int> fds;
    for (int f = 0; f < 10; ++f) {
      fds.push_back(open((dir / ("f" + std::to_string(f))).c_str(),
                         O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    }
    for (int i = 0; i < 1000; ++i) {
      CHECK(write(fds[i % 10], "0123456789", 10) == 10);
    }
    for (int fd : fds) close(fd);
    written = true;
  });
  Expect(*loop, rec, {"f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9"});
  writer.join();
  // Let a trailing batch (events after the first flush) arrive, then count.
  Settle(*loop, dir, rec, "marker");
  CHECK(written);
  INFO("batches: " << rec.batches.size());
  CHECK(rec.batches.size() <= 5);
  CHECK(rec.overflows == 0);
}

TEST_CASE("DirWatcher: changes that never pause are still delivered every max_delay",
          "[io][dir_watcher][slow]") {
  auto loop = NewLoop();
  TempDir dir;
  Recorder rec;
  DirWatcherOptions options;
  options.debounce_ms = 50;
  options.max_delay_ms = 200;
  auto w = Watch(*loop, dir, rec, options);
  std::vector<uint64_t> batch_times;
  std::atomic<bool> stop{false};
  // A writer that never pauses for 50 ms: debouncing alone would never deliver. The
  // 2 ms pause paces the load; it does not synchronize anything.
  std::thread writer([&] {
    int fd = open((dir / "busy").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    while (!stop) {
      CHECK(write(fd, "x", 1) == 1);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    close(fd);
  });
  const uint64_t start = loop->now();
  size_t last = 0;
  loop->RunUntil(
      [&] {
        if (rec.batches.size() != last) {
          last = rec.batches.size();
          batch_times.push_back(loop->now() - start);
        }
        return loop->now() - start >= 1000;
      },
      1200);
  stop = true;
  writer.join();
  std::string times;
  for (uint64_t t : batch_times) times += std::to_string(t) + " ";
  INFO("batch times (ms): " << times);
  // About five batches in one second; generous bounds for a loaded machine.
  CHECK(batch_times.size() >= 3);
  CHECK(batch_times.size() <= 12);
  REQUIRE_FALSE(batch_times.empty());
  CHECK(batch_times.front() <= 200 + 150);
}

TEST_CASE("DirWatcher: an overflowing event queue asks for a rescan and keeps watching",
          "[io][dir_watcher]") {
  auto loop = NewLoop();
  TempDir dir;
  Recorder rec;
  auto w = Watch(*loop, dir, rec);
  // More events than fs.inotify.max_queued_events (16384 by default) while the loop is
  // not reading: the kernel drops the rest and queues IN_Q_OVERFLOW. Touching two files
  // in turn makes each event differ from the one before, so none is merged.
  int max_queued = 16384;
  std::ifstream("/proc/sys/fs/inotify/max_queued_events") >> max_queued;
  WriteFile(dir / "p", "p");
  WriteFile(dir / "q", "q");
  const std::string p = dir / "p", q = dir / "q";
  bool touched = true;
  for (int i = 0; i < max_queued + 100; ++i) {
    touched &= utimensat(AT_FDCWD, (i % 2 ? p : q).c_str(), nullptr, 0) == 0;
  }
  REQUIRE(touched);
  // Created while the queue is full: its IN_CREATE is lost, so only the re-walk after
  // the overflow can put a watch on it.
  fs::create_directories(dir / "lost");
  REQUIRE(loop->RunUntil([&] { return rec.overflows > 0; }, kDeadlineMs));
  CHECK(w->overflows() >= 1);
  CHECK(w->watch_count() == 2);
  WriteFile(dir / "lost/f", "x");
  fs::create_directories(dir / "after/overflow");
  WriteFile(dir / "after/overflow/f", "x");
  Expect(*loop, rec, {"lost/f", "after/overflow/f"});
}

TEST_CASE("DirWatcher: reaching max_watches calls on_watch_limit once", "[io][dir_watcher]") {
  auto loop = NewLoop();
  TempDir dir;
  for (const char* d : {"a", "b", "c", "d"}) fs::create_directories(dir / d);
  DirWatcherOptions options;
  options.max_watches = 3;
  Recorder rec;
  auto w = Watch(*loop, dir, rec, options);
  REQUIRE(loop->RunUntil([&] { return rec.limits == 1; }, kDeadlineMs));
  CHECK(w->watch_limit_reached());
  CHECK(w->watch_count() == 3);
  fs::create_directories(dir / "e/f");
  Expect(*loop, rec, {"e", "e/f"});
  Settle(*loop, dir, rec, "marker");
  CHECK(rec.limits == 1);
  CHECK(w->watch_count() == 3);
}

TEST_CASE("DirWatcher: removing the root reports an error and closes", "[io][dir_watcher]") {
  auto loop = NewLoop();
  TempDir parent;
  fs::create_directories(parent / "root/sub");
  Recorder rec;
  auto w = DirWatcher::Start(loop->get(), parent / "root", {}, rec.Callbacks());
  REQUIRE(w.ok());
  fs::remove_all(parent / "root");
  REQUIRE(loop->RunUntil([&] { return rec.errors == 1; }, kDeadlineMs));
  CHECK(rec.last_error.code() == Code::kNotFound);
  CHECK((*w)->state() != Handle::State::kOpen);
}

TEST_CASE("DirWatcher: a missing or non-directory root is an error", "[io][dir_watcher]") {
  auto loop = NewLoop();
  TempDir dir;
  Recorder rec;
  auto missing = DirWatcher::Start(loop->get(), dir / "nope", {}, rec.Callbacks());
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.status().message(), Catch::Contains("nope"));
  WriteFile(dir / "file", "x");
  auto file = DirWatcher::Start(loop->get(), dir / "file", {}, rec.Callbacks());
  REQUIRE_FALSE(file.ok());
  CHECK(file.status().code() == Code::kInvalidArgument);
}

TEST_CASE("DirWatcher: the change callback may destroy the watcher", "[io][dir_watcher][handle]") {
  auto loop = NewLoop();
  TempDir dir;
  std::unique_ptr<DirWatcher> w;
  int calls = 0;
  auto started = DirWatcher::Start(loop->get(), dir.path().string(), {},
                                   DirWatcherCallbacks{.on_changes = [&](std::vector<std::string>) {
                                     ++calls;
                                     w.reset();
                                   }});
  REQUIRE(started.ok());
  w = std::move(started).value();
  WriteFile(dir / "x", "1");
  REQUIRE(loop->RunUntil([&] { return w == nullptr; }, kDeadlineMs));
  WriteFile(dir / "y", "2");
  loop->RunUntil([] { return false; }, 100);
  CHECK(calls == 1);
}

}  // namespace
}  // namespace gossync::io
