#include "agent/store/index.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "agent/core/merkle_tree.h"
#include "agent/core/path.h"

namespace gossync::store {
namespace {

// "gsyc": marks the file as a gossync index, so a stray SQLite file in
// state_dir is refused instead of being written into.
constexpr int kApplicationId = 0x67737963;

constexpr char kRecovery[] =
    "; to recover, stop gossyncd and move index.db (with index.db-wal and index.db-shm) "
    "aside: the node then rescans data_dir and rejoins the cluster as a new node";

// Schema migrations: kMigrations[v] takes a database from user_version v to
// v + 1. Append only; a released step is never edited. A later version adds
// a column with ALTER TABLE here, and the decoder gives it a default.
constexpr const char* kMigrations[] = {
    // 0 -> 1
    R"sql(
CREATE TABLE meta (
  key   TEXT PRIMARY KEY NOT NULL,
  value ANY NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE entries (
  path        TEXT PRIMARY KEY NOT NULL,
  kind        INTEGER NOT NULL CHECK (kind IN (0, 1, 2)),
  mode        INTEGER NOT NULL CHECK (mode BETWEEN 0 AND 4095),
  size        INTEGER NOT NULL,
  mtime_ns    INTEGER NOT NULL,
  hash        BLOB NOT NULL CHECK (length(hash) = 32),
  target      BLOB NOT NULL,
  vv          BLOB NOT NULL,
  hlc         INTEGER NOT NULL,
  origin      TEXT NOT NULL,
  deleted     INTEGER NOT NULL CHECK (deleted IN (0, 1)),
  bucket      INTEGER NOT NULL,
  digest      BLOB NOT NULL CHECK (length(digest) = 32),
  -- local change detection (LocalStat); NULL when not on the local disk
  st_size     INTEGER,
  st_mtime_ns INTEGER,
  st_mode     INTEGER,
  st_ino      INTEGER,
  st_dev      INTEGER
) STRICT, WITHOUT ROWID;

CREATE INDEX entries_by_bucket ON entries (bucket);
)sql",
    // 1 -> 2: the dot (core::Entry::dot). Rows indexed before have none
    // (0, 0), which keeps their digests: an entry without a dot encodes as
    // it always did.
    R"sql(
ALTER TABLE entries ADD COLUMN dot_node INTEGER NOT NULL DEFAULT 0;
ALTER TABLE entries ADD COLUMN dot_counter INTEGER NOT NULL DEFAULT 0;
)sql",
};
static_assert(std::size(kMigrations) == kIndexSchemaVersion);

// The entry columns, in the order DecodeRecord reads them.
constexpr char kEntryColumns[] =
    "path, kind, mode, size, mtime_ns, hash, target, vv, hlc, origin, deleted, bucket, digest, "
    "st_size, st_mtime_ns, st_mode, st_ino, st_dev, dot_node, dot_counter";

// SQLite stores signed 64-bit integers; unsigned values (node ids, inodes,
// counters) are stored by their bit pattern.
int64_t ToDb(uint64_t v) { return static_cast<int64_t>(v); }
uint64_t FromDb(int64_t v) { return static_cast<uint64_t>(v); }

// Maps a SQLite failure to a Status naming the file and what was being done.
Status SqlError(sqlite3* db, int rc, std::string_view what, const std::string& file) {
  std::string msg = file + ": " + std::string(what) + ": ";
  msg += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Corruption(msg + kRecovery);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Unavailable(msg + " (another process holds index.db)");
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
      return Status::InvalidArgument(msg);
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return Status::IoError(msg);
    default:
      return Status::Internal(msg);
  }
}

Status CorruptRow(const std::string& file, std::string_view path, std::string_view what) {
  return Status::Corruption(file + ": entry \"" + std::string(path) + "\": " + std::string(what) +
                            kRecovery);
}

// Runs SQL without results (pragmas, DDL, BEGIN/COMMIT).
Status Exec(sqlite3* db, const char* sql, const std::string& file) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqlError(db, rc, sql, file);
  return Status::Ok();
}

// One integer from a query such as "PRAGMA user_version".
Result<int64_t> QueryInt(sqlite3* db, const char* sql, std::string_view what,
                         const std::string& file) {
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, nullptr);
  if (rc != SQLITE_OK) return SqlError(db, rc, what, file);
  rc = sqlite3_step(st);
  int64_t v = 0;
  if (rc == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW) return SqlError(db, rc, what, file);
  return v;
}

Result<std::string> QueryText(sqlite3* db, const char* sql, std::string_view what,
                              const std::string& file) {
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, nullptr);
  if (rc != SQLITE_OK) return SqlError(db, rc, what, file);
  rc = sqlite3_step(st);
  std::string v;
  if (rc == SQLITE_ROW) {
    const unsigned char* t = sqlite3_column_text(st, 0);
    if (t) v = reinterpret_cast<const char*>(t);
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW) return SqlError(db, rc, what, file);
  return v;
}

