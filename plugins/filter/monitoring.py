"""Filters of the monitoring role: the shipped alert rules with an operator's timings, and the
per-queue Sidekiq latency thresholds as recording rules. Unit tests: tests/monitoring/test_monitoring.py."""
import re

import yaml

DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def alert_rules(text, for_overrides=None):
    """The rules file `text` (YAML) with the `for:` of the alerts named in `for_overrides`
    ({alert: duration}, "0s" fires at once) replaced. Refuses unknown alerts and bad durations."""
    doc = yaml.safe_load(text)
    overrides = dict(for_overrides or {})
    known = set()
    for group in doc["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert")
            if not name:
                continue
            known.add(name)
            if name in overrides:
                duration = str(overrides[name])
                if not DURATION.match(duration):
                    raise ValueError("monitoring_alert_for: %s: %r is not a Prometheus duration (30s, 5m, 1h)" % (name, duration))
                rule["for"] = duration
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError("monitoring_alert_for names alerts that do not exist: %s (known: %s)"
                         % (", ".join(unknown), ", ".join(sorted(known))))
    return yaml.safe_dump(doc, sort_keys=False, width=1000, default_flow_style=False)


def latency_thresholds(thresholds):
    """Recording rules mastodon:sidekiq_queue_latency_threshold_seconds{queue}, one per queue of
    `thresholds` ({queue: seconds}), as a rules file (YAML)."""
    rules = []
    for queue, seconds in sorted((thresholds or {}).items()):
        if not re.match(r"^[A-Za-z0-9_-]+$", str(queue)) or isinstance(seconds, bool) or float(seconds) <= 0:
            raise ValueError("monitoring_sidekiq_latency_thresholds: %r: %r (a queue name and seconds > 0)" % (queue, seconds))
        rules.append({"record": "mastodon:sidekiq_queue_latency_threshold_seconds",
                      "expr": "vector(%g)" % float(seconds), "labels": {"queue": str(queue)}})
    doc = {"groups": [{"name": "mastodon-thresholds", "rules": rules}]}
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


class FilterModule:
    def filters(self):
        return {
            "monitoring_alert_rules": alert_rules,
            "monitoring_latency_thresholds": latency_thresholds,
        }
