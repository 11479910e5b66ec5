"""Unit tests of roles/mastodon/filter_plugins/mastodon_guards.py.
Run by make lint, or: python3 -m unittest discover -s tests/mastodon"""
import importlib.util
import pathlib
import unittest

_PATH = pathlib.Path(__file__).resolve().parents[2] / "roles/mastodon/filter_plugins/mastodon_guards.py"
_SPEC = importlib.util.spec_from_file_location("mastodon_guards", _PATH)
g = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(g)

SECRETS = {var: f"value-of-{var}" for var in g.SECRETS.values()}


def env_text(**overrides):
    values = {name: SECRETS[var] for name, var in g.SECRETS.items()}
    values.update(overrides)
    return "# managed\nLOCAL_DOMAIN=example.test\n" + "".join(f"{k}={v}\n" for k, v in values.items())


class EnvParse(unittest.TestCase):
    def test_quoted_and_plain_values(self):
        env = g.mastodon_env_parse('A=1\nB="two words \\"q\\" \\\\ x"\n# C=3\nexport D=\'lit\\n\'\nE=\n')
        self.assertEqual(env, {"A": "1", "B": 'two words "q" \\ x', "D": "lit\\n", "E": ""})

    def test_empty(self):
        self.assertEqual(g.mastodon_env_parse(""), {})
        self.assertEqual(g.mastodon_env_parse(None), {})


class EnvValue(unittest.TestCase):
    def test_plain_single_and_double_quotes(self):
        self.assertEqual(g.mastodon_env_value("abc-123_./:@%+,="), "abc-123_./:@%+,=")
        self.assertEqual(g.mastodon_env_value(""), "")
        self.assertEqual(g.mastodon_env_value(True), "true")
        self.assertEqual(g.mastodon_env_value(6432), "6432")
        self.assertEqual(g.mastodon_env_value("pa$$ word #1"), "'pa$$ word #1'")
        self.assertEqual(g.mastodon_env_value('back\\slash "q"'), "'back\\slash \"q\"'")
        self.assertEqual(g.mastodon_env_value("it's"), '"it\'s"')

    def test_values_dotenv_would_read_differently_are_refused(self):
        for bad in ["it's $HOME", "it's `x`", 'it\'s "q"', "it's a\\b", "two\nlines"]:
            with self.assertRaises(ValueError):
                g.mastodon_env_value(bad)

    def test_parse_reads_what_it_writes(self):
        for value in ["plain", "pa$$ word #1", 'back\\slash "q"', "it's"]:
            self.assertEqual(g.mastodon_env_parse("A=" + g.mastodon_env_value(value))["A"], value)


class SecretDrift(unittest.TestCase):
    def test_same_secrets_and_new_hosts_pass(self):
        self.assertEqual(g.mastodon_secret_drift({"web1": env_text(), "new": ""}, SECRETS), [])

    def test_a_different_secret_key_base_is_named_without_its_value(self):
        problems = g.mastodon_secret_drift({"web1": env_text(), "web2": env_text(SECRET_KEY_BASE="stale")}, SECRETS)
        self.assertEqual(problems, ["web2: SECRET_KEY_BASE"])
        self.assertNotIn("stale", problems[0])

    def test_a_regenerated_secrets_file_differs_everywhere(self):
        fresh = {var: "regenerated" for var in SECRETS}
        problems = g.mastodon_secret_drift({"a": env_text(), "b": env_text()}, fresh)
        self.assertEqual(len(problems), 2)
        self.assertTrue(all(p.count(",") == len(g.SECRETS) - 1 for p in problems))

    def test_a_secret_the_host_never_had_is_not_drift(self):
        text = "\n".join(line for line in env_text().splitlines() if not line.startswith("VAPID_"))
        self.assertEqual(g.mastodon_secret_drift({"old": text}, SECRETS), [])


    def test_a_secret_yaml_read_as_a_number_is_still_compared(self):
        self.assertEqual(g.mastodon_secret_drift({"web1": env_text()}, {"mastodon_secret_key_base": 0}),
                         ["web1: SECRET_KEY_BASE"])

    def test_unknown_secrets_are_not_compared(self):
        known = {"mastodon_secret_key_base": "other", "mastodon_vapid_private_key": None, "mastodon_vapid_public_key": ""}
        self.assertEqual(g.mastodon_secret_drift({"web1": env_text()}, known), ["web1: SECRET_KEY_BASE"])


class RubyVersion(unittest.TestCase):
    def test_plain_and_prefixed(self):
        self.assertEqual(g.mastodon_ruby_version("4.0.5\n"), "4.0.5")
        self.assertEqual(g.mastodon_ruby_version("\nruby-3.4.7\n"), "3.4.7")
        self.assertEqual(g.mastodon_ruby_version("3.5.0-preview1"), "3.5.0-preview1")

    def test_garbage_is_refused(self):
        for text in ["", "latest", "3.4"]:
            with self.assertRaises(ValueError):
                g.mastodon_ruby_version(text)


if __name__ == "__main__":
    unittest.main()