// Resets a cached statement when it goes out of scope, so every return path
// leaves it ready (and releases its read snapshot).
class ScopedReset {
 public:
  explicit ScopedReset(sqlite3_stmt* st) : st_(st) {}
  ~ScopedReset() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }
  ScopedReset(const ScopedReset&) = delete;
  ScopedReset& operator=(const ScopedReset&) = delete;

 private:
  sqlite3_stmt* st_;
};

std::span<const uint8_t> ColumnBlob(sqlite3_stmt* st, int col) {
  const void* p = sqlite3_column_blob(st, col);
  int n = sqlite3_column_bytes(st, col);
  if (!p || n <= 0) return {};
  return {static_cast<const uint8_t*>(p), static_cast<size_t>(n)};
}

std::string_view ColumnText(sqlite3_stmt* st, int col) {
  const unsigned char* p = sqlite3_column_text(st, col);
  int n = sqlite3_column_bytes(st, col);
  if (!p || n <= 0) return {};
  return {reinterpret_cast<const char*>(p), static_cast<size_t>(n)};
}

bool ColumnHash(sqlite3_stmt* st, int col, core::Hash256* out) {
  std::span<const uint8_t> b = ColumnBlob(st, col);
  if (b.size() != out->size()) return false;
  std::memcpy(out->data(), b.data(), b.size());
  return true;
}

bool ValidKind(int64_t k) { return k >= 0 && k <= 2; }

// Reads the stat columns starting at `col` (size, mtime, mode, ino, dev).
std::optional<LocalStat> ColumnStat(sqlite3_stmt* st, int col, core::EntryKind kind,
                                    std::string_view target) {
  if (sqlite3_column_type(st, col) == SQLITE_NULL) return std::nullopt;
  LocalStat s;
  s.kind = kind;
  s.size = FromDb(sqlite3_column_int64(st, col));
  s.mtime_ns = sqlite3_column_int64(st, col + 1);
  s.mode = static_cast<uint32_t>(sqlite3_column_int64(st, col + 2));
  s.ino = FromDb(sqlite3_column_int64(st, col + 3));
  s.dev = FromDb(sqlite3_column_int64(st, col + 4));
  s.target = std::string(target);
  return s;
}

Status FsyncPath(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open " + path, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::FromErrno("fsync " + path, err);
  return Status::Ok();
}

Result<core::NodeId> RandomNodeId() {
  core::NodeId id = 0;
  while (id == 0) {
    ssize_t n = ::getrandom(&id, sizeof id, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof id)) return Status::FromErrno("getrandom", errno);
  }
  return id;
}

// SQL function gossync_bucket(path, depth): MerkleTree::BucketOf, so a depth
// change rewrites every row's bucket in one UPDATE.
void BucketSqlFunction(sqlite3_context* ctx, int /*argc*/, sqlite3_value** argv) {
  const unsigned char* p = sqlite3_value_text(argv[0]);
  int n = sqlite3_value_bytes(argv[0]);
  int depth = sqlite3_value_int(argv[1]);
  std::string_view path(p ? reinterpret_cast<const char*>(p) : "", p ? n : 0);
  sqlite3_result_int64(ctx, core::MerkleTree::BucketOf(path, depth));
}

Status Migrate(sqlite3* db, int from, const std::string& file) {
  GOSSYNC_RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE", file));
  Status s;
  for (int v = from; v < kIndexSchemaVersion && s.ok(); ++v) {
    s = Exec(db, kMigrations[v], file)
            .Prefixed("schema migration " + std::to_string(v) + " -> " + std::to_string(v + 1));
  }
  if (s.ok()) {
    std::string sql = "PRAGMA user_version = " + std::to_string(kIndexSchemaVersion);
    s = Exec(db, sql.c_str(), file);
  }
  if (s.ok()) s = Exec(db, "COMMIT", file);
  if (!s.ok()) (void)Exec(db, "ROLLBACK", file);
  return s;
}

