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

    def test_probe_address_turns_a_wildcard_into_loopback(self):
        self.assertEqual(topology.probe_address("0.0.0.0"), "127.0.0.1")
        self.assertEqual(topology.probe_address("::"), "::1")
        self.assertEqual(topology.probe_address("10.0.0.5"), "10.0.0.5")
        self.assertEqual(topology.probe_address("[fd00::5]"), "fd00::5")

    def test_health_is_checked_from_the_edge_only_when_the_edge_can_reach_it(self):
        edges = ["edge1", "edge2"]
        self.assertEqual(topology.health_checkers("10.0.0.5", edges, "web1"), edges)
        self.assertEqual(topology.health_checkers("fd00::5", edges, "web1"), edges)
        self.assertEqual(topology.health_checkers("127.0.0.1", edges, "web1"), ["web1"])
        self.assertEqual(topology.health_checkers("0.0.0.0", edges, "web1"), ["web1"])
        self.assertEqual(topology.health_checkers("::", edges, "web1"), ["web1"])
        self.assertEqual(topology.health_checkers("10.0.0.5", [], "web1"), ["web1"])

    def test_nginx_times_in_seconds(self):
        self.assertEqual(topology.duration_seconds("10s"), 10)
        self.assertEqual(topology.duration_seconds("10"), 10)
        self.assertEqual(topology.duration_seconds(10), 10)
        self.assertEqual(topology.duration_seconds("2m"), 120)
        self.assertEqual(topology.duration_seconds("500ms"), 1)
        with self.assertRaises(ValueError):
            topology.duration_seconds("ten")

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


class Loopback(unittest.TestCase):
    HOSTVARS = {"box": {"wiring_private_address": "10.0.0.5"}, "db": {"wiring_private_address": "10.0.0.41"}}

    def test_clients_on_the_same_host_use_loopback(self):
        self.assertTrue(topology.serves_only_itself("box", ["box", "box"]))
        self.assertEqual(topology.reach("box", ["box"], self.HOSTVARS), "127.0.0.1")

    def test_one_client_elsewhere_makes_it_the_private_address(self):
        self.assertFalse(topology.serves_only_itself("db", ["db", "box"]))
        self.assertEqual(topology.reach("db", ["box", "db"], self.HOSTVARS), "10.0.0.41")

    def test_private_addresses(self):
        for good in ["10.1.2.3", "172.31.255.1", "192.168.0.9", "100.64.0.1", "fd00::5", "[fd12::1]"]:
            self.assertTrue(topology.is_private_address(good), good)
        for bad in ["203.0.113.5", "172.32.0.1", "100.128.0.1", "127.0.0.1", "2001:db8::1", "fe80::1", "db.internal", None]:
            self.assertFalse(topology.is_private_address(bad), bad)

    def test_no_host_no_address(self):
        self.assertFalse(topology.serves_only_itself("", ["box"]))
        self.assertEqual(topology.reach("", ["box"], self.HOSTVARS), "")


