"""Unit tests of roles/preflight/filter_plugins/preflight.py (plain data in, problems and budget out).
Run by tests/preflight/run, or: python3 -m unittest discover -s tests/preflight"""
import base64
import importlib.util
import pathlib
import unittest

_PATH = pathlib.Path(__file__).resolve().parents[2] / "roles/preflight/filter_plugins/preflight.py"
_SPEC = importlib.util.spec_from_file_location("preflight_filters", _PATH)
pf = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(pf)

SECRETS = {name: {"length": 32, "placeholder": False} for name in [
    "mastodon_db_password", "redis_app_password", "redis_admin_password", "redis_monitor_password", "pgbouncer_stats_password",
    "postgres_replication_password", "object_storage_access_key_id", "object_storage_secret_access_key",
    "object_storage_swift_hash_path_suffix", "redis_backup_password", "pgbackrest_repo_cipher_pass"]}
DEBIAN = {"distribution": "Debian", "version": "12", "arch": "x86_64"}


def host(groups, address, **settings):
    base = {"mastodon_local_domain": "example.test", "mastodon_trusted_proxy_ips": ["10.0.0.10"],
            "mastodon_web_concurrency": 2, "mastodon_web_max_threads": 5,
            "mastodon_sidekiq_processes": [{"name": "all", "queues": ["default", "scheduler"], "concurrency": 10}],
            "mastodon_sidekiq_known_queues": ["default", "scheduler"],
            "mastodon_streaming_ports": [4000], "mastodon_streaming_db_pool": 10,
            "pgbouncer_max_client_conn": 1000, "pgbouncer_default_pool_size": 20, "pgbouncer_reserve_pool_size": 5,
            "pgbouncer_max_db_connections": 0, "pgbouncer_databases": [{"name": "mastodon_production"}],
            "pgbouncer_auth_users": ["mastodon"], "pgbouncer_settings": {},
            "postgres_max_connections": 100, "postgres_settings": {},
            # The release and the project's defaults for it: NodeSource's Node 24, Ruby from rbenv at the
            # checkout's .ruby-version, Debian's PostgreSQL.
            "mastodon_version": "v4.6.5", "mastodon_node_source": "nodesource", "mastodon_node_major": 24,
            "mastodon_ruby_source": "rbenv", "mastodon_ruby_version": "", "postgres_version": ""}
    base.update(settings)
    return {"groups": groups, "in_run": True, "address": address, "os": dict(DEBIAN), "settings": base,
            "secrets": {k: dict(v) for k, v in SECRETS.items()}, "env": {"state": "absent"}}


def inventory(**overrides):
    """edge (proxy), app (web, streaming, sidekiq), db1 (primary, pgbouncer, redis), db2 (replica)."""
    hosts = {
        "edge": host(["mastodon", "proxy"], "10.0.0.10"),
        "app": host(["mastodon", "web", "streaming", "sidekiq"], "10.0.0.21"),
        "db1": host(["mastodon", "db_primary", "pgbouncer", "redis"], "10.0.0.41"),
        "db2": host(["mastodon", "db_replica"], "10.0.0.42"),
    }
    groups = {"all": list(hosts), "proxy": ["edge"], "web": ["app"], "streaming": ["app"], "sidekiq": ["app"],
              "db_primary": ["db1"], "db_replica": ["db2"], "pgbouncer": ["db1"], "redis": ["db1"]}
    data = {"groups": groups, "hosts": hosts, "admin_connections": 10}
    for key, value in overrides.items():
        data[key] = value
    return data


def assert_one_problem(test, data, text):
    """The report on data has exactly one problem, and it says text."""
    problems = pf.preflight_report(data)["problems"]
    test.assertEqual(len(problems), 1, problems)
    test.assertIn(text, problems[0])