// Builds a complete new index at `tmp` (rollback journal, synchronous=FULL,
// so the file alone holds everything once closed) for the caller to rename.
Status CreateIndexFile(const std::string& tmp, const IndexOptions& opt) {
  for (const char* suffix : {"", "-journal", "-wal", "-shm"}) {
    std::string p = tmp + suffix;
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) return Status::FromErrno("unlink " + p, errno);
  }
  Result<core::NodeId> id = RandomNodeId();
  if (!id.ok()) return id.status();
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      tmp.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Status s = SqlError(db, rc, "create", tmp);
    sqlite3_close_v2(db);
    return s;
  }
  Status s = Exec(db, "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL", tmp);
  if (s.ok()) {
    std::string sql = "PRAGMA application_id = " + std::to_string(kApplicationId);
    s = Exec(db, sql.c_str(), tmp);
  }
  if (s.ok()) s = Migrate(db, 0, tmp);
  if (s.ok()) {
    sqlite3_stmt* st = nullptr;
    rc = sqlite3_prepare_v2(db, "INSERT INTO meta (key, value) VALUES (?, ?)", -1, &st, nullptr);
    if (rc != SQLITE_OK) s = SqlError(db, rc, "prepare meta insert", tmp);
    auto put = [&](const char* key, auto value) {
      if (!s.ok()) return;
      sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
      if constexpr (std::is_same_v<decltype(value), std::string>) {
        sqlite3_bind_text(st, 2, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
      } else {
        sqlite3_bind_int64(st, 2, value);
      }
      rc = sqlite3_step(st);
      if (rc != SQLITE_DONE) s = SqlError(db, rc, "insert meta", tmp);
      sqlite3_reset(st);
    };
    put("node_name", opt.node_name);
    put("node_id", ToDb(*id));
    put("counter", int64_t{0});
    put("counter_reserved", int64_t{0});
    put("hlc", int64_t{0});
    put("tree_depth", int64_t{opt.tree_depth});
    sqlite3_finalize(st);
  }
  rc = sqlite3_close_v2(db);
  if (s.ok() && rc != SQLITE_OK) s = SqlError(nullptr, rc, "close", tmp);
  if (s.ok()) s = FsyncPath(tmp, false);
  return s;
}

}  // namespace

struct Index::Statements {
  sqlite3_stmt* get = nullptr;
  sqlite3_stmt* bucket = nullptr;
  sqlite3_stmt* all = nullptr;
  sqlite3_stmt* after = nullptr;
  sqlite3_stmt* under = nullptr;
  sqlite3_stmt* bucket_range = nullptr;
  sqlite3_stmt* bucket_keys = nullptr;
  sqlite3_stmt* stats = nullptr;
  sqlite3_stmt* digests = nullptr;
  sqlite3_stmt* counts = nullptr;
  sqlite3_stmt* put = nullptr;
  sqlite3_stmt* del = nullptr;
  sqlite3_stmt* set_meta = nullptr;
  sqlite3_stmt* begin = nullptr;
  sqlite3_stmt* commit = nullptr;

  ~Statements() {
    for (sqlite3_stmt* st : {get, bucket, all, after, under, bucket_range, bucket_keys, stats,
                             digests, counts, put, del, set_meta, begin, commit}) {
      sqlite3_finalize(st);
    }
  }
};

Index::Index(sqlite3* db, std::string db_path)
    : db_(db), db_path_(std::move(db_path)), stmts_(std::make_unique<Statements>()) {}

Index::~Index() {
  stmts_.reset();  // statements must be finalized before the connection closes
  sqlite3_close_v2(db_);
}

