"""cached_fixture.py: a script runs once per inputs, a changed script, argument or model runs it
again (an SVD cache written beside the model does not), a failed run caches nothing, and a test
writing into its copy leaves the cache alone."""
import os
import pathlib
import subprocess
import sys
import tempfile
import unittest

WRAPPER = pathlib.Path(__file__).with_name("cached_fixture.py")

SCRIPT = """
import argparse, pathlib
p = argparse.ArgumentParser()
p.add_argument("--out", type=pathlib.Path, required=True)
p.add_argument("--value", default="a")
p.add_argument("--fail", action="store_true")
a = p.parse_args()
runs = pathlib.Path(__file__).with_name("runs")
runs.write_text(runs.read_text() + "x" if runs.exists() else "x")
if a.fail:
    raise SystemExit(3)
a.out.mkdir(parents=True)
(a.out / "data.txt").write_text(a.value + "{marker}")
"""


class CachedFixtureTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = pathlib.Path(self.tmp.name)
        (self.root / "scripts").mkdir()
        self.script = self.root / "scripts" / "make_data.py"
        self.script.write_text(SCRIPT.format(marker=""))
        self.env = dict(os.environ, T2_HOME=str(self.root / "home"))
        self.env.pop("T2_FIXTURE_CACHE", None)

    def tearDown(self):
        self.tmp.cleanup()

    def run_wrapper(self, out, *args, env=None):
        return subprocess.run([sys.executable, str(WRAPPER), "--out", str(out), "--", str(self.script), *args],
                              env=env or self.env, capture_output=True, text=True, timeout=60)

    def runs(self):
        path = self.root / "scripts" / "runs"
        return len(path.read_text()) if path.exists() else 0

    def test_runs_once_per_inputs(self):
        out = self.root / "out"
        for _ in range(2):
            self.assertEqual(self.run_wrapper(out).returncode, 0)
            self.assertEqual((out / "data.txt").read_text(), "a")
        self.assertEqual(self.runs(), 1)
        self.assertEqual(self.run_wrapper(out, "--value", "b").returncode, 0)
        self.assertEqual((out / "data.txt").read_text(), "b")
        self.assertEqual(self.runs(), 2)
        self.script.write_text(SCRIPT.format(marker="!"))
        self.assertEqual(self.run_wrapper(out).returncode, 0)
        self.assertEqual((out / "data.txt").read_text(), "a!")
        self.assertEqual(self.runs(), 3)
        self.assertFalse((out / ".complete").exists())

    def test_a_changed_model_runs_again_and_an_svd_cache_beside_it_does_not(self):
        models = self.root / "home" / "models"
        models.mkdir(parents=True)
        (models / "model.gguf").write_bytes(b"1234")
        out = self.root / "out"
        self.assertEqual(self.run_wrapper(out).returncode, 0)
        # What t2 writes beside a model the first time it decomposes it (svf/decomposition.h).
        (models / "0123456789abcdef.mlp.svd.safetensors").write_bytes(b"derived")
        self.assertEqual(self.run_wrapper(out).returncode, 0)
        self.assertEqual(self.runs(), 1)
        (models / "model.gguf").write_bytes(b"12345")
        self.assertEqual(self.run_wrapper(out).returncode, 0)
        self.assertEqual(self.runs(), 2)

    def test_disabled_cache_runs_every_time(self):
        env = dict(self.env, T2_FIXTURE_CACHE="0")
        for _ in range(2):
            self.assertEqual(self.run_wrapper(self.root / "out", env=env).returncode, 0)
        self.assertEqual(self.runs(), 2)

    def test_a_failed_run_caches_nothing(self):
        result = self.run_wrapper(self.root / "out", "--fail")
        self.assertEqual(result.returncode, 3)
        self.assertEqual(self.run_wrapper(self.root / "out", "--fail").returncode, 3)
        self.assertEqual(self.runs(), 2)
        self.assertEqual(list((self.root / "home" / "fixture-cache").iterdir()), [])

    def test_writing_into_the_copy_leaves_the_cache_alone(self):
        out = self.root / "out"
        self.assertEqual(self.run_wrapper(out).returncode, 0)
        (out / "data.txt").write_text("changed by a test")
        self.assertEqual(self.run_wrapper(out).returncode, 0)
        self.assertEqual((out / "data.txt").read_text(), "a")
        self.assertEqual(self.runs(), 1)


if __name__ == "__main__":
    unittest.main()