class Firewall(unittest.TestCase):
    GROUPS = {"proxy": ["edge"], "web": ["web1", "web2"], "streaming": ["web1"], "sidekiq": ["sk"],
              "db_primary": ["db1"], "db_replica": ["db2"], "pgbouncer": ["db1"], "redis": ["rd"],
              "object_storage": ["s3"], "monitoring": ["mon"]}

    def hostvars(self, **extra):
        addresses = {"edge": "10.0.0.10", "web1": "10.0.0.21", "web2": "10.0.0.22", "sk": "10.0.0.31",
                     "db1": "10.0.0.41", "db2": "fd00::42", "rd": "10.0.0.51", "s3": "10.0.0.61", "mon": "10.0.0.71"}
        defaults = {"postgres_port": 5432, "pgbouncer_port": 6432, "mastodon_web_port": 3000,
                    "mastodon_streaming_ports": [4000, 4001], "object_storage_swift_port": 8080,
                    "object_storage_backend": "swift",
                    "redis_instances": [{"name": "main", "port": 6379}, {"name": "cache", "port": 6380}],
                    "exporters_node_port": 9100, "exporters_postgres_port": 9187, "exporters_pgbouncer_port": 9127,
                    "exporters_redis_first_port": 9121, "exporters_nginx_port": 9113, "exporters_edge_log_port": 3903,
                    "mastodon_prometheus_exporter_enabled": True, "mastodon_prometheus_exporter_port": 9394,
                    "monitoring_prometheus_port": 9090, "monitoring_alertmanager_port": 9093}
        return {h: dict(defaults, **{"wiring_private_address": a, "wiring_proxied_address": a, **extra.get(h, {})})
                for h, a in addresses.items()}

    def services(self, host, groups=None, metrics=False, **extra):
        """Openings by name; the metrics endpoints' only when asked (every host has them)."""
        return {s["name"]: (s["ports"], s["sources"])
                for s in topology.firewall_services(host, groups or self.GROUPS, self.hostvars(**extra))
                if metrics or s["name"] != "metrics"}

    def test_each_port_only_to_the_hosts_wired_to_it(self):
        app = ["10.0.0.21", "10.0.0.22", "10.0.0.31"]
        # The primary: PostgreSQL to the app and the replica (the pooler is itself), PgBouncer to the app.
        self.assertEqual(self.services("db1"), {"postgresql": ([5432], app + ["fd00::42"]), "pgbouncer": ([6432], app)})
        self.assertEqual(self.services("db2"), {"postgresql": ([5432], ["10.0.0.41"] + app)})
        self.assertEqual(self.services("rd"), {"redis": ([6379, 6380], app)})
        self.assertEqual(self.services("web1"), {"puma": ([3000], ["10.0.0.10"]), "streaming": ([4000, 4001], ["10.0.0.10"])})
        self.assertEqual(self.services("web2"), {"puma": ([3000], ["10.0.0.10"])})
        self.assertEqual(self.services("s3"), {"object storage": ([8080], app + ["10.0.0.10"])})
        # Nothing is served to other hosts from the edge, a Sidekiq host or the monitoring host.
        for host in ["edge", "sk", "mon"]:
            self.assertEqual(self.services(host), {}, host)

    def test_metrics_endpoints_open_to_the_monitoring_hosts(self):
        self.assertEqual(self.services("rd", metrics=True)["metrics"], ([9100, 9121, 9122], ["10.0.0.71"]))
        self.assertEqual(self.services("web1", metrics=True)["metrics"], ([4000, 4001, 9100, 9394], ["10.0.0.71"]))
        self.assertEqual(self.services("edge", metrics=True)["metrics"], ([3903, 9100, 9113], ["10.0.0.71"]))
        self.assertNotIn("metrics", self.services("rd", {**self.GROUPS, "monitoring": []}, metrics=True))
        # The monitoring host scrapes itself over loopback: nothing to open.
        self.assertNotIn("metrics", self.services("mon", metrics=True))

    def test_monitoring_web_pages_open_to_the_operators_networks_only(self):
        self.assertEqual(self.services("mon", mon={"monitoring_web_sources": ["192.0.2.0/24"]})["monitoring web"],
                         ([9090, 9093], ["192.0.2.0/24"]))
        self.assertNotIn("monitoring web", self.services("mon"))

    def test_a_service_whose_clients_all_share_its_host_opens_nothing(self):
        one_box = {g: ["box"] for g in ["proxy", "web", "streaming", "sidekiq", "db_primary", "pgbouncer", "redis"]}
        hostvars = self.hostvars()
        hostvars["box"] = dict(hostvars["web1"], wiring_private_address="10.0.0.5")
        self.assertEqual(topology.firewall_services("box", one_box, hostvars), [])

    def test_external_object_storage_opens_no_port(self):
        self.assertEqual(self.services("s3", s3={"object_storage_backend": "external"}), {})

    def test_a_name_instead_of_an_address_is_refused(self):
        with self.assertRaisesRegex(ValueError, r"rd's redis clients: 'web1.internal' is not an IP address"):
            self.services("rd", web1={"wiring_private_address": "web1.internal"})

    def test_the_backup_host_reaches_pgbackrest_redis_main_and_the_bucket(self):
        groups = {**self.GROUPS, "backup": ["bk"]}
        hostvars = self.hostvars(bk={"wiring_private_address": "10.0.0.81"})
        hostvars["bk"] = dict(hostvars["mon"], wiring_private_address="10.0.0.81")
        for h in hostvars:
            hostvars[h].update(pgbackrest_port=8432, exporters_pgbackrest_port=9854,
                               redis_instances=[{"name": "main", "profile": "main", "port": 6379},
                                                {"name": "cache", "profile": "cache", "port": 6380}])

        def services(host):
            return {s["name"]: (s["ports"], s["sources"]) for s in topology.firewall_services(host, groups, hostvars)}
        self.assertEqual(services("db1")["pgbackrest"], ([8432], ["10.0.0.81"]))
        self.assertEqual(services("db2")["pgbackrest"], ([8432], ["10.0.0.81"]))
        # The repository: WAL pushed and backups fetched by every database host.
        self.assertEqual(services("bk")["pgbackrest repository"], ([8432], ["10.0.0.41", "fd00::42"]))
        # Only the main instance's port (the cache holds nothing worth a copy).
        self.assertEqual(services("rd")["redis backup"], ([6379], ["10.0.0.81"]))
        self.assertIn("10.0.0.81", services("s3")["object storage"][1])
        self.assertEqual([e["port"] for e in topology.metrics_endpoints("bk", groups, hostvars) if e["job"] == "pgbackrest"], [9854])
        # Without a backup host nothing of this is open.
        self.assertNotIn("pgbackrest", self.services("db1"))
        self.assertNotIn("redis backup", self.services("rd"))

    def test_a_new_redis_host_replicates_the_main_instance_only(self):
        groups = {**self.GROUPS, "redis_replica": ["rd2"]}
        hostvars = self.hostvars(rd={"redis_instances": [{"name": "main", "profile": "main", "port": 6379},
                                                         {"name": "cache", "profile": "cache", "port": 6380}]})
        hostvars["rd2"] = dict(hostvars["rd"], wiring_private_address="10.0.0.52")
        services = {s["name"]: (s["ports"], s["sources"]) for s in topology.firewall_services("rd", groups, hostvars)}
        self.assertEqual(services["redis replication"], ([6379], ["10.0.0.52"]))
        # Before the move, the app does not reach the new host.
        self.assertEqual([s for s in topology.firewall_services("rd2", groups, hostvars) if s["name"] != "metrics"], [])
        self.assertNotIn("redis replication", self.services("rd"))

    def test_a_repository_key_needs_32_characters(self):
        self.assertTrue(topology.is_cipher_pass("a" * 32))
        self.assertFalse(topology.is_cipher_pass("a" * 31))
        self.assertFalse(topology.is_cipher_pass(None))

    def test_the_backup_host_copies_the_main_redis_instances_only(self):
        hostvars = self.hostvars(rd={"redis_instances": [{"name": "main", "profile": "main", "port": 6379},
                                                         {"name": "cache", "profile": "cache", "port": 6380}]})
        self.assertEqual(topology.backup_redis_instances(self.GROUPS, hostvars),
                         [{"name": "main", "address": "10.0.0.51", "port": 6379}])
        self.assertEqual(topology.backup_redis_instances({**self.GROUPS, "redis": []}, hostvars), [])

    def test_pgbackrest_reaches_the_primary_first_then_each_replica(self):
        hostvars = self.hostvars(db1={"pgbackrest_pg_path": "/var/lib/postgresql/17/main"})
        self.assertEqual(topology.pgbackrest_pg_hosts(self.GROUPS, hostvars), [
            {"host": "db1", "address": "10.0.0.41", "path": "/var/lib/postgresql/17/main", "port": 5432},
            {"host": "db2", "address": "fd00::42", "path": "", "port": 5432}])

    def test_families_and_membership(self):
        self.assertEqual(topology.split_families(["0.0.0.0/0", "::/0", "10.0.0.5", "10.0.0.5/32", "fd00::/8"]),
                         {"ipv4": ["0.0.0.0/0", "10.0.0.5"], "ipv6": ["::/0", "fd00::/8"]})
        self.assertTrue(topology.address_in("10.0.0.5", ["192.168.0.0/16", "10.0.0.0/24"]))
        self.assertTrue(topology.address_in("fd00::1", ["fd00::1"]))
        self.assertFalse(topology.address_in("10.0.1.5", ["10.0.0.0/24", "::/0"]))
        self.assertEqual(topology.bad_networks(["10.0.0.0/8", "::/0", "10.0.0.300", "office", 7]), ["10.0.0.300", "office", 7])

    def test_openings_ssh_then_public_then_services(self):
        redis = {"name": "redis", "ports": [6379], "sources": ["10.0.0.21"]}
        self.assertEqual(topology.firewall_openings(2222, ["10.9.0.0/16"], [80, 443], [redis]), [
            {"name": "ssh", "ports": [2222], "sources": ["10.9.0.0/16"]},
            {"name": "public", "ports": [80, 443], "sources": ["0.0.0.0/0", "::/0"]}, redis])
        self.assertEqual(len(topology.firewall_openings(22, ["0.0.0.0/0"], [], [])), 1)

    def test_nft_rules_one_per_family_with_a_set_of_ports(self):
        rules = topology.nft_accept_rules([
            {"name": "ssh", "ports": [22], "sources": ["0.0.0.0/0", "::/0"]},
            {"name": "redis", "ports": [6380, 6379, 6379], "sources": ["10.0.0.21", "10.0.0.22/32"]},
            {"name": "wg \"vpn\"", "ports": [51820], "sources": ["fd00::/8"], "protocol": "udp"}])
        self.assertEqual(rules, [
            'ip saddr { 0.0.0.0/0 } tcp dport 22 accept comment "ssh"',
            'ip6 saddr { ::/0 } tcp dport 22 accept comment "ssh"',
            'ip saddr { 10.0.0.21, 10.0.0.22 } tcp dport { 6379, 6380 } accept comment "redis"',
            'ip6 saddr { fd00::/8 } udp dport 51820 accept comment "wg vpn"'])