Result<std::unique_ptr<Index>> Index::Open(const std::string& state_dir, const IndexOptions& opt) {
  if (!core::IsValidNodeName(opt.node_name)) {
    return Status::InvalidArgument("invalid node name \"" + opt.node_name + "\"");
  }
  if (opt.tree_depth < core::kMinTreeDepth || opt.tree_depth > core::kMaxTreeDepth) {
    return Status::InvalidArgument("tree depth " + std::to_string(opt.tree_depth) + " is outside " +
                                   std::to_string(core::kMinTreeDepth) + ".." +
                                   std::to_string(core::kMaxTreeDepth));
  }
  struct stat sb;
  if (::stat(state_dir.c_str(), &sb) != 0)
    return Status::FromErrno("state_dir " + state_dir, errno);
  if (!S_ISDIR(sb.st_mode))
    return Status::IoError("state_dir " + state_dir + " is not a directory");

  std::string path = state_dir + "/" + kIndexFileName;
  if (::stat(path.c_str(), &sb) != 0) {
    if (errno != ENOENT) return Status::FromErrno("stat " + path, errno);
    std::string tmp = path + ".new";
    GOSSYNC_RETURN_IF_ERROR(CreateIndexFile(tmp, opt));
    // A WAL left by an index that was moved away without it would be replayed
    // into the new file by SQLite (nothing ties a WAL to its database) and
    // corrupt it. Without index.db it is an orphan: remove it.
    for (const char* suffix : {"-wal", "-shm"}) {
      std::string p = path + suffix;
      if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
        return Status::FromErrno("unlink stale " + p, errno);
      }
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      return Status::FromErrno("rename " + tmp + " to " + path, errno);
    }
    GOSSYNC_RETURN_IF_ERROR(FsyncPath(state_dir, true));
  } else if (!S_ISREG(sb.st_mode)) {
    return Status::Corruption(path + " is not a regular file" + kRecovery);
  } else if (sb.st_size == 0) {
    // SQLite would take an empty file for a new database and we would come
    // up as a fresh node without noticing; a real index is never empty.
    return Status::Corruption(path + " is empty (truncated?)" + kRecovery);
  }

  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<Index> index(new Index(db, path));  // closes db on every return
  if (rc != SQLITE_OK) return SqlError(db, rc, "open", path);
  sqlite3_extended_result_codes(db, 1);

  // Identify the file before changing anything in it.
  Result<int64_t> app_id = QueryInt(db, "PRAGMA application_id", "read header", path);
  if (!app_id.ok()) return app_id.status();
  if (*app_id != kApplicationId) {
    return Status::Corruption(path + " is not a gossync index (application_id " +
                              std::to_string(*app_id) + ")" + kRecovery);
  }
  Result<int64_t> version = QueryInt(db, "PRAGMA user_version", "read schema version", path);
  if (!version.ok()) return version.status();
  if (*version > kIndexSchemaVersion) {
    return Status::Corruption(path + " has schema version " + std::to_string(*version) +
                              ", newer than this gossyncd understands (" +
                              std::to_string(kIndexSchemaVersion) +
                              "): run the newer gossyncd, or move index.db aside to start over");
  }
  if (*version < 1) return Status::Corruption(path + " has no schema" + kRecovery);

  sqlite3_busy_timeout(db, opt.busy_timeout_ms);
  Result<std::string> mode = QueryText(db, "PRAGMA journal_mode = WAL", "enable WAL", path);
  if (!mode.ok()) return mode.status();
  if (*mode != "wal") return Status::IoError(path + ": cannot enable WAL mode (got " + *mode + ")");
  // synchronous=NORMAL in WAL mode: see the durability note in index.h.
  std::string pragmas =
      "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; "
      "PRAGMA cell_size_check = ON; PRAGMA journal_size_limit = 67108864; "
      "PRAGMA cache_size = -" +
      std::to_string(opt.cache_kib);
  GOSSYNC_RETURN_IF_ERROR(Exec(db, pragmas.c_str(), path));

  if (*version < kIndexSchemaVersion) {
    GOSSYNC_RETURN_IF_ERROR(Migrate(db, static_cast<int>(*version), path));
  }
  rc = sqlite3_create_function(db, "gossync_bucket", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr,
                               BucketSqlFunction, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqlError(db, rc, "register gossync_bucket", path);

  if (opt.check_on_open) {
    Result<std::string> check = QueryText(db, "PRAGMA quick_check(1)", "check", path);
    if (!check.ok()) return check.status();
    if (*check != "ok") {
      return Status::Corruption(path + " is damaged (quick_check: " + *check + ")" + kRecovery);
    }
  }
  GOSSYNC_RETURN_IF_ERROR(index->LoadMeta());
  if (index->meta_.node_name != opt.node_name) {
    return Status::InvalidArgument(
        path + " belongs to node \"" + index->meta_.node_name +
        "\" but the config names this node \"" + opt.node_name +
        "\": two configs point at one state_dir, or the node was renamed (to rename it, move "
        "index.db aside: the node rejoins as a new node)");
  }
  GOSSYNC_RETURN_IF_ERROR(index->Prepare());
  if (index->meta_.tree_depth != opt.tree_depth) {
    GOSSYNC_RETURN_IF_ERROR(index->Rebucket(opt.tree_depth));
  }
  return index;
}

Status Index::LoadMeta() {
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db_, "SELECT key, value FROM meta", -1, &st, nullptr);
  if (rc != SQLITE_OK) return SqlError(db_, rc, "read meta", db_path_);
  IndexMeta m;
  bool have_name = false, have_id = false, have_counter = false, have_hlc = false,
       have_depth = false;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    std::string_view key = ColumnText(st, 0);
    if (key == "node_name") {
      m.node_name = std::string(ColumnText(st, 1));
      have_name = true;
    } else if (key == "node_id") {
      m.node_id = FromDb(sqlite3_column_int64(st, 1));
      have_id = true;
    } else if (key == "counter") {
      m.counter = FromDb(sqlite3_column_int64(st, 1));
      have_counter = true;
    } else if (key == "hlc") {
      m.hlc = FromDb(sqlite3_column_int64(st, 1));
      have_hlc = true;
    } else if (key == "counter_reserved") {
      m.counter_reserved = FromDb(sqlite3_column_int64(st, 1));  // optional
    } else if (key == "tree_depth") {
      m.tree_depth = static_cast<int>(sqlite3_column_int64(st, 1));
      have_depth = true;
    } else if (key == "last_sync_ms") {
      m.last_sync_ms = FromDb(sqlite3_column_int64(st, 1));  // optional
    } else if (key == "sync_counter") {
      m.sync_counter = FromDb(sqlite3_column_int64(st, 1));  // optional
    }
    // Unknown keys are from a later minor version: ignored.
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return SqlError(db_, rc, "read meta", db_path_);
  if (!have_name || !have_id || !have_counter || !have_hlc || !have_depth || m.node_id == 0 ||
      !core::IsValidNodeName(m.node_name) || m.tree_depth < core::kMinTreeDepth ||
      m.tree_depth > core::kMaxTreeDepth) {
    return Status::Corruption(db_path_ + ": the meta table is incomplete or invalid" + kRecovery);
  }
  meta_ = std::move(m);
  return Status::Ok();
}

