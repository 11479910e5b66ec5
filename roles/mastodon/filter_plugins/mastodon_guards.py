"""Guards the mastodon role runs before it changes a host (see tasks/validate.yml and tasks/secrets.yml):
reading the .env.production a host runs, spotting secrets that would change, and reading the Ruby
version a checkout asks for."""

import hashlib
import re

# .env.production names of the secrets, and the inventory variables that hold them.
SECRETS = {
    "SECRET_KEY_BASE": "mastodon_secret_key_base",
    "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY": "mastodon_active_record_encryption_primary_key",
    "ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY": "mastodon_active_record_encryption_deterministic_key",
    "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT": "mastodon_active_record_encryption_key_derivation_salt",
    "VAPID_PRIVATE_KEY": "mastodon_vapid_private_key",
    "VAPID_PUBLIC_KEY": "mastodon_vapid_public_key",
}

_LINE = re.compile(r'^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$')


def mastodon_env_parse(text):
    """NAME=value lines of a .env file as a dict. Double-quoted values are unescaped as the
    template escapes them (\\\\ and \\"); single-quoted ones are literal; comments are skipped."""
    env = {}
    for line in (text or "").splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        name, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r'\\(.)', r'\1', value[1:-1])
        elif len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        env[name] = value
    return env


_PLAIN = re.compile(r"^[A-Za-z0-9_./:@%+,=-]*$")


def mastodon_env_value(value):
    """A value as it must stand after NAME= in .env.production, read alike by upstream's dotenv in
    Ruby (which expands $VAR and $(cmd) inside double quotes) and in Node: plain when it is made of
    safe characters, else in single quotes (literal in both), else in double quotes when nothing in
    it means anything there. A value that fits none (a line break; ' with $, `, " or \\) is refused."""
    text = "" if value is None else str(value)
    if isinstance(value, bool):
        text = text.lower()
    if "\n" in text or "\r" in text:
        raise ValueError("a .env.production value cannot hold a line break")
    if _PLAIN.match(text):
        return text
    if "'" not in text:
        return f"'{text}'"
    # Inside double quotes Ruby's dotenv expands $ and unescapes backslashes, Node's does neither.
    if any(char in text for char in '$`"\\'):
        raise ValueError("a .env.production value cannot hold ' together with $, `, \" or \\ "
                         "(upstream's dotenv in Ruby and in Node would read it differently)")
    return f'"{text}"'


def _digest(value):
    return hashlib.sha256(value.encode()).hexdigest()


def mastodon_secret_drift(env_by_host, new_secrets):
    """Problems, one line per host and secret, where a host's .env.production holds a secret that
    differs from the one this run would write. env_by_host: {host: .env.production text ('' when the
    host has none)}; new_secrets: {variable name: value, empty or None when this run does not know it
    (the preflight sees only inventory variables)}. Only the names are reported, never values."""
    problems = []
    for host in sorted(env_by_host):
        current = mastodon_env_parse(env_by_host[host])
        differing = [name for name, var in SECRETS.items()
                     if name in current and str(new_secrets.get(var) if new_secrets.get(var) is not None else "")
                     and _digest(current[name]) != _digest(str(new_secrets[var]))]
        if differing:
            problems.append(f"{host}: {', '.join(differing)}")
    return problems


def mastodon_ruby_version(text):
    """The Ruby version a checkout's .ruby-version asks for ('3.4.7'; a 'ruby-' prefix is dropped)."""
    first = next((line.strip() for line in (text or "").splitlines() if line.strip()), "")
    version = first.removeprefix("ruby-")
    if not re.fullmatch(r"\d+\.\d+\.\d+(-[A-Za-z0-9.]+)?", version):
        raise ValueError(f".ruby-version does not name a Ruby version: {first!r}")
    return version


class FilterModule:
    def filters(self):
        return {
            "mastodon_env_parse": mastodon_env_parse,
            "mastodon_env_value": mastodon_env_value,
            "mastodon_secret_drift": mastodon_secret_drift,
            "mastodon_ruby_version": mastodon_ruby_version,
        }
