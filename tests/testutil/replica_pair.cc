#include "tests/testutil/replica_pair.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/core/hash.h"
#include "agent/store/scanner.h"
#include "agent/wire/repair_codec.h"

namespace gossync::testutil {
namespace {

namespace fs = std::filesystem;

template <typename T>
T Must(Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, r.status().ToString().c_str());
    std::abort();
  }
  return std::move(r).value();
}

void MustSys(int rc, const std::string& what) {
  if (rc != 0) {
    std::perror(what.c_str());
    std::abort();
  }
}

bool IsTemp(const std::string& name) {
  return name.size() >= store::kAgentTempSuffix.size() &&
         name.compare(name.size() - store::kAgentTempSuffix.size(), std::string::npos,
                      store::kAgentTempSuffix) == 0;
}

std::vector<std::string> TempFilesUnder(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (IsTemp(it->path().filename().string())) out.push_back(it->path().string());
  }
  return out;
}

}  // namespace

// ---- ReplicaNode ----

ReplicaNode::ReplicaNode(std::string name, std::vector<std::string> ignore, int depth)
    : name_(std::move(name)), depth_(depth) {
  std::string tmpl = (fs::temp_directory_path() / "gossync-pair-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
  base_ = tmpl;
  data_ = base_ + "/data";
  state_ = base_ + "/state";
  MustSys(::mkdir(data_.c_str(), 0755), "mkdir data");
  MustSys(::mkdir(state_.c_str(), 0700), "mkdir state");
  root_ = std::make_unique<store::RootDir>(Must(store::RootDir::Open(data_), "RootDir::Open"));
  temp_ = std::make_unique<store::TempArea>(
      Must(store::TempArea::Open(*root_, state_), "TempArea::Open"));
  ignore_ = Must(store::IgnoreMatcher::Create(ignore), "IgnoreMatcher::Create");
  Reopen();
}

ReplicaNode::~ReplicaNode() {
  replica_.reset();
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(
           base_, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) ::chmod(it->path().c_str(), 0700);
  }
  fs::remove_all(base_, ec);
}

void ReplicaNode::Reopen() {
  replica_.reset();
  store::Replica::Options o;
  o.node_name = name_;
  o.tree_depth = depth_;
  o.clock = [this] { return clock_ms += 1000; };
  replica_ = Must(store::Replica::Open(state_, std::move(o)), "Replica::Open");
}

store::RepairContext ReplicaNode::context() {
  return store::RepairContext{replica_.get(), root_.get(), temp_.get(), &ignore_, &open_temps_};
}

void ReplicaNode::Write(const std::string& rel, const std::string& content, mode_t mode) {
  const std::string path = Abs(rel);
  const std::string tmp = path + ".test-new";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror(tmp.c_str());
    std::abort();
  }
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n <= 0) std::abort();
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  MustSys(::chmod(tmp.c_str(), mode), "chmod " + tmp);
  MustSys(::rename(tmp.c_str(), path.c_str()), "rename " + tmp);
}

void ReplicaNode::Mkdir(const std::string& rel, mode_t mode) {
  MustSys(::mkdir(Abs(rel).c_str(), 0700), "mkdir " + rel);
  MustSys(::chmod(Abs(rel).c_str(), mode), "chmod " + rel);
}

void ReplicaNode::Symlink(const std::string& target, const std::string& rel) {
  MustSys(::symlink(target.c_str(), Abs(rel).c_str()), "symlink " + rel);
}

void ReplicaNode::Chmod(const std::string& rel, mode_t mode) {
  MustSys(::chmod(Abs(rel).c_str(), mode), "chmod " + rel);
}

void ReplicaNode::Remove(const std::string& rel) {
  std::error_code ec;
  fs::remove_all(Abs(rel), ec);
  if (ec) std::abort();
}

std::string ReplicaNode::Read(const std::string& rel) const {
  std::ifstream f(Abs(rel), std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool ReplicaNode::Exists(const std::string& rel) const {
  struct stat st;
  return ::lstat(Abs(rel).c_str(), &st) == 0;
}

store::Changes ReplicaNode::Scan() {
  store::WalkResult walk = Must(store::Walk(*root_, ignore_), "Walk");
  if (!walk.errors.empty()) std::abort();
  store::ScanDiff diff = Must(replica_->FullScanDiff(walk.entries), "FullScanDiff");
  std::vector<store::Observation> obs;
  for (size_t i : diff.to_hash) {
    store::Observation o = walk.entries[i];
    if (o.stat->kind == core::EntryKind::kFile) {
      o.hash = Must(store::HashFile(*root_, o.path, *o.stat), "HashFile");
    }
    obs.push_back(std::move(o));
  }
  for (std::string& p : diff.missing) obs.push_back(store::Observation{std::move(p), {}, {}});
  store::Changes c = Must(replica_->ApplyLocal(std::move(obs)), "ApplyLocal");
  if (!c.rejected.empty()) std::abort();
  return c;
}

std::vector<std::string> ReplicaNode::TempFilesInDataDir() const { return TempFilesUnder(data_); }

std::vector<std::string> ReplicaNode::TempFilesInTempArea() const {
  return TempFilesUnder(temp_->path());
}

// ---- Fingerprint ----

std::map<std::string, std::string> Fingerprint(const std::string& data_dir) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(data_dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string path = it->path().string();
    const std::string rel = path.substr(data_dir.size() + 1);
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) std::abort();
    char mode[16];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    std::string v;
    if (S_ISDIR(st.st_mode)) {
      v = std::string("dir ") + mode;
    } else if (S_ISLNK(st.st_mode)) {
      v = "symlink -> " + fs::read_symlink(it->path(), ec).string();
    } else {
      std::ifstream f(path, std::ios::binary);
      std::stringstream ss;
      ss << f.rdbuf();
      v = std::string("file ") + mode + " mtime " +
          std::to_string(int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec) +
          " size " + std::to_string(st.st_size) + " " +
          core::ToHex(core::Sha256(ss.str())).substr(0, 16);
    }
    out[rel] = v;
  }
  return out;
}