Status Index::Prepare() {
  auto prep = [&](sqlite3_stmt** st, const std::string& sql) -> Status {
    int rc = sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, st, nullptr);
    if (rc != SQLITE_OK) return SqlError(db_, rc, "prepare " + sql, db_path_);
    return Status::Ok();
  };
  std::string cols = kEntryColumns;
  Statements& s = *stmts_;
  GOSSYNC_RETURN_IF_ERROR(prep(&s.get, "SELECT " + cols + " FROM entries WHERE path = ?"));
  GOSSYNC_RETURN_IF_ERROR(
      prep(&s.bucket, "SELECT " + cols + " FROM entries WHERE bucket = ? ORDER BY path"));
  GOSSYNC_RETURN_IF_ERROR(prep(&s.all, "SELECT " + cols + " FROM entries ORDER BY path"));
  GOSSYNC_RETURN_IF_ERROR(
      prep(&s.after, "SELECT " + cols + " FROM entries WHERE path > ? ORDER BY path LIMIT ?"));
  // Everything below a directory: "dir/" < path < "dir0" ('0' follows '/').
  GOSSYNC_RETURN_IF_ERROR(prep(&s.under, "SELECT " + cols +
                                             " FROM entries WHERE path > ?1 || '/' AND "
                                             "path < ?1 || '0' ORDER BY path"));
  // Both use entries_by_bucket, whose keys end with the primary key (path).
  GOSSYNC_RETURN_IF_ERROR(prep(&s.bucket_range, "SELECT " + cols +
                                                    " FROM entries WHERE bucket >= ?1 AND "
                                                    "bucket < ?2 ORDER BY bucket, path"));
  GOSSYNC_RETURN_IF_ERROR(
      prep(&s.bucket_keys, "SELECT path, digest FROM entries WHERE bucket = ? ORDER BY path"));
  GOSSYNC_RETURN_IF_ERROR(prep(&s.stats,
                               "SELECT path, kind, mode, deleted, target, st_size, st_mtime_ns, "
                               "st_mode, st_ino, st_dev, digest FROM entries ORDER BY path"));
  GOSSYNC_RETURN_IF_ERROR(prep(&s.digests, "SELECT bucket, digest, kind, deleted FROM entries"));
  GOSSYNC_RETURN_IF_ERROR(
      prep(&s.counts, "SELECT kind, deleted, count(*) FROM entries GROUP BY kind, deleted"));
  GOSSYNC_RETURN_IF_ERROR(prep(&s.put, "INSERT OR REPLACE INTO entries (" + cols +
                                           ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                                           "?, ?, ?, ?, ?, ?)"));
  GOSSYNC_RETURN_IF_ERROR(prep(&s.del, "DELETE FROM entries WHERE path = ?"));
  GOSSYNC_RETURN_IF_ERROR(
      prep(&s.set_meta, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"));
  GOSSYNC_RETURN_IF_ERROR(prep(&s.begin, "BEGIN IMMEDIATE"));
  GOSSYNC_RETURN_IF_ERROR(prep(&s.commit, "COMMIT"));
  return Status::Ok();
}

Status Index::Rebucket(int depth) {
  GOSSYNC_RETURN_IF_ERROR(Exec(db_, "BEGIN IMMEDIATE", db_path_));
  std::string sql = "UPDATE entries SET bucket = gossync_bucket(path, " + std::to_string(depth) +
                    "); INSERT OR REPLACE INTO meta (key, value) VALUES ('tree_depth', " +
                    std::to_string(depth) + ")";
  Status s = Exec(db_, sql.c_str(), db_path_);
  if (s.ok()) s = Exec(db_, "COMMIT", db_path_);
  if (!s.ok()) {
    (void)Exec(db_, "ROLLBACK", db_path_);
    return s.Prefixed("recomputing buckets for tree depth " + std::to_string(depth));
  }
  meta_.tree_depth = depth;
  return Status::Ok();
}

namespace {

// Decodes one row read with kEntryColumns.
Status DecodeRecord(sqlite3_stmt* st, const std::string& file, IndexRecord* out) {
  core::Entry& e = out->entry;
  e.path = std::string(ColumnText(st, 0));
  int64_t kind = sqlite3_column_int64(st, 1);
  if (!ValidKind(kind)) return CorruptRow(file, e.path, "bad kind");
  e.kind = static_cast<core::EntryKind>(kind);
  e.mode = static_cast<uint32_t>(sqlite3_column_int64(st, 2));
  e.size = FromDb(sqlite3_column_int64(st, 3));
  e.mtime_ns = sqlite3_column_int64(st, 4);
  if (!ColumnHash(st, 5, &e.hash)) return CorruptRow(file, e.path, "bad content hash");
  std::span<const uint8_t> target = ColumnBlob(st, 6);
  e.target.assign(reinterpret_cast<const char*>(target.data()), target.size());
  Result<core::VersionVector> vv = DecodeVersionVector(ColumnBlob(st, 7));
  if (!vv.ok()) return CorruptRow(file, e.path, vv.status().message());
  e.vv = std::move(*vv);
  e.hlc = FromDb(sqlite3_column_int64(st, 8));
  e.origin = std::string(ColumnText(st, 9));
  e.deleted = sqlite3_column_int64(st, 10) != 0;
  out->bucket = static_cast<uint32_t>(sqlite3_column_int64(st, 11));
  if (!ColumnHash(st, 12, &out->digest)) return CorruptRow(file, e.path, "bad digest");
  out->stat = ColumnStat(st, 13, e.kind, e.target);
  e.dot.node = FromDb(sqlite3_column_int64(st, 18));
  e.dot.counter = FromDb(sqlite3_column_int64(st, 19));
  return Status::Ok();
}

}  // namespace

Result<std::optional<IndexRecord>> Index::Get(std::string_view path) {
  sqlite3_stmt* st = stmts_->get;
  ScopedReset reset(st);
  sqlite3_bind_text(st, 1, path.data(), static_cast<int>(path.size()), SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) return std::optional<IndexRecord>();
  if (rc != SQLITE_ROW) return SqlError(db_, rc, "read entry", db_path_);
  IndexRecord rec;
  GOSSYNC_RETURN_IF_ERROR(DecodeRecord(st, db_path_, &rec));
  return std::optional<IndexRecord>(std::move(rec));
}

Result<std::vector<IndexRecord>> Index::GetBucket(uint32_t bucket) {
  sqlite3_stmt* st = stmts_->bucket;
  ScopedReset reset(st);
  sqlite3_bind_int64(st, 1, bucket);
  std::vector<IndexRecord> out;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    IndexRecord rec;
    GOSSYNC_RETURN_IF_ERROR(DecodeRecord(st, db_path_, &rec));
    out.push_back(std::move(rec));
  }
  if (rc != SQLITE_DONE) return SqlError(db_, rc, "read bucket", db_path_);
  return out;
}