if __name__ == "__main__":
    unittest.main()


class Metrics(unittest.TestCase):
    """Scrape targets and the exporters' addresses (topology.metrics_endpoints, scrape_jobs)."""
    GROUPS = Firewall.GROUPS

    def hostvars(self):
        return Firewall().hostvars()

    def test_each_host_serves_the_endpoints_of_what_it_runs(self):
        jobs = {e["job"]: e for e in topology.metrics_endpoints("db1", self.GROUPS, self.hostvars())}
        self.assertEqual(sorted(jobs), ["node", "pgbouncer", "postgres"])
        self.assertEqual(jobs["postgres"]["labels"], {"role": "primary"})
        self.assertEqual(jobs["node"]["address"], "10.0.0.41")
        redis = [e for e in topology.metrics_endpoints("rd", self.GROUPS, self.hostvars()) if e["job"] == "redis"]
        self.assertEqual([(e["port"], e["labels"]) for e in redis],
                         [(9121, {"redis_instance": "main"}), (9122, {"redis_instance": "cache"})])
        sk = {e["job"]: e for e in topology.metrics_endpoints("sk", self.GROUPS, self.hostvars())}
        self.assertEqual(sk["mastodon"]["labels"], {"serves": "sidekiq"})

    def test_the_monitoring_host_scrapes_its_own_exporters_over_loopback(self):
        groups = dict(self.GROUPS, monitoring=["db1"])
        self.assertEqual({e["address"] for e in topology.metrics_endpoints("db1", groups, self.hostvars())}, {"127.0.0.1"})

    def test_scrape_jobs_label_each_target_with_its_host(self):
        jobs = {j["job_name"]: j["static_configs"] for j in topology.scrape_jobs(["web1", "db2"], self.GROUPS, self.hostvars())}
        self.assertEqual(jobs["streaming"], [{"targets": ["10.0.0.21:4000"], "labels": {"host": "web1"}},
                                             {"targets": ["10.0.0.21:4001"], "labels": {"host": "web1"}}])
        self.assertEqual(jobs["postgres"], [{"targets": ["[fd00::42]:9187"], "labels": {"role": "replica", "host": "db2"}}])
        self.assertEqual(jobs["mastodon"][0]["labels"], {"serves": "web", "host": "web1"})