class Budget(unittest.TestCase):
    def test_good_inventory_has_no_problem(self):
        report = pf.preflight_report(inventory())
        self.assertEqual(report["problems"], [])
        # 2 workers x 5 threads + 10 sidekiq + 1 port x 10 + 10 admin
        self.assertEqual(report["totals"]["clients"], 40)
        self.assertEqual([r["connections"] for r in report["rows"]], [10, 10, 10, 10])
        self.assertTrue(all(limit["ok"] for limit in report["totals"]["limits"]))
        self.assertIn("WAL senders", report["table"][-1])

    def test_sidekiq_counts_and_default_concurrency(self):
        data = inventory()
        data["hosts"]["app"]["settings"]["mastodon_sidekiq_processes"] = [
            {"name": "ingress", "queues": ["ingress"], "concurrency": 5, "count": 4},
            {"name": "rest", "queues": ["default"]}]
        rows = [r for r in pf.preflight_budget(data)["rows"] if r["process"].startswith("sidekiq")]
        self.assertEqual([(r["count"], r["each"], r["connections"]) for r in rows], [(4, 5, 20), (1, 5, 5)])

    def test_string_numbers_from_templates(self):
        data = inventory()
        data["hosts"]["app"]["settings"]["mastodon_web_concurrency"] = "3"
        self.assertEqual(pf.preflight_budget(data)["rows"][0]["connections"], 15)

    def test_pgbouncer_server_side_over_max_connections(self):
        data = inventory()
        data["groups"]["pgbouncer"] = ["db1", "db2"]
        data["groups"]["db_replica"] = []
        data["hosts"]["db2"]["groups"] = ["mastodon", "pgbouncer"]
        for name in ("db1", "db2"):
            data["hosts"][name]["settings"]["pgbouncer_default_pool_size"] = 40
        report = pf.preflight_report(data)
        # 2 x (40 + 5) + 10 admin + 3 reserved = 103 > 100
        self.assertEqual(len(report["problems"]), 1)
        self.assertIn("PgBouncer 2 x (40+5) + 10 admin + 3 reserved = 103, over the limit of 100",
                      report["problems"][0])
        self.assertIn("pgbouncer_default_pool_size", report["problems"][0])

    def test_pool_size_per_database_and_max_db_connections_cap(self):
        data = inventory()
        settings = data["hosts"]["db1"]["settings"]
        settings["pgbouncer_databases"] = [{"name": "mastodon_production", "pool_size": 200}]
        self.assertIn("= 218, over the limit of 100", " ".join(pf.preflight_report(data)["problems"]))
        settings["pgbouncer_max_db_connections"] = 50
        self.assertEqual(pf.preflight_report(data)["problems"], [])

    def test_client_total_over_max_client_conn(self):
        data = inventory()
        data["hosts"]["db1"]["settings"]["pgbouncer_settings"] = {"max_client_conn": 30}
        assert_one_problem(self, data, "PgBouncer db1: client connections (max_client_conn) = 40, over the limit of 30")

    def test_without_pgbouncer_clients_go_straight_to_the_primary(self):
        data = inventory()
        data["groups"]["pgbouncer"] = []
        data["hosts"]["app"]["settings"]["mastodon_web_concurrency"] = 18
        problems = pf.preflight_report(data)["problems"]
        # 90 + 10 + 10 + 10 = 120 clients, + 3 reserved, on the primary and on the replica
        self.assertEqual(len(problems), 2)
        self.assertIn("(primary, no PgBouncer): 120 clients + 3 reserved = 123, over the limit of 100", problems[0])
        self.assertIn("(replica, Mastodon's reads): 120 clients + 3 reserved = 123", problems[1])

    def test_postgres_settings_override_and_reserved_connections(self):
        data = inventory()
        data["groups"]["pgbouncer"] = []
        data["hosts"]["db1"]["settings"]["postgres_settings"] = {"max_connections": 42,
                                                                 "superuser_reserved_connections": 2}
        problems = pf.preflight_report(data)["problems"]
        self.assertRegex("\n".join(pf.preflight_budget(data)["table"]), r"40 clients \+ 2 reserved +42 +42 +ok")
        self.assertFalse([p for p in problems if "(primary" in p])

    def test_replica_needs_at_least_the_primarys_max_connections(self):
        data = inventory()
        data["hosts"]["db2"]["settings"]["postgres_max_connections"] = 50
        assert_one_problem(self, data, "replica db2 is 50, lower than the primary's 100")

    def test_unrenderable_number_is_a_problem(self):
        data = inventory()
        data["hosts"]["app"]["settings"]["mastodon_web_concurrency"] = None
        assert_one_problem(self, data, "mastodon_web_concurrency on app could not be worked out")

    def test_hosts_outside_the_run_are_left_out_quietly(self):
        data = inventory()
        data["hosts"]["db2"]["in_run"] = False
        data["hosts"]["db2"]["settings"]["postgres_max_connections"] = None
        report = pf.preflight_report(data)
        self.assertEqual(report["problems"], [])
        self.assertIn("Left out: db2 postgres_max_connections", "\n".join(report["table"]))
        self.assertIn("Outside this run (checked from the inventory and cached facts only): db2.",
                      report["table"])

    def test_table_columns_line_up(self):
        table = pf.preflight_budget(inventory())["table"]
        header = table[1]
        for line in table[2:6]:
            self.assertEqual(len(line), len(header))


