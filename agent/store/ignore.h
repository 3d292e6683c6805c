// Ignore patterns (DESIGN.md section 5): gitignore-style, from the config's
// `ignore` list, plus the agent's own names, which are always ignored.
//
// Pattern syntax, as in gitignore(5):
//   - a pattern with no slash but a trailing one ("*.swp", "cache/") matches
//     the base name at any depth;
//   - a pattern with a slash at the start or in the middle ("/build",
//     "docs/*.md") is anchored to the root and matched against the whole path;
//   - a trailing "/" matches directories only (and so everything beneath them);
//   - "*" and "?" never match "/", "[a-z]", "[!a-z]", "[^a-z]" and "[[:alpha:]]"
//     are character classes, "\x" is a literal x ("\#file", "\!x", "\ ");
//   - "**/" at the start matches in every directory, "/**" at the end matches
//     everything inside, "/**/" matches zero or more directories; any other
//     "**" is a plain "*";
//   - "!" re-includes what an earlier pattern excluded; the last matching
//     pattern wins; a path beneath an ignored directory cannot be re-included
//     (the scanner never descends there).
//   - trailing unescaped spaces are dropped.
// Unlike a .gitignore file, a config list has no comments: an entry that is
// empty or starts with an unescaped "#" is rejected (write "\#" to match a
// leading "#"), as are a trailing "\" and an unterminated "[".
//
// Thread-safe: immutable after Create.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gossync/status.h"

namespace gossync::store {

// The agent's own names. The temp directory used when state_dir is on another
// file system than data_dir sits at the top of data_dir; temp files of
// pending transfers end with the suffix.
inline constexpr std::string_view kAgentTempDir = ".gossync-tmp";
inline constexpr std::string_view kAgentTempSuffix = ".gossync-tmp";

// The longest pattern accepted, in bytes (a bound on the matcher's work).
inline constexpr size_t kMaxIgnorePatternBytes = 1024;

class IgnoreMatcher {
 public:
  // A matcher that ignores only the agent's own names.
  IgnoreMatcher() = default;

  // Compiles `patterns` in order. An invalid pattern is an InvalidArgument
  // naming it: "ignore pattern '[ab': unterminated '['".
  static Result<IgnoreMatcher> Create(const std::vector<std::string>& patterns);

  // True if `path` (canonical, relative) is ignored: it is one of the agent's
  // own names, or it or any of its parent directories is excluded by the
  // patterns. `is_dir` says whether `path` itself is a directory.
  bool Ignored(std::string_view path, bool is_dir) const;

  // Ignored() for a walk that has already checked the parents: only `path`
  // itself is matched. REQUIRES: no parent directory of `path` is ignored.
  bool IgnoredEntry(std::string_view path, bool is_dir) const;

  // True for the agent's own names: anything under the top-level
  // ".gossync-tmp" directory (and that directory), and every entry whose base
  // name ends with ".gossync-tmp".
  static bool IsAgentName(std::string_view path);

  size_t pattern_count() const { return patterns_.size(); }

 private:
  enum class Form : uint8_t {
    kLiteral,  // no wildcard: compare bytes
    kSuffix,   // "*" + literal: compare the end
    kGlob,     // the general matcher
  };
  struct Pattern {
    std::string text;    // the glob, without "!", leading "/" and trailing "/"
    std::string source;  // as written, for messages
    Form form = Form::kGlob;
    std::string literal;  // for kLiteral and kSuffix: the unescaped bytes
    bool negated = false;
    bool dir_only = false;
    bool anchored = false;  // matched against the whole path, else the base name
  };

  // nullopt-like tri-state: 0 no pattern matched, 1 excluded, -1 re-included.
  int MatchSelf(std::string_view path, bool is_dir) const;

  std::vector<Pattern> patterns_;
};

// The glob matcher used by IgnoreMatcher, exposed for tests: true if the
// whole of `text` matches `pattern` with gitignore's rules for "*", "?",
// "[...]", "\" and "**" ("*" never matches "/"). REQUIRES: `pattern` passed
// IgnoreMatcher::Create's validation.
bool GlobMatch(std::string_view pattern, std::string_view text);

}  // namespace gossync::store
