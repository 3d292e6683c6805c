#include "agent/store/ignore.h"

#include <cstring>

namespace gossync::store {
namespace {

Status Invalid(const std::string& source, std::string_view why) {
  return Status::InvalidArgument("ignore pattern '" + source + "': " + std::string(why));
}

bool IsGlobChar(char c) { return c == '*' || c == '?' || c == '[' || c == '\\'; }

// Matches one POSIX class name ("alpha" in "[:alpha:]") against `c`.
// Returns -1 for an unknown name.
int MatchPosixClass(std::string_view name, unsigned char c) {
  auto in = [c](const char* set) { return std::strchr(set, c) != nullptr && c != 0; };
  bool lower = c >= 'a' && c <= 'z', upper = c >= 'A' && c <= 'Z', digit = c >= '0' && c <= '9';
  if (name == "alnum") return lower || upper || digit;
  if (name == "alpha") return lower || upper;
  if (name == "blank") return c == ' ' || c == '\t';
  if (name == "cntrl") return c < 0x20 || c == 0x7f;
  if (name == "digit") return digit;
  if (name == "graph") return c > 0x20 && c < 0x7f;
  if (name == "lower") return lower;
  if (name == "print") return c >= 0x20 && c < 0x7f;
  if (name == "punct") return in("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");
  if (name == "space") return in(" \t\n\r\f\v");
  if (name == "upper") return upper;
  if (name == "xdigit") return digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  return -1;
}

// Parses the bracket expression starting at p[i] == '['. On success sets
// *end to the index after the closing ']' and, if `c` is given, *matched.
// Returns false if the class is malformed (unterminated, unknown [:name:]).
bool ParseClass(std::string_view p, size_t i, size_t* end, const unsigned char* c, bool* matched) {
  size_t j = i + 1;
  bool negate = false;
  if (j < p.size() && (p[j] == '!' || p[j] == '^')) {
    negate = true;
    ++j;
  }
  bool hit = false;
  bool first = true;
  while (true) {
    if (j >= p.size()) return false;
    unsigned char ch = static_cast<unsigned char>(p[j]);
    if (ch == ']' && !first) break;
    first = false;
    if (ch == '[' && j + 1 < p.size() && p[j + 1] == ':') {
      size_t close = p.find(":]", j + 2);
      if (close == std::string_view::npos) return false;
      int r = MatchPosixClass(p.substr(j + 2, close - (j + 2)), c ? *c : 'a');
      if (r < 0) return false;
      if (c && r) hit = true;
      j = close + 2;
      continue;
    }
    if (ch == '\\') {
      if (++j >= p.size()) return false;
      ch = static_cast<unsigned char>(p[j]);
    }
    ++j;
    unsigned char lo = ch, hi = ch;
    if (j + 1 < p.size() && p[j] == '-' && p[j + 1] != ']') {
      ++j;
      hi = static_cast<unsigned char>(p[j]);
      if (hi == '\\') {
        if (++j >= p.size()) return false;
        hi = static_cast<unsigned char>(p[j]);
      }
      ++j;
    }
    if (c && *c >= lo && *c <= hi) hit = true;
  }
  *end = j + 1;
  if (matched) *matched = hit != negate;
  return true;
}

// Checks that `p` is a well-formed glob: no trailing '\', every '[' closed.
Status ValidateGlob(const std::string& source, std::string_view p) {
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\') {
      if (i + 1 >= p.size()) return Invalid(source, "ends with an unescaped '\\'");
      ++i;
    } else if (p[i] == '[') {
      size_t end;
      if (!ParseClass(p, i, &end, nullptr, nullptr)) {
        return Invalid(source, "unterminated '[' or unknown [:class:]");
      }
      i = end - 1;
    }
  }
  return Status::Ok();
}

std::string Unescape(std::string_view p) {
  std::string out;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\' && i + 1 < p.size()) ++i;
    out += p[i];
  }
  return out;
}

bool HasGlob(std::string_view p) {
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\') {
      ++i;
      continue;
    }
    if (IsGlobChar(p[i])) return true;
  }
  return false;
}

// A backtracking matcher in the manner of git's wildmatch (WM_PATHNAME).
// Backtracking happens only at '*'; the outcome of matching the pattern from
// index pi against the text from index ti depends on (pi, ti) alone, so
// failed pairs are remembered and the work is bounded by
// pattern length x text length even for "*a*a*a*a*b" against "aaaa...".
class GlobMatcher {
 public:
  GlobMatcher(std::string_view p, std::string_view t) : p_(p), t_(t) {}

  bool Match(size_t pi, size_t ti) {
    if (!failed_.empty() && failed_[pi * (t_.size() + 1) + ti]) return false;
    bool ok = MatchUncached(pi, ti);
    if (!ok && starred_) {
      if (failed_.empty()) failed_.assign((p_.size() + 1) * (t_.size() + 1), false);
      failed_[pi * (t_.size() + 1) + ti] = true;
    }
    return ok;
  }