class Inventory(unittest.TestCase):
    def test_groups(self):
        data = inventory()
        data["groups"]["all"].append("stray")
        data["hosts"]["stray"] = host(["ungrouped"], "10.0.0.99")
        data["groups"]["proxy"] = []
        data["groups"]["db_primary"] = ["db1", "db2"]
        problems = pf.preflight_report(data)["problems"]
        # edge was only a proxy
        self.assertIn("Hosts in no group of the model: edge, stray.", problems[0])
        self.assertIn("Group proxy has no hosts", problems[1])
        self.assertIn("Group db_primary has 2 hosts (db1, db2)", problems[2])
        self.assertIn("db2 in both db_primary and db_replica", problems[3])

    def test_a_redis_replica_needs_a_redis_host_and_the_replication_password(self):
        data = inventory()
        data["groups"]["redis_replica"] = ["db1"]
        problems = pf.preflight_report(data)["problems"]
        self.assertTrue(any("redis_replication_password (the password of the Redis user new Redis hosts replicate with) "
                            "is not set" in p for p in problems), problems)
        data["groups"]["redis"] = []
        problems = pf.preflight_report(data)["problems"]
        self.assertTrue(any("Group redis_replica (db1) has no Redis to replicate" in p for p in problems), problems)

    def test_secrets(self):
        data = inventory()
        data["hosts"]["db1"]["secrets"]["redis_admin_password"] = {"length": 0, "placeholder": False}
        data["hosts"]["db1"]["secrets"]["mastodon_db_password"] = {"length": 9, "placeholder": True}
        data["hosts"]["app"]["secrets"]["redis_app_password"] = {"length": 8, "placeholder": False}
        problems = pf.preflight_report(data)["problems"]
        self.assertEqual(len(problems), 3)
        self.assertIn("mastodon_db_password (the database password of Mastodon's role) is still a CHANGE-ME "
                      "placeholder for db1", problems[0])
        self.assertIn("redis_app_password (the password Mastodon uses for Redis) is shorter than 16 characters "
                      "for app", problems[1])
        self.assertIn("redis_admin_password (the password of Redis' admin user) is not set for db1", problems[2])

    def test_object_storage_secrets_only_with_object_storage(self):
        data = inventory()
        data["hosts"]["app"]["secrets"]["object_storage_secret_access_key"] = {"length": 0, "placeholder": False}
        self.assertEqual(pf.preflight_report(data)["problems"], [])
        data["groups"]["object_storage"] = ["db2"]
        data["hosts"]["app"]["settings"]["mastodon_s3_enabled"] = True
        assert_one_problem(self, data, "object_storage_secret_access_key (the object storage secret key) is not set for app")

    def test_the_exporters_redis_password_only_with_monitoring_hosts(self):
        data = inventory()
        data["hosts"]["db1"]["secrets"]["redis_monitor_password"] = {"length": 0, "placeholder": False}
        self.assertEqual(pf.preflight_report(data)["problems"], [])
        data["groups"]["monitoring"] = ["db2"]
        for name in ("db1", "db2"):
            data["hosts"][name]["os"]["version"] = "13"
        assert_one_problem(self, data, "redis_monitor_password (the password of the Prometheus exporter's Redis user) is not set for db1")

    def with_backup(self, *hosts):
        data = inventory()
        data["groups"]["backup"] = list(hosts)
        for name in hosts:
            if name not in data["hosts"]:
                data["groups"]["all"].append(name)
                data["hosts"][name] = host(["mastodon", "backup"], "10.0.0.81")
        return data

    def test_a_backup_host_is_in_the_model_and_passes(self):
        self.assertEqual(pf.preflight_report(self.with_backup("bk"))["problems"], [])

    def test_one_backup_host(self):
        data = self.with_backup("bk", "bk2")
        data["hosts"]["bk2"]["address"] = "10.0.0.82"
        assert_one_problem(self, data, "Group backup has 2 hosts (bk, bk2): pgBackRest keeps the backups in one "
                                       "repository, on the one backup host. Keep one host in backup")

    def test_the_backup_host_is_not_a_database_host(self):
        assert_one_problem(self, self.with_backup("db1"), "The backup host db1 is also in db_primary: a backup on the "
                                                          "database's own host is lost with it. Use a separate machine")
        assert_one_problem(self, self.with_backup("db2"), "The backup host db2 is also in db_replica")
        data = self.with_backup("db2")
        data["groups"]["db_primary"].append("db2")
        data["groups"]["db_replica"] = []
        problems = pf.preflight_report(data)["problems"]
        self.assertIn("The backup host db2 is also in db_primary:", " ".join(problems))

    def test_a_backup_host_needs_a_primary(self):
        data = self.with_backup("bk")
        data["groups"]["db_primary"] = []
        problems = pf.preflight_report(data)["problems"]
        self.assertIn("Group db_primary has no hosts", problems[0])
        self.assertIn("Group backup (bk) has no PostgreSQL primary to back up: db_primary is empty", problems[1])

    def test_backup_secrets_only_with_a_backup_host(self):
        data = inventory()
        for name in data["hosts"]:
            for secret in ("redis_backup_password", "pgbackrest_repo_cipher_pass"):
                data["hosts"][name]["secrets"][secret] = {"length": 0, "placeholder": False}
        self.assertEqual(pf.preflight_report(data)["problems"], [])
        data = self.with_backup("bk")
        for name in data["hosts"]:
            data["hosts"][name]["secrets"]["pgbackrest_repo_cipher_pass"] = {"length": 0, "placeholder": False}
        data["hosts"]["bk"]["secrets"]["redis_backup_password"] = {"length": 15, "placeholder": False}
        data["hosts"]["db2"]["secrets"]["pgbackrest_repo_cipher_pass"] = {"length": 31, "placeholder": False}
        problems = pf.preflight_report(data)["problems"]
        self.assertEqual(len(problems), 3, problems)
        self.assertIn("redis_backup_password (the password of the Redis user the backup host copies Redis with) is "
                      "shorter than 16 characters for bk", problems[0])
        # Every database host and the backup host; 32 characters at least.
        self.assertIn("pgbackrest_repo_cipher_pass (the key the pgBackRest repository of PostgreSQL's backups is "
                      "encrypted with) is not set for db1, bk:", problems[1])
        self.assertIn("keep a copy of it off-site (no backup can be restored without it)", problems[1])
        self.assertIn("is shorter than 32 characters for db2", problems[2])
        # No Redis host: the backup host copies no Redis (the missing group is its own problem).
        data["groups"]["redis"] = []
        self.assertNotIn("redis_backup_password", " ".join(pf.preflight_report(data)["problems"]))

    def test_the_backup_host_copies_the_bucket_with_the_object_storage_key(self):
        data = self.with_backup("bk")
        data["hosts"]["bk"]["secrets"]["object_storage_secret_access_key"] = {"length": 0, "placeholder": False}
        self.assertEqual(pf.preflight_report(data)["problems"], [])
        data["groups"]["object_storage"] = ["db2"]
        assert_one_problem(self, data, "object_storage_secret_access_key (the object storage secret key) is not set for bk")

    def test_monitoring_needs_debian_13_on_database_hosts(self):
        data = inventory()
        data["groups"]["monitoring"] = ["db2"]
        assert_one_problem(self, data, "Monitoring needs Debian 13 on the database hosts: db1, db2 run Debian 12")
        for name in ("db1", "db2"):
            data["hosts"][name]["os"]["version"] = "13"
        self.assertEqual(pf.preflight_report(data)["problems"], [])

    def test_domains(self):
        self.assertTrue(pf.is_dns_name("files.example.com"))
        for bad in ("Example.com", "example", "-a.example", "a..example", "example.com.", "1.2.3.4", None):
            self.assertFalse(pf.is_dns_name(bad), bad)
        data = inventory()
        for name in ("edge", "app"):
            data["hosts"][name]["settings"]["mastodon_media_domain"] = "example.test"
        assert_one_problem(self, data, "mastodon_media_domain 'example.test' is the web domain")
        data["hosts"]["app"]["settings"]["mastodon_local_domain"] = "other.test"
        self.assertIn("mastodon_local_domain differs between hosts", " ".join(pf.preflight_report(data)["problems"]))

    def test_placeholder_domain_is_missing(self):
        data = inventory()
        for name in ("edge", "app"):
            data["hosts"][name]["settings"]["mastodon_local_domain"] = "CHANGE-ME"
        assert_one_problem(self, data, "mastodon_local_domain is not set (needed by app, edge)")

    def test_os(self):
        data = inventory()
        data["hosts"]["db2"]["os"] = {"distribution": "Debian", "version": "13", "arch": "aarch64"}
        self.assertEqual(pf.preflight_report(data)["problems"], [])
        data["hosts"]["db2"]["os"] = {"distribution": "Debian", "version": "11", "arch": "x86_64"}
        data["hosts"]["edge"]["os"] = None
        problems = pf.preflight_report(data)["problems"]
        self.assertIn("Unsupported operating system on db2 (Debian 11, x86_64)", problems[0])
        self.assertIn("No facts for edge", problems[1])

    def test_trusted_proxies_by_address_or_cidr(self):
        self.assertTrue(pf._covers(["10.0.0.0/24"], "10.0.0.10"))
        self.assertTrue(pf._covers(["fd00::/8"], "fd00::1"))
        self.assertFalse(pf._covers(["10.0.1.0/24", "not-an-ip"], "10.0.0.10"))
        data = inventory()
        data["groups"]["proxy"] = ["edge", "db2"]
        data["hosts"]["app"]["settings"]["mastodon_trusted_proxy_ips"] = "10.0.0.8/30"
        assert_one_problem(self, data, "leaves out the proxy db2 (10.0.0.42)")

    def test_installed_domain(self):
        data = inventory()
        data["hosts"]["app"]["env"] = {"state": "read", "path": "/x/.env.production",
                                       "values": {"LOCAL_DOMAIN": "old.test", "WEB_DOMAIN": "example.test"}}
        assert_one_problem(self, data, "app already run Mastodon with LOCAL_DOMAIN=old.test, but mastodon_local_domain "
                           "is now 'example.test'")
        data["hosts"]["app"]["env"] = {"state": "error", "path": "/x/.env.production", "error": "sudo: a password"}
        self.assertIn("Could not read .env.production on app", pf.preflight_report(data)["problems"][0])

    def test_secrets_problem_is_one_line(self):
        problems = pf.preflight_report(inventory(secrets_problem="Secrets differ (app-1: SECRET_KEY_BASE). "))["problems"]
        self.assertEqual(problems, ["Secrets differ (app-1: SECRET_KEY_BASE)."])

    def test_sidekiq_fleet_problems_are_one_line(self):
        data = inventory()
        data["hosts"]["app"]["settings"]["mastodon_sidekiq_processes"] = [{"name": "all", "queues": ["default,2"]}]
        problems = pf.preflight_report(data)["problems"]
        self.assertEqual(len(problems), 1)
        self.assertRegex(problems[0], r"^Sidekiq processes in the inventory: The scheduler queue must run in exactly one "
                                      r"process across all hosts, but 0 do \(\): .* No process serves scheduler: ")


