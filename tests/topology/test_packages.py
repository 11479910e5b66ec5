"""Unit tests of plugins/filter/packages.py. Run by `make lint`, or:
python3 -m unittest discover -s tests/topology"""
import importlib.util
import pathlib
import unittest

_PATH = pathlib.Path(__file__).resolve().parents[2] / "plugins/filter/packages.py"
_SPEC = importlib.util.spec_from_file_location("packages", _PATH)
packages = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(packages)

# dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' on a Debian 13 host, trimmed.
PROBE = {"stdout": (
    "ii  nftables\n"
    "ii  postgresql-17\n"
    "rc  redis-server\n"        # removed, its configuration kept
    "iU  pgbouncer\n"           # unpacked, not configured
    "iiR prometheus\n"          # installed, reinstall required
    "un  rclone\n"              # known, never installed
)}


class AnyPackageMissing(unittest.TestCase):
    def test_only_fully_installed_packages_count(self):
        self.assertEqual(packages.installed_packages(PROBE["stdout"]), {"nftables", "postgresql-17"})

    def test_nothing_to_do_when_every_package_is_installed(self):
        self.assertFalse(packages.any_package_missing(["postgresql-17", "nftables"], PROBE))
        self.assertFalse(packages.any_package_missing("nftables", PROBE))

    def test_one_missing_package_is_enough(self):
        for name in ["rclone", "redis-server", "pgbouncer", "prometheus", "not-in-dpkg"]:
            self.assertTrue(packages.any_package_missing(["nftables", name], PROBE), name)
        self.assertTrue(packages.any_package_missing("rclone", PROBE))

    def test_versions_and_releases_are_left_to_apt(self):
        self.assertTrue(packages.any_package_missing(["nftables=1.1.1-1"], PROBE))
        self.assertTrue(packages.any_package_missing(["nftables/trixie"], PROBE))

    def test_without_a_probe_apt_decides(self):
        self.assertTrue(packages.any_package_missing(["nftables"], None))
        self.assertTrue(packages.any_package_missing(["nftables"], {"skipped": True}))
        self.assertTrue(packages.any_package_missing(["nftables"], {"stdout": ""}))


if __name__ == "__main__":
    unittest.main()