 private:
  bool MatchUncached(size_t pi, size_t ti) {
    const std::string_view p = p_, t = t_;
    while (pi < p.size()) {
      char pc = p[pi];
      if (pc == '*') {
        starred_ = true;
        size_t stars = pi;
        while (pi < p.size() && p[pi] == '*') ++pi;
        bool double_star = pi - stars >= 2;
        bool at_start = stars == 0 || p[stars - 1] == '/';
        if (double_star && at_start && (pi == p.size() || p[pi] == '/')) {
          if (pi == p.size()) return true;  // trailing "**" (or "/**"): everything below
          // "**/": zero or more whole directories.
          size_t rest = pi + 1;
          if (Match(rest, ti)) return true;
          for (size_t k = ti; k < t.size(); ++k) {
            if (t[k] == '/' && Match(rest, k + 1)) return true;
          }
          return false;
        }
        // A plain '*': any run of non-'/' bytes.
        for (size_t k = ti;; ++k) {
          if (Match(pi, k)) return true;
          if (k >= t.size() || t[k] == '/') return false;
        }
      }
      if (ti >= t.size()) return false;
      unsigned char tc = static_cast<unsigned char>(t[ti]);
      if (pc == '?') {
        if (tc == '/') return false;
      } else if (pc == '[') {
        size_t end;
        bool matched = false;
        if (tc == '/' || !ParseClass(p, pi, &end, &tc, &matched) || !matched) return false;
        pi = end;
        ++ti;
        continue;
      } else {
        if (pc == '\\' && pi + 1 < p.size()) pc = p[++pi];
        if (static_cast<unsigned char>(pc) != tc) return false;
      }
      ++pi;
      ++ti;
    }
    return ti == t.size();
  }

  std::string_view p_, t_;
  bool starred_ = false;
  std::vector<bool> failed_;  // (pi, ti) pairs known not to match; allocated at the first '*'
};

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view text) {
  return GlobMatcher(pattern, text).Match(0, 0);
}

Result<IgnoreMatcher> IgnoreMatcher::Create(const std::vector<std::string>& patterns) {
  IgnoreMatcher m;
  for (const std::string& source : patterns) {
    if (source.size() > kMaxIgnorePatternBytes) {
      return Invalid(source.substr(0, 40) + "...",
                     "longer than " + std::to_string(kMaxIgnorePatternBytes) + " bytes");
    }
    if (source.find('\0') != std::string::npos) return Invalid(source, "contains a NUL byte");
    std::string_view p = source;
    // Trailing spaces are dropped unless escaped, as git does.
    while (!p.empty() && p.back() == ' ') {
      size_t bs = 0;
      while (bs + 1 < p.size() && p[p.size() - 2 - bs] == '\\') ++bs;
      if (bs % 2 == 1) break;
      p.remove_suffix(1);
    }
    if (p.empty()) return Invalid(source, "is empty");
    if (p[0] == '#') return Invalid(source, "starts with '#' (write '\\#' to match a leading '#')");
    Pattern pat;
    pat.source = source;
    if (p[0] == '!') {
      pat.negated = true;
      p.remove_prefix(1);
    }
    if (!p.empty() && p.back() == '/') {
      pat.dir_only = true;
      p.remove_suffix(1);
    }
    if (!p.empty() && p.front() == '/') {
      pat.anchored = true;
      p.remove_prefix(1);
    }
    if (p.empty()) return Invalid(source, "matches nothing");
    if (p.find("//") != std::string_view::npos) return Invalid(source, "has an empty component");
    if (p.find('/') != std::string_view::npos) pat.anchored = true;
    GOSSYNC_RETURN_IF_ERROR(ValidateGlob(source, p));
    pat.text = std::string(p);
    if (!HasGlob(p)) {
      pat.form = Form::kLiteral;
      pat.literal = Unescape(p);
    } else if (p.size() >= 2 && p[0] == '*' && p[1] != '*' && !HasGlob(p.substr(1)) &&
               p.find('/') == std::string_view::npos) {
      pat.form = Form::kSuffix;
      pat.literal = Unescape(p.substr(1));
    }
    m.patterns_.push_back(std::move(pat));
  }
  return m;
}

bool IgnoreMatcher::IsAgentName(std::string_view path) {
  if (path.substr(0, kAgentTempDir.size()) == kAgentTempDir &&
      (path.size() == kAgentTempDir.size() || path[kAgentTempDir.size()] == '/')) {
    return true;
  }
  size_t slash = path.rfind('/');
  std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
  return base.size() >= kAgentTempSuffix.size() &&
         base.substr(base.size() - kAgentTempSuffix.size()) == kAgentTempSuffix;
}

int IgnoreMatcher::MatchSelf(std::string_view path, bool is_dir) const {
  size_t slash = path.rfind('/');
  std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
  for (auto it = patterns_.rbegin(); it != patterns_.rend(); ++it) {
    const Pattern& pat = *it;
    if (pat.dir_only && !is_dir) continue;
    std::string_view subject = pat.anchored ? path : base;
    bool hit = false;
    switch (pat.form) {
      case Form::kLiteral:
        hit = subject == pat.literal;
        break;
      case Form::kSuffix:
        hit = subject.size() >= pat.literal.size() && subject.find('/') == std::string_view::npos &&
              subject.substr(subject.size() - pat.literal.size()) == pat.literal;
        break;
      case Form::kGlob:
        hit = GlobMatch(pat.text, subject);
        break;
    }
    if (hit) return pat.negated ? -1 : 1;
  }
  return 0;
}

bool IgnoreMatcher::IgnoredEntry(std::string_view path, bool is_dir) const {
  if (IsAgentName(path)) return true;
  return MatchSelf(path, is_dir) > 0;
}

bool IgnoreMatcher::Ignored(std::string_view path, bool is_dir) const {
  if (IsAgentName(path)) return true;
  // A path beneath an excluded directory is excluded, whatever later "!"
  // patterns say about the path itself (gitignore's rule).
  for (size_t k = path.find('/'); k != std::string_view::npos; k = path.find('/', k + 1)) {
    std::string_view parent = path.substr(0, k);
    if (IsAgentName(parent) || MatchSelf(parent, true) > 0) return true;
  }
  return MatchSelf(path, is_dir) > 0;
}

}  // namespace gossync::store
