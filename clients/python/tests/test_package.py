"""The package's one version and its command-line entry points.

The version is written once, as awa_client.__version__; pyproject.toml takes it from there.
When the package is installed (test/integration/python_package.sh installs it into a
virtual environment), the installed metadata and the awa-worker console script are checked too.
"""
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import unittest

import awa_client
from support import PACKAGE_ROOT, subprocess_env


def _installed_distribution():
    """The installed awa-client distribution that awa_client was imported from, or None."""
    try:
        dist = importlib.metadata.distribution("awa-client")
    except importlib.metadata.PackageNotFoundError:
        return None
    init = os.path.realpath(str(dist.locate_file("awa_client/__init__.py")))
    return dist if init == os.path.realpath(awa_client.__file__) else None


def _pyproject():
    with open(os.path.join(PACKAGE_ROOT, "pyproject.toml")) as f:
        return f.read()


class VersionTests(unittest.TestCase):
    def test_version_is_a_release_number(self):
        self.assertRegex(awa_client.__version__, r"^\d+\.\d+\.\d+$")

    def test_pyproject_reads_the_version_from_awa_client(self):
        text = _pyproject()
        self.assertRegex(text, r'(?m)^dynamic = \["version"\]$')
        self.assertRegex(text, r'(?m)^version = \{attr = "awa_client\.__version__"\}$')
        self.assertIsNone(re.search(r'(?m)^version = "', text), "a second, literal version")

    def test_installed_metadata_has_the_same_version(self):
        dist = _installed_distribution()
        if dist is None:
            self.skipTest("awa_client is not imported from an installed awa-client distribution"
                          " (pip install ./clients/python to check the installed metadata)")
        self.assertEqual(dist.version, awa_client.__version__)


class EntryPointTests(unittest.TestCase):
    def run_help(self, argv):
        p = subprocess.run(argv + ["--help"], env=subprocess_env(), capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def test_python_m_awa_worker(self):
        out = self.run_help([sys.executable, "-m", "awa_worker"])
        self.assertTrue(out.startswith("usage: python -m awa_worker "), out[:200])
        self.assertIn("--module", out)

    def test_awa_worker_console_script(self):
        dist = _installed_distribution()
        if dist is None:
            self.skipTest("awa_client is not imported from an installed awa-client distribution"
                          " (pip install ./clients/python to check the awa-worker script)")
        scripts = [ep for ep in dist.entry_points if ep.group == "console_scripts"]
        self.assertEqual([(ep.name, ep.value) for ep in scripts],
                         [("awa-worker", "awa_worker.__main__:main")])
        exe = shutil.which("awa-worker", path=os.path.dirname(sys.executable))
        self.assertIsNotNone(exe, "awa-worker next to %s" % sys.executable)
        out = self.run_help([exe])
        self.assertTrue(out.startswith("usage: awa-worker "), out[:200])

    def test_no_handler_is_an_error(self):
        p = subprocess.run([sys.executable, "-m", "awa_worker", "--module", "json"], env=subprocess_env(),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("the modules registered no handler", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