// Steps a prepared statement of whole entry rows, handing each to `fn`.
Status Index::EachRecord(sqlite3_stmt* st, std::string_view what,
                         const std::function<Status(const IndexRecord&)>& fn) {
  int rc;
  IndexRecord rec;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    GOSSYNC_RETURN_IF_ERROR(DecodeRecord(st, db_path_, &rec));
    GOSSYNC_RETURN_IF_ERROR(fn(rec));
  }
  if (rc != SQLITE_DONE) return SqlError(db_, rc, what, db_path_);
  return Status::Ok();
}

Status Index::ForEach(const std::function<Status(const IndexRecord&)>& fn) {
  sqlite3_stmt* st = stmts_->all;
  ScopedReset reset(st);
  return EachRecord(st, "read entries", fn);
}

Status Index::ForEachAfter(std::string_view after, size_t limit,
                           const std::function<Status(const IndexRecord&)>& fn) {
  sqlite3_stmt* st = stmts_->after;
  ScopedReset reset(st);
  sqlite3_bind_text(st, 1, after.data(), static_cast<int>(after.size()), SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX)));
  return EachRecord(st, "read entries", fn);
}

Status Index::ForEachUnder(std::string_view dir,
                           const std::function<Status(const IndexRecord&)>& fn) {
  sqlite3_stmt* st = stmts_->under;
  ScopedReset reset(st);
  sqlite3_bind_text(st, 1, dir.data(), static_cast<int>(dir.size()), SQLITE_STATIC);
  return EachRecord(st, "read entries", fn);
}

Status Index::ForEachInBuckets(uint32_t first, uint32_t end,
                               const std::function<Status(const IndexRecord&)>& fn) {
  sqlite3_stmt* st = stmts_->bucket_range;
  ScopedReset reset(st);
  sqlite3_bind_int64(st, 1, first);
  sqlite3_bind_int64(st, 2, end);
  return EachRecord(st, "read buckets", fn);
}

Status Index::ForEachDigestInBucket(
    uint32_t bucket,
    const std::function<void(std::string_view path, const core::Hash256& digest)>& fn) {
  sqlite3_stmt* st = stmts_->bucket_keys;
  ScopedReset reset(st);
  sqlite3_bind_int64(st, 1, bucket);
  int rc;
  core::Hash256 digest;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    std::string_view path = ColumnText(st, 0);
    if (!ColumnHash(st, 1, &digest)) return CorruptRow(db_path_, path, "bad digest");
    fn(path, digest);
  }
  if (rc != SQLITE_DONE) return SqlError(db_, rc, "read bucket", db_path_);
  return Status::Ok();
}

