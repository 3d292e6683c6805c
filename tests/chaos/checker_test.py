#!/usr/bin/env python3
"""Tests of the chaos harness's own model: the checker must fail on a lost
write, a returning delete, unknown content, diverged trees and temp files, and
the workload must record what each operation displaced. No agents, no root."""

import os
import sys
import tempfile
import types
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chaos import checker  # noqa: E402
from chaos.cluster import fingerprint  # noqa: E402
from chaos.workload import Op, Workload  # noqa: E402

_seq = [0]


def w(node, path, h, observed=None):
    _seq[0] += 1
    return Op(_seq[0], node, "write", path, h, observed, 0, 0, "edit")


def d(node, path, observed):
    _seq[0] += 1
    return Op(_seq[0], node, "delete", path, None, observed, 0, 0, "delete")


def f(h):
    return ("file", "0644", 1, h)


COPY = "f.sync-conflict-20260101-120000-n2.txt"


class CheckerTest(unittest.TestCase):
    def test_conflict_original(self):
        self.assertEqual(checker.conflict_original("d/f.sync-conflict-20260101-120000-n2.txt"),
                         "d/f.txt")
        self.assertEqual(checker.conflict_original("f.sync-conflict-20260101-120000-n2"), "f")
        self.assertEqual(checker.conflict_original(
            "f.sync-conflict-20260101-120000-n2.sync-conflict-20260102-000000-n3.txt"), "f.txt")
        self.assertIsNone(checker.conflict_original("f.txt"))

    def test_sequential_edits_need_only_the_last(self):
        h = [w("n1", "f.txt", "a"), w("n2", "f.txt", "b", observed="a"),
             w("n1", "f.txt", "c", observed="b")]
        self.assertEqual(checker.check_history(h, {"f.txt": f("c")}), [])
        self.assertIn("lost write", checker.check_history(h, {"f.txt": f("b")})[0])

    def test_concurrent_edits_keep_both(self):
        h = [w("n1", "f.txt", "a"), w("n1", "f.txt", "b", observed="a"),
             w("n2", "f.txt", "c", observed="a")]
        self.assertEqual(checker.check_history(h, {"f.txt": f("c"), COPY: f("b")}), [])
        problems = checker.check_history(h, {"f.txt": f("c")})
        self.assertEqual(len(problems), 1)
        self.assertIn("lost write", problems[0])

    def test_delete_concurrent_with_edit_keeps_the_edit(self):
        h = [w("n1", "f.txt", "a"), d("n1", "f.txt", observed="a"),
             w("n2", "f.txt", "b", observed="a")]
        self.assertEqual(checker.check_history(h, {"f.txt": f("b")}), [])
        self.assertIn("lost write", checker.check_history(h, {})[0])

    def test_a_deleted_file_stays_deleted(self):
        h = [w("n1", "f.txt", "a"), d("n2", "f.txt", observed="a")]
        self.assertEqual(checker.check_history(h, {}), [])
        self.assertIn("came back", checker.check_history(h, {"f.txt": f("a")})[0])

    def test_an_overwritten_version_does_not_come_back(self):
        h = [w("n1", "f.txt", "a"), w("n2", "f.txt", "b", observed="a")]
        problems = checker.check_history(h, {"f.txt": f("a"), COPY: f("b")})
        self.assertTrue(any("came back" in p for p in problems), problems)

    def test_unknown_content_is_reported(self):
        h = [w("n1", "f.txt", "a")]
        problems = checker.check_history(h, {"f.txt": f("a"), "g.txt": f("zz"),
                                             COPY: f("yy")})
        self.assertEqual(len(problems), 2, problems)

    def test_diverged_trees_and_temp_files_fail(self):
        h = [w("n1", "f.txt", "a")]
        self.assertEqual(checker.check(h, {"n1": {"f.txt": f("a")}, "n2": {"f.txt": f("a")}}),
                         [])
        self.assertTrue(checker.check(h, {"n1": {"f.txt": f("a")}, "n2": {}}))
        t = {"f.txt": f("a"), ".gossync-tmp/x.gossync-tmp": f("q")}
        self.assertTrue(any("temp file" in p for p in checker.check(h, {"n1": t})))


class WorkloadTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.a = types.SimpleNamespace(name="n1", data_dir=os.path.join(self.tmp.name, "a"))
        os.makedirs(self.a.data_dir)

    def tearDown(self):
        self.tmp.cleanup()

    def test_operations_record_what_they_displaced(self):
        wl = Workload(seed=7)
        first = wl.write(self.a, "d0/f0.txt")
        self.assertIsNone(first.observed)
        second = wl.write(self.a, "d0/f0.txt")
        self.assertEqual(second.observed, first.hash)
        moved = wl.rename(self.a, "d0/f0.txt", "d1/f1.txt")
        self.assertEqual([(o.kind, o.observed) for o in moved],
                         [("delete", second.hash), ("write", None)])
        self.assertEqual(moved[1].hash, second.hash)
        gone = wl.delete(self.a, "d1/f1.txt")
        self.assertEqual(gone.observed, second.hash)
        self.assertIsNone(wl.delete(self.a, "d1/f1.txt"))
        # The history checks out against what is on disk, and no temp is left.
        tree = fingerprint(self.a.data_dir)
        self.assertEqual(checker.check(wl.history, {"n1": tree}), [])

    def test_a_swap_sees_a_version_put_there_behind_its_back(self):
        wl = Workload(seed=8)
        wl.write(self.a, "f0.txt")
        with open(os.path.join(self.a.data_dir, "f0.txt"), "wb") as out:
            out.write(b"from a peer")  # as if the agent renamed it in
        op = wl.write(self.a, "f0.txt")
        import hashlib
        self.assertEqual(op.observed, hashlib.sha256(b"from a peer").hexdigest())

    def test_random_operations_stay_consistent(self):
        wl = Workload(seed=9)
        wl.run([self.a], 300)
        tree = fingerprint(self.a.data_dir)
        self.assertEqual(checker.check(wl.history, {"n1": tree}), [])
        self.assertFalse(wl.failed)


if __name__ == "__main__":
    unittest.main()