def release(version, debian="13", **settings):
    """inventory() with mastodon_version on every host, the app host's settings and every host on that Debian."""
    data = inventory()
    for record in data["hosts"].values():
        record["settings"]["mastodon_version"] = version
        record["os"]["version"] = debian
    data["hosts"]["app"]["settings"].update(settings)
    return data


class Release(unittest.TestCase):
    """check_release: the chosen release's floors against what the inventory's choices give."""

    def test_46_with_debians_node_on_13_is_refused_with_the_reason(self):
        assert_one_problem(self, release("v4.6.5", mastodon_node_source="debian"),
                           "Mastodon 4.6 (v4.6.5) needs Node >= 22 (package.json engines), but Debian 13's nodejs is "
                           "20 on app (mastodon_node_source: debian): use mastodon_node_source: nodesource with "
                           "mastodon_node_major: 24 (upstream's .nvmrc).")

    def test_46_with_nodesource_24_is_fine(self):
        for debian in ("12", "13"):
            report = pf.preflight_report(release("v4.6.5", debian, mastodon_node_major=24))
            self.assertEqual(report["problems"], [])
            self.assertEqual(report["release"], ["Release: Mastodon 4.6 (v4.6.5) needs Ruby >= 3.3 < 4.1, "
                                                 "Node >= 22, PostgreSQL >= 14, Redis >= 7.0, FFmpeg >= 5.1."])

    def test_46_with_nodesource_20_is_refused(self):
        assert_one_problem(self, release("v4.6.5", mastodon_node_major="20"),
                           "needs Node >= 22 (package.json engines), but mastodon_node_major is 20 on app: set "
                           "mastodon_node_major: 24")

    def test_45_with_debians_node_and_ruby_on_13_is_fine(self):
        # The whole-stack scenarios' choice (molecule/basement/inventory/group_vars/all/test.yml).
        report = pf.preflight_report(release("v4.5.0", "13", mastodon_node_source="debian",
                                             mastodon_ruby_source="system"))
        self.assertEqual(report["problems"], [])
        self.assertEqual(report["release"], ["Release: Mastodon 4.5 (v4.5.0) needs Ruby >= 3.2 < 3.5, Node >= 20, "
                                             "PostgreSQL >= 14, Redis >= 7.0."])

    def test_45_with_debians_node_on_12_is_refused(self):
        assert_one_problem(self, release("v4.5.15", "12", mastodon_node_source="debian"),
                           "Mastodon 4.5 (v4.5.15) needs Node >= 20 (package.json engines), but Debian 12's nodejs "
                           "is 18 on app")

    def test_46_with_system_ruby_on_12_is_refused(self):
        assert_one_problem(self, release("v4.6.5", "12", mastodon_ruby_source="system"),
                           "Mastodon 4.6 (v4.6.5) needs Ruby >= 3.3 and < 4.1 (Gemfile), but Debian 12's ruby is 3.1 "
                           "on app (mastodon_ruby_source: system): use mastodon_ruby_source: rbenv")
        self.assertEqual(pf.preflight_report(release("v4.6.5", "13", mastodon_ruby_source="system"))["problems"], [])

    def test_rbenv_checks_only_a_pinned_ruby(self):
        self.assertEqual(pf.preflight_report(release("v4.6.5", "12", mastodon_ruby_version=""))["problems"], [])
        self.assertEqual(pf.preflight_report(release("v4.6.5", mastodon_ruby_version="4.0.5"))["problems"], [])
        assert_one_problem(self, release("v4.6.5", mastodon_ruby_version="3.2.9"),
                           "needs Ruby >= 3.3 and < 4.1 (Gemfile), but mastodon_ruby_version is 3.2.9 on app")
        # 4.5's Gemfile stops below 3.5.
        assert_one_problem(self, release("v4.5.15", mastodon_ruby_version="4.0.5"), "Ruby >= 3.2 and < 3.5")

    def test_44_is_refused(self):
        data = release("v4.4.3", mastodon_node_source="debian")
        assert_one_problem(self, data, "mastodon_version v4.4.3 on app is Mastodon 4.4, older than the toolkit "
                           "supports (Mastodon 4.5 and newer): set mastodon_version to a v4.5.x or v4.6.x release "
                           "tag (newest known: v4.6.5).")
        self.assertEqual(pf.preflight_report(data)["release"], [])

    def test_a_commit_or_branch_gets_the_newest_floors(self):
        for version in ("0123456789abcdef0123456789abcdef01234567", "main", "stable-4.5", "4.5.2"):
            problems = pf.preflight_report(release(version, mastodon_node_source="debian"))["problems"]
            self.assertEqual(len(problems), 1, problems)
            self.assertIn(f"Mastodon at {version!r} (not a vX.Y.Z tag, so checked as the newest series, 4.6) needs "
                          f"Node >= 22", problems[0])

    def test_series_and_floors(self):
        self.assertEqual(pf.release_series("v4.6.0-rc.1"), (4, 6))
        self.assertIsNone(pf.release_series("v4.6"))
        self.assertEqual(pf.release_floors("v4.5.3")["node"], 20)
        newer = pf.release_floors("v4.7.0")
        self.assertEqual((newer["node"], newer["supported"]), (22, True))
        self.assertIn("newer than the toolkit knows, so checked as 4.6", newer["label"])
        self.assertFalse(pf.release_floors("v3.5.19")["supported"])

    def test_postgresql_of_the_primary(self):
        data = release("v4.6.5")
        data["hosts"]["db1"]["settings"]["postgres_version"] = 13
        assert_one_problem(self, data, "Mastodon 4.6 (v4.6.5) needs PostgreSQL >= 14 (lib/tasks/db.rake refuses "
                           "older), but postgres_version is 13 on db1: set postgres_version to 14 or newer")
        data["hosts"]["db1"]["settings"]["postgres_version"] = "16"
        self.assertEqual(pf.preflight_report(data)["problems"], [])

    def test_debians_redis_and_ffmpeg(self):
        # Debian 12 and 13 meet both floors; a release that needed more would be refused per host.
        saved = pf.DEBIAN_PROVIDES["12"]
        try:
            pf.DEBIAN_PROVIDES["12"] = dict(saved, redis=(6, 0), ffmpeg=(4, 4))
            problems = pf.preflight_report(release("v4.6.5", "12"))["problems"]
        finally:
            pf.DEBIAN_PROVIDES["12"] = saved
        self.assertEqual(len(problems), 2, problems)
        self.assertIn("needs FFmpeg >= 5.1 (upstream's README), but Debian 12's ffmpeg is 4.4 on app", problems[0])
        self.assertIn("needs Redis >= 7.0 (upstream's README), but Debian 12's redis is 6.0 on db1", problems[1])

    def test_hosts_with_one_problem_share_its_line(self):
        data = release("v4.6.5", mastodon_node_source="debian")
        data["hosts"]["app2"] = host(["mastodon", "sidekiq"], "10.0.0.22", mastodon_node_source="debian",
                                     mastodon_sidekiq_processes=[{"name": "more", "queues": ["default"]}])
        data["hosts"]["app2"]["os"]["version"] = "13"
        data["groups"]["all"].append("app2")
        data["groups"]["sidekiq"].append("app2")
        assert_one_problem(self, data, "Debian 13's nodejs is 20 on app, app2 (mastodon_node_source: debian)")

    def test_unknown_system_or_version_is_left_to_other_checks(self):
        data = release("v4.6.5", mastodon_node_source="debian")
        data["hosts"]["app"]["os"] = {"distribution": "Ubuntu", "version": "24", "arch": "x86_64"}
        assert_one_problem(self, data, "Unsupported operating system on app (Ubuntu 24, x86_64)")
        data = release("v4.6.5", mastodon_node_source="debian")
        data["hosts"]["app"]["in_run"] = False
        data["hosts"]["app"]["settings"]["mastodon_version"] = None
        report = pf.preflight_report(data)
        self.assertEqual((report["problems"], report["release"]), ([], []))