class UnitsNoLongerServed(unittest.TestCase):
    def test_the_moved_box_stops_the_data_tier_the_edge_and_their_exporters(self):
        groups = {"proxy": ["edge"], "web": ["web1"], "db_primary": ["db1"], "db_replica": ["box"],
                  "pgbouncer": ["db1"], "redis": ["redis1"]}
        self.assertEqual(topology.units_no_longer_served("box", groups), [
            "mastodon-*", "redis@*", "prometheus-redis-exporter*", "pgbouncer.service",
            "prometheus-pgbouncer-exporter.service", "nginx.service", "prometheus-nginx-exporter.service",
            "mtail.service"])

    def test_what_a_host_still_serves_keeps_running(self):
        groups = {"proxy": ["box"], "sidekiq": ["box"], "pgbouncer": ["db1"], "redis_replica": ["box"]}
        self.assertEqual(topology.units_no_longer_served("box", groups),
                         ["pgbouncer.service", "prometheus-pgbouncer-exporter.service"])

    def test_a_missing_group_counts_as_empty(self):
        self.assertIn("mastodon-*", topology.units_no_longer_served("box", {"web": None}))


class Switchover(unittest.TestCase):
    def test_planned_switchover_fences_the_running_primary_and_rewinds_it(self):
        plan = topology.switchover_plan({"db1": "primary", "db2": "standby", "db3": "standby"}, "db2")
        self.assertEqual(plan, {"promote": True, "fence": ["db1"], "failover": False, "rewind": ["db1"], "errors": []})

    def test_failover_rewinds_every_other_host(self):
        plan = topology.switchover_plan({"db2": "standby", "db3": "standby"}, "db2")
        self.assertEqual(plan, {"promote": True, "fence": [], "failover": True, "rewind": ["db3"], "errors": []})

    def test_a_returning_former_primary_is_rewound_and_nothing_is_promoted(self):
        for returning in ["primary-stopped", "primary", "standby-stopped"]:
            plan = topology.switchover_plan({"db1": "primary", "db2": returning, "db3": "standby"}, "db1")
            self.assertEqual(plan, {"promote": False, "fence": [], "failover": False, "rewind": ["db2"], "errors": []})

    def test_a_fresh_replica_is_left_to_the_clone(self):
        plan = topology.switchover_plan({"db1": "primary", "db2": "none"}, "db1")
        self.assertEqual(plan["rewind"], [])

    def test_refuses_a_new_primary_that_does_not_run_or_is_unknown(self):
        for state in ["primary-stopped", "standby-stopped", "none"]:
            plan = topology.switchover_plan({"db1": "primary", "db2": state}, "db2")
            self.assertIn("db2 must run PostgreSQL", plan["errors"][0])
        self.assertIn("not a database host", topology.switchover_plan({"db1": "primary"}, "db9")["errors"][0])

    def test_refuses_two_running_primaries(self):
        plan = topology.switchover_plan({"db1": "primary", "db2": "standby", "db3": "primary"}, "db2")
        self.assertIn("db1, db3 all run as primaries", plan["errors"][0])
