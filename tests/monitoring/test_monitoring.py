"""Unit tests of plugins/filter/monitoring.py. Run by `make lint`, or:
python3 -m unittest discover -s tests/monitoring"""
import importlib.util
import pathlib
import unittest

import yaml

_ROOT = pathlib.Path(__file__).resolve().parents[2]
_SPEC = importlib.util.spec_from_file_location("monitoring", _ROOT / "plugins/filter/monitoring.py")
monitoring = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(monitoring)
RULES = (_ROOT / "roles/monitoring/files/rules/mastodon.rules.yml").read_text()


def alerts(text):
    return {r["alert"]: r for g in yaml.safe_load(text)["groups"] for r in g["rules"] if "alert" in r}


class AlertRules(unittest.TestCase):
    def test_without_overrides_the_shipped_rules_are_unchanged(self):
        self.assertEqual(yaml.safe_load(monitoring.alert_rules(RULES)), yaml.safe_load(RULES))

    def test_an_override_changes_only_that_alerts_for(self):
        out = alerts(monitoring.alert_rules(RULES, {"PostgresReplicaNotStreaming": "10s"}))
        self.assertEqual(out["PostgresReplicaNotStreaming"]["for"], "10s")
        self.assertEqual(out["HostDown"]["for"], alerts(RULES)["HostDown"]["for"])
        # Templates of the annotations are kept for Prometheus, not rendered.
        self.assertIn("{{ $labels.host }}", out["HostDown"]["annotations"]["summary"])

    def test_unknown_alerts_and_bad_durations_are_refused(self):
        with self.assertRaisesRegex(ValueError, "do not exist: NoSuchAlert"):
            monitoring.alert_rules(RULES, {"NoSuchAlert": "1m"})
        with self.assertRaisesRegex(ValueError, "not a Prometheus duration"):
            monitoring.alert_rules(RULES, {"HostDown": "5 minutes"})

    def test_every_alert_has_a_severity_a_summary_and_a_runbook_section(self):
        docs = (_ROOT / "docs/monitoring.md").read_text().lower()
        for name, rule in alerts(RULES).items():
            self.assertIn(rule["labels"]["severity"], ["critical", "warning"], name)
            self.assertTrue(rule["annotations"]["summary"], name)
            self.assertIn("### %s" % name.lower(), docs, "docs/monitoring.md has no runbook section for " + name)


class Thresholds(unittest.TestCase):
    def test_one_recording_rule_per_queue(self):
        doc = yaml.safe_load(monitoring.latency_thresholds({"push": 60, "ingress": 300}))
        rules = doc["groups"][0]["rules"]
        self.assertEqual([(r["labels"]["queue"], r["expr"]) for r in rules], [("ingress", "vector(300)"), ("push", "vector(60)")])
        self.assertEqual({r["record"] for r in rules}, {"mastodon:sidekiq_queue_latency_threshold_seconds"})

    def test_bad_thresholds_are_refused(self):
        for bad in [{"push": 0}, {"push": True}, {"a queue": 10}]:
            with self.assertRaises(ValueError, msg=bad):
                monitoring.latency_thresholds(bad)


if __name__ == "__main__":
    unittest.main()