class EnvFile(unittest.TestCase):
    def slurped(self, text):
        return {"content": base64.b64encode(text.encode()).decode(), "source": "/x/.env.production"}

    def test_keeps_only_the_domains(self):
        env = pf.preflight_env_file(self.slurped('LOCAL_DOMAIN=a.test\nWEB_DOMAIN="b.test"\nDB_PASS=secret\n'))
        self.assertEqual(env, {"state": "read", "path": "/x/.env.production",
                               "values": {"LOCAL_DOMAIN": "a.test", "WEB_DOMAIN": "b.test"}, "error": ""})

    def test_missing_skipped_and_failed_reads(self):
        self.assertEqual(pf.preflight_env_file({"failed": True, "msg": "file not found: /x"})["state"], "absent")
        self.assertEqual(pf.preflight_env_file({"skipped": True})["state"], "skipped")
        failed = pf.preflight_env_file({"failed": True, "msg": "Permission denied\nmore"}, "/x/.env.production")
        self.assertEqual((failed["state"], failed["path"], failed["error"]),
                         ("error", "/x/.env.production", "Permission denied"))



class Addresses(unittest.TestCase):
    def test_each_host_must_have_its_private_address(self):
        data = inventory()
        data["hosts"]["db1"]["addresses"] = ["10.0.0.99", "fd00::1"]
        data["hosts"]["db1"]["address_set"] = True
        assert_one_problem(self, data, "The private_address of db1, 10.0.0.41, is not an address db1 has (it has 10.0.0.99, fd00::1)")

    def test_a_public_address_needs_the_operators_word(self):
        data = inventory()
        data["hosts"]["db2"]["address"] = "203.0.113.7"
        assert_one_problem(self, data, "db2 has no private_address, and its default IPv4 address 203.0.113.7 is a public address")
        data["hosts"]["db2"]["settings"]["preflight_allow_public_address"] = True
        self.assertEqual(pf.preflight_report(data)["problems"], [])

    def test_a_name_is_not_an_address(self):
        data = inventory()
        data["hosts"]["db2"].update(address="db2.internal", address_set=True)
        assert_one_problem(self, data, "The private_address of db2, db2.internal, is not an IP address")

    def test_one_box_needs_no_private_address(self):
        data = inventory()
        data["hosts"] = {"box": dict(data["hosts"]["app"], address="203.0.113.7", addresses=["203.0.113.7"])}
        data["groups"] = {g: ["box"] for g in ["all", "proxy", "web", "streaming", "sidekiq", "db_primary", "pgbouncer", "redis"]}
        data["groups"]["db_replica"] = []
        self.assertNotIn("public address", " ".join(pf.preflight_report(data)["problems"]))

if __name__ == "__main__":
    unittest.main()
