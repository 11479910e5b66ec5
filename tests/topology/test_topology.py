"""Unit tests of plugins/filter/topology.py. Run by `make lint`, or:
python3 -m unittest discover -s tests/topology"""
import importlib.util
import pathlib
import unittest

_PATH = pathlib.Path(__file__).resolve().parents[2] / "plugins/filter/topology.py"
_SPEC = importlib.util.spec_from_file_location("topology", _PATH)
topology = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(topology)


class Names(unittest.TestCase):
    def test_dns_names_need_two_lowercase_labels(self):
        for good in ["example.com", "social.example.co.uk", "a-b.test", "xn--bcher-kva.example"]:
            self.assertTrue(topology.is_dns_name(good), good)
        for bad in ["localhost", "Example.com", "-a.com", "a..com", "10.0.0.1", "a.com.", "", None, 5,
                    "a" * 64 + ".com", ("a." * 127) + "com"]:
            self.assertFalse(topology.is_dns_name(bad), bad)

    def test_bucket_names(self):
        self.assertTrue(topology.is_bucket_name("mastodon-media"))
        for bad in ["ab", "Media", "-media", "media-", "a" * 64, None]:
            self.assertFalse(topology.is_bucket_name(bad), bad)

    def test_secrets_have_a_minimum_length_and_may_be_numbers(self):
        self.assertTrue(topology.is_secret("x" * 16))
        self.assertFalse(topology.is_secret("x" * 15))
        self.assertTrue(topology.is_secret(1234567890123456))
        self.assertFalse(topology.is_secret(True))
        self.assertFalse(topology.is_secret(None))
        self.assertTrue(topology.is_secret("abc", 1))


class Addresses(unittest.TestCase):
    def test_ipv6_in_brackets_ipv4_and_names_unchanged(self):
        self.assertEqual(topology.host_address("fd00::1"), "[fd00::1]")
        self.assertEqual(topology.host_address("[fd00::1]"), "[fd00::1]")
        self.assertEqual(topology.host_address("10.0.0.5"), "10.0.0.5")
        self.assertEqual(topology.host_address("db.internal"), "db.internal")
        self.assertEqual(topology.host_port("fd00::1", 6432), "[fd00::1]:6432")
        self.assertEqual(topology.url("http", "fd00::2", 8080, "/x"), "http://[fd00::2]:8080/x")
        self.assertEqual(topology.url("redis", "10.0.0.2"), "redis://10.0.0.2")

    def test_backends_expand_every_port_of_every_host_in_order(self):
        hostvars = {
            "web1": {"wiring_private_address": "10.0.0.1", "mastodon_web_port": 3000, "mastodon_streaming_ports": [4000, 4001]},
            "web2": {"wiring_private_address": "fd00::2", "mastodon_web_port": 3000, "mastodon_streaming_ports": [4000]},
            "web3": {"wiring_private_address": "10.0.0.3", "mastodon_web_port": 3100},
        }
        self.assertEqual(topology.backends(["web1", "web2"], hostvars, "mastodon_streaming_ports"),
                         ["10.0.0.1:4000", "10.0.0.1:4001", "[fd00::2]:4000"])
        self.assertEqual(topology.backends(["web2", "web3"], hostvars, "mastodon_web_port"),
                         ["[fd00::2]:3000", "10.0.0.3:3100"])
        self.assertEqual(topology.backends([], hostvars, "mastodon_web_port"), [])
        self.assertEqual(topology.backends(None, hostvars, "mastodon_web_port"), [])


class ObjectStorage(unittest.TestCase):
    def test_endpoint_swift_or_external(self):
        self.assertEqual(topology.s3_endpoint(False, "", "10.0.0.9", 8080), "http://10.0.0.9:8080")
        self.assertEqual(topology.s3_endpoint(False, "", "fd00::9", 8081), "http://[fd00::9]:8081")
        self.assertEqual(topology.s3_endpoint(False, "", "", None), "")
        self.assertEqual(topology.s3_endpoint(True, "https://s3.example.com//", "", None), "https://s3.example.com")

    def test_public_url(self):
        self.assertEqual(topology.s3_public_url("http://10.0.0.9:8080", "media", access_key_id="mastodon:media"),
                         "http://10.0.0.9:8080/v1/AUTH_mastodon/media")
        self.assertEqual(topology.s3_public_url("https://s3.example.com", "media", external=True),
                         "https://s3.example.com/media")
        self.assertEqual(topology.s3_public_url("https://s3.example.com", "media", True, "https://cdn.example.com/m/"),
                         "https://cdn.example.com/m")
        self.assertEqual(topology.s3_public_url("", "media"), "")