Status Index::ListStats(const std::function<Status(const StatRow&)>& fn) {
  sqlite3_stmt* st = stmts_->stats;
  ScopedReset reset(st);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    StatRow row;
    row.path = ColumnText(st, 0);
    int64_t kind = sqlite3_column_int64(st, 1);
    if (!ValidKind(kind)) return CorruptRow(db_path_, row.path, "bad kind");
    row.kind = static_cast<core::EntryKind>(kind);
    row.mode = static_cast<uint32_t>(sqlite3_column_int64(st, 2));
    row.deleted = sqlite3_column_int64(st, 3) != 0;
    std::span<const uint8_t> target = ColumnBlob(st, 4);
    row.stat =
        ColumnStat(st, 5, row.kind,
                   std::string_view(reinterpret_cast<const char*>(target.data()), target.size()));
    if (!ColumnHash(st, 10, &row.digest)) return CorruptRow(db_path_, row.path, "bad digest");
    GOSSYNC_RETURN_IF_ERROR(fn(row));
  }
  if (rc != SQLITE_DONE) return SqlError(db_, rc, "read entries", db_path_);
  return Status::Ok();
}

Status Index::ForEachDigest(
    const std::function<void(uint32_t, const core::Hash256&, core::EntryKind, bool)>& fn) {
  sqlite3_stmt* st = stmts_->digests;
  ScopedReset reset(st);
  const int64_t buckets = int64_t{1} << (4 * meta_.tree_depth);
  int rc;
  core::Hash256 digest;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t bucket = sqlite3_column_int64(st, 0);
    int64_t kind = sqlite3_column_int64(st, 2);
    if (bucket < 0 || bucket >= buckets || !ValidKind(kind) || !ColumnHash(st, 1, &digest)) {
      return Status::Corruption(db_path_ + ": an entry has a bad bucket, kind or digest" +
                                kRecovery);
    }
    fn(static_cast<uint32_t>(bucket), digest, static_cast<core::EntryKind>(kind),
       sqlite3_column_int64(st, 3) != 0);
  }
  if (rc != SQLITE_DONE) return SqlError(db_, rc, "read entries", db_path_);
  return Status::Ok();
}

Result<IndexCounts> Index::Counts() {
  sqlite3_stmt* st = stmts_->counts;
  ScopedReset reset(st);
  IndexCounts c;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t kind = sqlite3_column_int64(st, 0);
    bool deleted = sqlite3_column_int64(st, 1) != 0;
    uint64_t n = FromDb(sqlite3_column_int64(st, 2));
    if (deleted) {
      c.tombstones += n;
    } else if (kind == static_cast<int>(core::EntryKind::kFile)) {
      c.files += n;
    } else if (kind == static_cast<int>(core::EntryKind::kDirectory)) {
      c.directories += n;
    } else {
      c.symlinks += n;
    }
  }
  if (rc != SQLITE_DONE) return SqlError(db_, rc, "count entries", db_path_);
  return c;
}

Status Index::Step(sqlite3_stmt* st, std::string_view what) {
  ScopedReset reset(st);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_DONE) return SqlError(db_, rc, what, db_path_);
  return Status::Ok();
}

Status Index::WriteRecord(const IndexRecord& rec) {
  const core::Entry& e = rec.entry;
  Status valid = core::ValidatePath(e.path);
  if (!valid.ok()) return valid.Prefixed("index write");
  sqlite3_stmt* st = stmts_->put;
  std::string vv = EncodeVersionVector(e.vv);
  sqlite3_bind_text(st, 1, e.path.data(), static_cast<int>(e.path.size()), SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, static_cast<int64_t>(e.kind));
  sqlite3_bind_int64(st, 3, e.mode);
  sqlite3_bind_int64(st, 4, ToDb(e.size));
  sqlite3_bind_int64(st, 5, e.mtime_ns);
  sqlite3_bind_blob(st, 6, e.hash.data(), static_cast<int>(e.hash.size()), SQLITE_STATIC);
  sqlite3_bind_blob(st, 7, e.target.data(), static_cast<int>(e.target.size()), SQLITE_STATIC);
  sqlite3_bind_blob(st, 8, vv.data(), static_cast<int>(vv.size()), SQLITE_STATIC);
  sqlite3_bind_int64(st, 9, ToDb(e.hlc));
  sqlite3_bind_text(st, 10, e.origin.data(), static_cast<int>(e.origin.size()), SQLITE_STATIC);
  sqlite3_bind_int64(st, 11, e.deleted ? 1 : 0);
  sqlite3_bind_int64(st, 12, core::MerkleTree::BucketOf(e.path, meta_.tree_depth));
  sqlite3_bind_blob(st, 13, rec.digest.data(), static_cast<int>(rec.digest.size()), SQLITE_STATIC);
  if (rec.stat) {
    const LocalStat& ls = *rec.stat;
    sqlite3_bind_int64(st, 14, ToDb(ls.size));
    sqlite3_bind_int64(st, 15, ls.mtime_ns);
    sqlite3_bind_int64(st, 16, ls.mode);
    sqlite3_bind_int64(st, 17, ToDb(ls.ino));
    sqlite3_bind_int64(st, 18, ToDb(ls.dev));
  }  // else the cleared bindings are NULL
  sqlite3_bind_int64(st, 19, ToDb(e.dot.node));
  sqlite3_bind_int64(st, 20, ToDb(e.dot.counter));
  return Step(st, "write entry \"" + e.path + "\"");
}

