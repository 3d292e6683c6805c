#include "agent/store/ignore.h"

#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "tests/unit/store/fs_testing.h"

namespace gossync::store {
namespace {

IgnoreMatcher Make(const std::vector<std::string>& patterns) {
  Result<IgnoreMatcher> m = IgnoreMatcher::Create(patterns);
  INFO((m.ok() ? std::string("ok") : m.status().ToString()));
  REQUIRE(m.ok());
  return std::move(m).value();
}

struct Case {
  std::vector<std::string> patterns;
  const char* path;
  bool is_dir;
  bool ignored;
};

TEST_CASE("IgnoreMatcher: gitignore rules, table", "[ignore]") {
  const std::vector<std::string> kDefault = {"*.swp",        "cache/",    "/build",
                                             "**/tmp/*.log", "!keep.swp", "\\#file"};
  const Case cases[] = {
      // Base-name patterns match at any depth, files and directories.
      {kDefault, "a.swp", false, true},
      {kDefault, "x/y/a.swp", false, true},
      {kDefault, "x/y/a.swp", true, true},
      {kDefault, "a.swpx", false, false},
      {kDefault, "swp", false, false},
      // "!" re-includes; last match wins.
      {kDefault, "keep.swp", false, false},
      {kDefault, "deep/keep.swp", false, false},
      {{"!keep.swp", "*.swp"}, "keep.swp", false, true},
      // Trailing "/" matches directories only, and everything beneath them.
      {kDefault, "cache", true, true},
      {kDefault, "cache", false, false},
      {kDefault, "x/cache", true, true},
      {kDefault, "cache/f", false, true},
      {kDefault, "x/cache/deep/f", false, true},
      {kDefault, "cachex", true, false},
      {kDefault, "x/cachex/f", false, false},
      // A leading "/" anchors to the root.
      {kDefault, "build", true, true},
      {kDefault, "build", false, true},
      {kDefault, "build/out.o", false, true},
      {kDefault, "x/build", true, false},
      {kDefault, "x/build/out.o", false, false},
      // "**/" spans any number of directories, "*" never spans "/".
      {kDefault, "tmp/a.log", false, true},
      {kDefault, "x/y/tmp/a.log", false, true},
      {kDefault, "tmp/x/a.log", false, false},
      {kDefault, "tmp/a.txt", false, false},
      {kDefault, "xtmp/a.log", false, false},
      // Escapes.
      {kDefault, "#file", false, true},
      {kDefault, "d/#file", false, true},
      {kDefault, "file", false, false},
      {{"\\!important"}, "!important", false, true},
      {{"foo\\ "}, "foo ", false, true},
      {{"foo\\ "}, "foo", false, false},
      {{"foo   "}, "foo", false, true},
      {{"a\\*b"}, "a*b", false, true},
      {{"a\\*b"}, "axb", false, false},
      // A path under an excluded directory cannot be re-included.
      {{"cache/", "!cache/keep"}, "cache/keep", false, true},
      {{"cache/", "!cache/"}, "cache/keep", false, false},
      // A slash in the middle anchors too.
      {{"doc/*.md"}, "doc/a.md", false, true},
      {{"doc/*.md"}, "x/doc/a.md", false, false},
      {{"doc/*.md"}, "doc/sub/a.md", false, false},
      // "/**" at the end, "/**/" in the middle.
      {{"a/**"}, "a/x", false, true},
      {{"a/**"}, "a/x/y", false, true},
      {{"a/**"}, "a", true, false},
      {{"a/**/b"}, "a/b", false, true},
      {{"a/**/b"}, "a/x/b", false, true},
      {{"a/**/b"}, "a/x/y/b", false, true},
      {{"a/**/b"}, "ab", false, false},
      {{"a/**/b"}, "x/a/b", false, false},
      {{"**/foo"}, "foo", false, true},
      {{"**/foo"}, "x/y/foo", false, true},
      {{"**"}, "anything/at/all", false, true},
      // Any other "**" is a plain "*".
      {{"a**b"}, "axxb", false, true},
      {{"a**b"}, "ax/b", false, false},
      // "?" and classes.
      {{"foo?"}, "foo1", false, true},
      {{"foo?"}, "fo", false, false},
      {{"foo?"}, "foo12", false, false},
      {{"[a-c]x"}, "bx", false, true},
      {{"[a-c]x"}, "dx", false, false},
      {{"[!a-c]x"}, "dx", false, true},
      {{"[!a-c]x"}, "bx", false, false},
      {{"[^a-c]x"}, "dx", false, true},
      {{"[]]x"}, "]x", false, true},
      {{"[[:digit:]]*"}, "1abc", false, true},
      {{"[[:digit:]]*"}, "abc", false, false},
      {{"*.[oa]"}, "lib/x.o", false, true},
      {{"*.[oa]"}, "lib/x.c", false, false},
      // Suffix fast path with a literal containing the anchor.
      {{"/*.c"}, "x.c", false, true},
      {{"/*.c"}, "d/x.c", false, false},
      {{"*/x.c"}, "d/x.c", false, true},
      {{"*/x.c"}, "x.c", false, false},
      // UTF-8 is bytes to the matcher.
      {{"caf\xc3\xa9.txt"}, "d/caf\xc3\xa9.txt", false, true},
      // No patterns: nothing but the agent's own names.
      {{}, "a.swp", false, false},
      {{}, "x", true, false},
  };
  for (const Case& c : cases) {
    IgnoreMatcher m = Make(c.patterns);
    std::string pats;
    for (const auto& p : c.patterns) pats += "'" + p + "' ";
    INFO("patterns " << pats << "path '" << c.path << "' dir " << c.is_dir);
    CHECK(m.Ignored(c.path, c.is_dir) == c.ignored);
  }
}

TEST_CASE("IgnoreMatcher: the agent's own names are always ignored", "[ignore]") {
  IgnoreMatcher none;
  IgnoreMatcher reinclude = Make({"!*.gossync-tmp", "!.gossync-tmp/", "!**"});
  for (const IgnoreMatcher* m : {&none, &reinclude}) {
    CHECK(m->Ignored(".gossync-tmp", true));
    CHECK(m->Ignored(".gossync-tmp/abc", false));
    CHECK(m->Ignored(".gossync-tmp/x/y", false));
    CHECK(m->Ignored("x.gossync-tmp", false));
    CHECK(m->Ignored("a/b/0123abcd.gossync-tmp", false));
    CHECK(m->Ignored("d.gossync-tmp/child", false));  // beneath an ignored directory
    CHECK(m->IgnoredEntry("a/b/0123abcd.gossync-tmp", false));
    // And nothing else.
    CHECK_FALSE(m->Ignored(".gossync-tmpx", true));
    CHECK_FALSE(m->Ignored("gossync-tmp", false));
    CHECK_FALSE(m->Ignored("a.gossync-tmp.bak", false));
    CHECK_FALSE(m->Ignored(".gossync", true));
    CHECK_FALSE(m->Ignored(".gossync-tmpdir/x", false));
  }
  CHECK(IgnoreMatcher::IsAgentName(".gossync-tmp"));
  CHECK_FALSE(IgnoreMatcher::IsAgentName("x/.gossync-tmpx"));
}

TEST_CASE("IgnoreMatcher: IgnoredEntry checks only the path itself", "[ignore]") {
  IgnoreMatcher m = Make({"cache/", "!cache/keep"});
  CHECK(m.IgnoredEntry("cache", true));
  CHECK_FALSE(m.IgnoredEntry("cache/keep", false));  // the walk never gets here
  CHECK(m.Ignored("cache/keep", false));
}

TEST_CASE("IgnoreMatcher: invalid patterns are rejected with the pattern named", "[ignore]") {
  for (const char* bad :
       {"", "   ", "#comment", "[abc", "foo\\", "!", "/", "a//b", "[[:nope:]]x", "x[a-"}) {
    Result<IgnoreMatcher> m = IgnoreMatcher::Create({"ok.txt", bad});
    INFO("pattern '" << bad << "'");
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().code() == Code::kInvalidArgument);
    CHECK(m.status().message().find("'" + std::string(bad) + "'") != std::string::npos);
  }
  Result<IgnoreMatcher> big = IgnoreMatcher::Create({std::string(kMaxIgnorePatternBytes + 1, 'a')});
  CHECK(big.status().code() == Code::kInvalidArgument);
  CHECK(IgnoreMatcher::Create({"\\#ok", "a\\[b", "[]]"}).ok());
}

TEST_CASE("GlobMatch: '*' and '?' never cross '/', '**' does only between slashes", "[ignore]") {
  CHECK(GlobMatch("*", "abc"));
  CHECK_FALSE(GlobMatch("*", "a/b"));
  CHECK(GlobMatch("*/*", "a/b"));
  CHECK_FALSE(GlobMatch("a?b", "a/b"));
  CHECK_FALSE(GlobMatch("a[/]b", "a/b"));
  CHECK(GlobMatch("**/b", "a/b"));
  CHECK(GlobMatch("a/**", "a/b/c"));
  CHECK_FALSE(GlobMatch("a/**", "a"));
  CHECK(GlobMatch("", ""));
  CHECK_FALSE(GlobMatch("", "a"));
  // Many stars against a long non-matching text stays fast (bounded backtracking).
  std::string text(200, 'a');
  CHECK_FALSE(GlobMatch("*a*a*a*a*a*a*a*b", text));
}

// ------------------------------------------------ comparison with git itself

bool HaveGit() { return std::system("git --version >/dev/null 2>&1") == 0; }

// The set of `paths` that `git check-ignore` reports for a .gitignore made
// of `patterns`, in a real repository where the paths exist.
std::set<std::string> GitIgnored(const testing::TempDir& repo,
                                 const std::vector<std::string>& patterns,
                                 const std::vector<std::string>& paths) {
  std::string gi;
  for (const auto& p : patterns) gi += p + "\n";
  testing::WriteFile(repo / ".gitignore", gi);
  std::string list = repo / "paths.lst";
  std::string listing;
  for (const auto& p : paths) listing += p + '\n';
  testing::WriteFile(list, listing);
  std::string cmd = "cd '" + repo.path() +
                    "' && git -c core.excludesFile=/dev/null check-ignore --no-index --stdin < '" +
                    list + "'";
  std::set<std::string> out;
  FILE* f = ::popen(cmd.c_str(), "r");
  REQUIRE(f != nullptr);
  char line[4096];
  while (std::fgets(line, sizeof(line), f)) {
    std::string s(line);
    if (!s.empty() && s.back() == '\n') s.pop_back();
    out.insert(s);
  }
  int rc = ::pclose(f);
  // 0: some ignored, 1: none ignored; anything else is a git failure.
  REQUIRE(WIFEXITED(rc));
  REQUIRE(WEXITSTATUS(rc) <= 1);
  return out;
}

TEST_CASE("IgnoreMatcher: agrees with git check-ignore on a real tree", "[ignore][git]") {
  if (!HaveGit()) {
    WARN("git is not installed: skipping the comparison with git check-ignore");
    return;
  }
  testing::TempDir repo;
  REQUIRE(std::system(("git init -q '" + repo.path() + "'").c_str()) == 0);
  const std::vector<std::string> dirs = {
      "cache",   "a",   "a/cache", "a/x",          "a/x/y",           "build", "x",
      "x/build", "x/y", "x/y/tmp", "tmp",          "tmp/x",           "doc",   "doc/sub",
      "x/doc",   "src", "src/lib", "node_modules", "node_modules/pkg"};
  const std::vector<std::string> files = {"a.swp",
                                          "keep.swp",
                                          "x/y/a.swp",
                                          "a/keep.swp",
                                          "cache/f",
                                          "cache/keep",
                                          "a/cache/f",
                                          "build/o",
                                          "x/build/o",
                                          "tmp/a.log",
                                          "x/y/tmp/a.log",
                                          "tmp/x/a.log",
                                          "tmp/a.txt",
                                          "#file",
                                          "doc/a.md",
                                          "doc/sub/a.md",
                                          "x/doc/a.md",
                                          "a/b",
                                          "a/x/b",
                                          "a/x/y/b",
                                          "foo1",
                                          "fo",
                                          "bx",
                                          "dx",
                                          "]x",
                                          "1abc",
                                          "abc",
                                          "!important",
                                          "foo ",
                                          "src/main.c",
                                          "src/lib/util.c",
                                          "src/lib/util.o",
                                          "axxb",
                                          "a.o",
                                          "x/foo",
                                          "node_modules/pkg/index.js",
                                          "a*b",
                                          "x.c",
                                          "doc/x.c"};
  for (const auto& d : dirs) testing::MakeDirs(repo / d);
  for (const auto& f : files) testing::WriteFile(repo / f, "x");
  std::vector<std::string> all = dirs;
  all.insert(all.end(), files.begin(), files.end());

  const std::vector<std::vector<std::string>> sets = {
      {"*.swp", "cache/", "/build", "**/tmp/*.log", "!keep.swp", "\\#file"},
      {"!keep.swp", "*.swp"},
      {"cache/", "!cache/keep", "!a/cache/"},
      {"a/**", "!a/x/"},
      {"a/**/b", "doc/*.md", "[a-c]x", "[!a-c]x", "foo?", "a**b", "[]]x"},
      {"*.o", "!src/lib/util.o", "src/**/*.c"},
      {"\\!important", "foo\\ ", "[[:digit:]]*", "a\\*b"},
      {"*", "!*/", "!*.c"},
      {"**/x", "/tmp/", "doc/", "node_modules"},
      {"/*.c", "*/x.c", "x/**/", "**/y/**"},
  };
  for (const auto& patterns : sets) {
    std::set<std::string> git = GitIgnored(repo, patterns, all);
    IgnoreMatcher m = Make(patterns);
    std::string pats;
    for (const auto& p : patterns) pats += "'" + p + "' ";
    for (const auto& p : all) {
      bool is_dir = std::find(dirs.begin(), dirs.end(), p) != dirs.end();
      INFO("patterns " << pats << "path '" << p << "' dir " << is_dir);
      CHECK(m.Ignored(p, is_dir) == (git.count(p) > 0));
    }
  }
}

}  // namespace
}  // namespace gossync::store
