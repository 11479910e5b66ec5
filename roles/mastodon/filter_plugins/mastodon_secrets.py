"""Generates Mastodon's secrets once, on the control node (see tasks/secrets.yml)."""

import base64
import secrets
import string

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def _alnum(length):
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def mastodon_new_secrets(_ignored=None):
    """A fresh set, in the formats Mastodon's own generators use: `rails secret` (128 hex chars),
    `rails db:encryption:init` (32 alphanumerics each) and a VAPID EC P-256 key pair encoded as
    URL-safe base64 (private: the 32-byte scalar; public: the uncompressed point)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return {
        "mastodon_secret_key_base": secrets.token_hex(64),
        "mastodon_active_record_encryption_primary_key": _alnum(32),
        "mastodon_active_record_encryption_deterministic_key": _alnum(32),
        "mastodon_active_record_encryption_key_derivation_salt": _alnum(32),
        "mastodon_vapid_private_key": base64.urlsafe_b64encode(private).decode(),
        "mastodon_vapid_public_key": base64.urlsafe_b64encode(public).decode(),
    }


class FilterModule:
    def filters(self):
        return {"mastodon_new_secrets": mastodon_new_secrets}