std::string FingerprintDiff(const std::map<std::string, std::string>& a,
                            const std::map<std::string, std::string>& b) {
  std::string out;
  auto ia = a.begin();
  auto ib = b.begin();
  while (ia != a.end() || ib != b.end()) {
    if (ib == b.end() || (ia != a.end() && ia->first < ib->first)) {
      out += "\n  " + ia->first + ": " + ia->second + " | absent";
      ++ia;
    } else if (ia == a.end() || ib->first < ia->first) {
      out += "\n  " + ib->first + ": absent | " + ib->second;
      ++ib;
    } else {
      if (ia->second != ib->second)
        out += "\n  " + ia->first + ": " + ia->second + " | " + ib->second;
      ++ia;
      ++ib;
    }
  }
  return out;
}

// ---- SessionPair ----

SessionPair::Side::Side(ReplicaNode* n, core::RepairOptions o)
    : node(n),
      view(&n->replica()),
      session(std::make_unique<core::RepairSession>(std::move(o), &view)),
      exec(n->context()) {}

void SessionPair::Side::Handle(core::RepairSession::Actions actions, bool defer_commits) {
  for (core::RepairAction& a :
       exec.Drive(*session, std::move(actions), *now, defer_commits)) {
    if (auto* s = std::get_if<core::repair::Send>(&a)) {
      std::vector<uint8_t> frame = wire::EncodeMessageFrame(s->message);
      outbox.insert(outbox.end(), frame.begin(), frame.end());
    } else if (auto* f = std::get_if<core::repair::Finished>(&a)) {
      finished = std::move(*f);
    } else if (auto* x = std::get_if<core::repair::Abort>(&a)) {
      aborted = std::move(*x);
    } else {
      std::abort();  // Drive returns only network actions
    }
  }
}

void SessionPair::Side::Receive(std::span<const uint8_t> bytes) {
  if (ended() || cut) return;
  std::vector<std::vector<uint8_t>> frames;
  const Status fed = decoder.Feed(bytes, &frames);
  for (size_t i = 0; i < frames.size(); ++i) {
    const std::vector<uint8_t>& frame = frames[i];
    if (ended()) return;
    const bool defer = batch_commits && i + 1 < frames.size();
    Result<core::RepairMessage> m = wire::DecodeMessage(frame, decoder.max_frame_bytes());
    if (!m.ok()) {
      Handle(session->OnProtocolError(*now, wire::DecodeErrorCounter(m.status()),
                                      m.status().message()));
      return;
    }
    if (on_frame && on_frame(*m)) {
      cut = true;
      return;
    }
    Handle(session->OnMessage(*now, std::move(m).value()), defer);
  }
  // Commits still deferred (the last frame was cut or malformed) go now.
  if (!ended()) Handle({});
  if (!fed.ok() && !ended()) Handle(session->OnProtocolError(*now, "malformed", fed.message()));
}

void SessionPair::Side::PeerClosed() {
  if (ended()) return;
  const Status cut_short = decoder.Finish();
  if (!cut_short.ok()) {
    Handle(session->OnProtocolError(*now, "truncated", cut_short.message()));
  } else {
    Handle(session->OnPeerClosed(*now));
  }
}

SessionPair::SessionPair(ReplicaNode& a, ReplicaNode& b, PairOptions options) {
  auto make = [&](ReplicaNode& self, ReplicaNode& peer, bool initiator) {
    core::RepairOptions o;
    o.initiator = initiator;
    o.local_name = self.name();
    o.peer_name = peer.name();
    o.hlc = self.replica().hlc();
    o.block_size = options.block_size;
    o.max_in_flight_blocks = options.max_in_flight_blocks;
    o.dry_run = initiator && options.dry_run;
    if (initiator && options.root_hint) o.peer_root = peer.replica().root();
    const auto& tune = initiator ? options.tune_a : options.tune_b;
    if (tune) tune(o);
    return std::make_unique<Side>(&self, std::move(o));
  };
  a_ = make(a, b, true);
  b_ = make(b, a, false);
  a_->batch_commits = b_->batch_commits = options.batch_commits;
  a_->now = b_->now = &now_;
}

int SessionPair::Run(int max_flights) {
  a_->Handle(a_->session->Start(now_));
  b_->Handle(b_->session->Start(now_));
  int flights = 0;
  while (flights < max_flights && !(a_->ended() && b_->ended())) {
    std::vector<uint8_t> ab = std::move(a_->outbox), ba = std::move(b_->outbox);
    a_->outbox.clear();
    b_->outbox.clear();
    if (ab.empty() && ba.empty()) {
      // Nothing in flight: a side that ended has closed the connection.
      if (a_->ended()) {
        b_->PeerClosed();
      } else if (b_->ended()) {
        a_->PeerClosed();
      }
      if (!(a_->ended() && b_->ended())) stalled_ = true;
      break;
    }
    ++flights;
    ++now_;
    b_->Receive(ab);
    a_->Receive(ba);
    if (a_->cut || b_->cut) {
      a_->PeerClosed();
      b_->PeerClosed();
      break;
    }
    if (a_->ended() && a_->outbox.empty()) b_->PeerClosed();
    if (b_->ended() && b_->outbox.empty()) a_->PeerClosed();
  }
  return flights;
}

}  // namespace gossync::testutil
