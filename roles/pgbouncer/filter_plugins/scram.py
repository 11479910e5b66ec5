"""SCRAM-SHA-256 verifiers (RFC 7677, PostgreSQL's format) for PgBouncer's auth_file."""

import base64
import hashlib
import hmac
import os
import re

ITERATIONS = 4096
_VERIFIER = re.compile(r"^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$")


def _verifier(password, salt, iterations):
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def scram_sha256_verifier(password, previous=""):
    """Return `previous` when it is a verifier of `password` (so re-runs change nothing),
    else a new verifier with a random salt."""
    match = _VERIFIER.match(previous or "")
    if match:
        salt = base64.b64decode(match.group(2))
        candidate = _verifier(password, salt, int(match.group(1)))
        if hmac.compare_digest(candidate, previous):
            return previous
    return _verifier(password, os.urandom(16), ITERATIONS)


class FilterModule:
    def filters(self):
        return {"scram_sha256_verifier": scram_sha256_verifier}