class Sidekiq(unittest.TestCase):
    KNOWN = ["default", "push", "ingress", "scheduler"]

    def test_instances_one_per_count(self):
        self.assertEqual(topology.sidekiq_instances([{"name": "ingress", "queues": ["ingress"], "count": 2},
                                                     {"name": "all", "queues": ["default"], "concurrency": 25}]),
                         [{"instance": "ingress-1", "queues": ["ingress"], "concurrency": 5},
                          {"instance": "ingress-2", "queues": ["ingress"], "concurrency": 5},
                          {"instance": "all-1", "queues": ["default"], "concurrency": 25}])
        self.assertEqual(topology.sidekiq_instances(None), [])

    def test_a_good_fleet_has_no_problem(self):
        fleet = {"s1": [{"name": "a", "queues": ["default,8", "push,2", "scheduler"]}],
                 "s2": [{"name": "in", "queues": ["ingress"], "count": 6}]}
        self.assertEqual(topology.sidekiq_fleet_problems(fleet, self.KNOWN), [])

    def test_scheduler_counts_every_process_of_every_host(self):
        fleet = {"s1": [{"name": "a", "queues": ["default", "push", "ingress", "scheduler"], "count": 2}],
                 "s2": [{"name": "b", "queues": ["scheduler"]}]}
        problems = topology.sidekiq_fleet_problems(fleet, self.KNOWN)
        self.assertEqual(len(problems), 1)
        self.assertIn("but 3 do (s1:a, s2:b)", problems[0])

    def test_unknown_and_unserved_queues(self):
        fleet = {"s1": [{"name": "a", "queues": ["default", "scheduler", "pushh"]}]}
        self.assertEqual(topology.sidekiq_fleet_problems(fleet, self.KNOWN)[0],
                         "Unknown queue(s) pushh: Mastodon has default, push, ingress, scheduler.")
        self.assertRegex(topology.sidekiq_fleet_problems(fleet, self.KNOWN)[1], r"^No process serves push, ingress: ")

    def test_inventory_hosts_fall_back_to_the_default_processes(self):
        hostvars = {"s1": {}, "s2": {"mastodon_sidekiq_processes": [{"name": "b", "queues": ["scheduler"]}]}}
        default = [{"name": "all", "queues": ["default", "push", "ingress", "scheduler"]}]
        self.assertIn("but 2 do (s1:all, s2:b)",
                      topology.sidekiq_fleet_problems_of(["s1", "s2"], hostvars, default, self.KNOWN)[0])



class ConnectionBudget(unittest.TestCase):
    def test_pg_reserved_slots(self):
        self.assertEqual(topology.pg_reserved_slots({}), 3)
        self.assertEqual(topology.pg_reserved_slots(None), 3)
        self.assertEqual(topology.pg_reserved_slots({"superuser_reserved_connections": 5, "reserved_connections": 2}), 7)

    def test_pgbouncer_server_connections(self):
        # One database with the default pool: (20 + 5) for one user.
        self.assertEqual(topology.pgbouncer_server_connections([{}], 20, 5, 1), (25, [(20, 5)]))
        # A database's own pool_size wins; every auth user has its own pools.
        self.assertEqual(topology.pgbouncer_server_connections([{"pool_size": 40}, {}], 20, 5, 2),
                         (140, [(40, 5), (20, 5)]))
        # max_db_connections caps each database.
        self.assertEqual(topology.pgbouncer_server_connections([{"pool_size": 40}], 20, 5, 2, 50), (50, [(40, 5)]))
        # No databases listed: one default pool, as PgBouncer's auto-database.
        self.assertEqual(topology.pgbouncer_server_connections([], 20, 0, 0), (20, [(20, 0)]))


if __name__ == "__main__":
    unittest.main()
