// What the hostile-peer tests (issue 6) check around a real agent: that
// nothing outside data_dir changed (a snapshot of marker files and
// directories), the agent's memory and CPU from /proc, and a small cluster
// with a target agent, a well-behaved peer and a hostile peer's credentials.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/testutil/cluster.h"
#include "tests/testutil/test_peer.h"

namespace gossync::testutil {

// Type, mode, size, mtime, inode and (for small files) content of every
// path under some roots, minus excluded subtrees; single paths too (which
// may be absent). Two snapshots compare equal if nothing changed.
class FsSnapshot {
 public:
  // `roots` are walked recursively (not following symlinks); a path in
  // `exclude` and everything below it is skipped; `singles` are looked at
  // alone (lstat), absent or not.
  static FsSnapshot Take(const std::vector<std::string>& roots,
                         const std::vector<std::string>& exclude,
                         const std::vector<std::string>& singles);
  // "" if equal, else one line per path that appeared, vanished or changed.
  std::string DiffTo(const FsSnapshot& after) const;
  size_t size() const { return items_.size(); }

 private:
  std::map<std::string, std::string> items_;
};

// Whether this build runs under AddressSanitizer: its quarantine keeps freed
// memory and its shadow costs more, so VmRSS bounds mean nothing there.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
// The agent's memory may grow by at most 64 MiB over `before_kib` (issue 6);
// not checked in a sanitizer build (the figures are still printed).
void CheckMemory(const std::string& what, uint64_t before_kib, uint64_t peak_kib);

// From /proc/PID/status and /proc/PID/stat. 0 if the process is gone.
uint64_t ProcRssKiB(pid_t pid);
// utime + stime in milliseconds.
uint64_t ProcCpuMs(pid_t pid);
// True if the process exists and is not a zombie.
bool ProcAlive(pid_t pid);

// A target agent ("anode"), a well-behaved peer ("bnode") that gossips and
// repairs with it, credentials for a hostile peer ("mallory", issued by the
// same CA), and marker files around the target's data_dir:
//   TMP/outside/{marker,sub/marker}   a directory a symlink may point at
//   TMP/anode/marker                  data_dir's parent (where "../x" lands)
//   TMP/marker                        the test's root
// plus /x, /etc/x, /tmp/x and /etc/passwd looked at alone.
struct HostileCluster {
  TempDir tmp;
  ClusterSecrets secrets{tmp / "secrets"};
  std::unique_ptr<Agent> target, good;
  PeerCredentials mallory;
  std::string outside;  // TMP/outside

  // `repair_toml` goes into both agents' [repair].
  explicit HostileCluster(const std::string& repair_toml = "");
  // Starts both agents and waits until they see each other alive; then Rebase.
  void Start();
  // Takes the outside snapshot and the expected data_dir tree afresh (after
  // a test changed either on purpose).
  void Rebase();

  // The file-system view the checks compare against; taken by Start and
  // again by every ExpectIntact.
  FsSnapshot Outside() const;
  // TLS as mallory, HELLO exchanged (the agent's HELLO is received, ours
  // sent). REQUIREs success.
  std::unique_ptr<TestPeer> Connect();
  // counters.repair.aborts.<name> of the target (0 if absent).
  uint64_t Aborts(const std::string& name) const;
  // Waits until counters.repair.aborts.<name> reaches `at_least`.
  bool WaitAborts(const std::string& name, uint64_t at_least) const;

  // The checks after every hostile act (Catch CHECKs and REQUIREs):
  // the target runs and answers status; nothing outside data_dir changed;
  // data_dir holds exactly `expected_tree` (TreeFingerprint; not compared
  // when empty) and no temp file; a change made on the good peer reaches the
  // target.
  void ExpectIntact(const std::string& expected_tree);
  // The target's data_dir as it should be now (after ExpectIntact or setup).
  std::string tree() const { return tree_; }
  void SetTree() { tree_ = TreeFingerprint(target->data_dir()); }
  // The last `n` bytes of the target's log.
  std::string LogTail(size_t n = 4000) const;

 private:
  FsSnapshot outside_before_;
  std::string tree_;
  int syncs_ = 0;
};

}  // namespace gossync::testutil