Status Index::DeleteRecord(std::string_view path) {
  sqlite3_bind_text(stmts_->del, 1, path.data(), static_cast<int>(path.size()), SQLITE_STATIC);
  return Step(stmts_->del, "delete entry");
}

Status Index::WriteMeta(const char* key, uint64_t value) {
  sqlite3_bind_text(stmts_->set_meta, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(stmts_->set_meta, 2, ToDb(value));
  return Step(stmts_->set_meta, std::string("write meta ") + key);
}

void Index::Rollback() {
  if (!sqlite3_get_autocommit(db_)) (void)Exec(db_, "ROLLBACK", db_path_);
}

void Index::EndTransaction(bool durable) {
  Rollback();  // a no-op after a successful COMMIT
  if (durable) (void)Exec(db_, "PRAGMA synchronous = NORMAL", db_path_);
}

Result<Index::Transaction> Index::Begin(bool durable) {
  // The pager reads the sync level at commit; set it outside the transaction.
  if (durable) GOSSYNC_RETURN_IF_ERROR(Exec(db_, "PRAGMA synchronous = FULL", db_path_));
  Status s = Step(stmts_->begin, "begin");
  if (!s.ok()) {
    EndTransaction(durable);
    return s;
  }
  return Transaction(this, durable);
}

Index::Transaction::Transaction(Transaction&& o) noexcept
    : index_(std::exchange(o.index_, nullptr)),
      durable_(o.durable_),
      counter_(o.counter_),
      hlc_(o.hlc_),
      reserved_(o.reserved_),
      sync_(o.sync_) {}

Index::Transaction::~Transaction() {
  if (index_) index_->EndTransaction(durable_);
}

Status Index::Transaction::Put(const IndexRecord& rec) {
  GOSSYNC_CHECK(index_ != nullptr);
  return index_->WriteRecord(rec);
}

Status Index::Transaction::Delete(std::string_view path) {
  GOSSYNC_CHECK(index_ != nullptr);
  return index_->DeleteRecord(path);
}

Status Index::Transaction::Commit() {
  GOSSYNC_CHECK(index_ != nullptr);
  Index* ix = std::exchange(index_, nullptr);
  Status s;
  if (counter_) s = ix->WriteMeta("counter", *counter_);
  if (s.ok() && hlc_) s = ix->WriteMeta("hlc", *hlc_);
  if (s.ok() && reserved_) s = ix->WriteMeta("counter_reserved", *reserved_);
  if (s.ok() && sync_) s = ix->WriteMeta("last_sync_ms", sync_->first);
  if (s.ok() && sync_) s = ix->WriteMeta("sync_counter", sync_->second);
  if (s.ok()) s = ix->Step(ix->stmts_->commit, "commit");
  ix->EndTransaction(durable_);
  if (!s.ok()) return s;
  if (counter_) ix->meta_.counter = *counter_;
  if (hlc_) ix->meta_.hlc = *hlc_;
  if (reserved_) ix->meta_.counter_reserved = *reserved_;
  if (sync_) {
    ix->meta_.last_sync_ms = sync_->first;
    ix->meta_.sync_counter = sync_->second;
  }
  return Status::Ok();
}

void Index::Batch::Put(IndexRecord rec) { ops_.push_back(Op{true, std::move(rec)}); }

void Index::Batch::Delete(std::string path) {
  Op op{false, {}};
  op.rec.entry.path = std::move(path);
  ops_.push_back(std::move(op));
}

Status Index::Commit(const Batch& batch) {
  if (batch.empty()) return Status::Ok();
  // Cheap checks first, so a bad record fails before any lock is taken.
  for (const Batch::Op& op : batch.ops_) {
    Status s = core::ValidatePath(op.rec.entry.path);
    if (!s.ok()) return s.Prefixed("index commit");
  }
  Result<Transaction> txn = Begin();
  if (!txn.ok()) return txn.status();
  for (const Batch::Op& op : batch.ops_) {
    GOSSYNC_RETURN_IF_ERROR(op.put ? txn->Put(op.rec) : txn->Delete(op.rec.entry.path));
  }
  if (batch.counter_) txn->SetCounter(*batch.counter_);
  if (batch.hlc_) txn->SetHlc(*batch.hlc_);
  return txn->Commit();
}

}  // namespace gossync::store
