"""Server key fingerprints: the SHA-256 of a certificate's SubjectPublicKeyInfo, as 64 lowercase hex digits.

The same digits are announced by the LAN beacon (docs/discovery.md), printed by the server at start, pinned
by the client (trust on first use) and accepted by ``chat-client --fingerprint``. Hashing the public key
rather than the whole certificate means a certificate renewed with the same key keeps its fingerprint.
`cryptography` is imported only when a certificate is actually parsed.
"""

from __future__ import annotations

import hashlib
import re

#: Hex digits in a fingerprint (SHA-256).
FINGERPRINT_DIGITS = 64
_SEPARATORS = re.compile(r"[\s:]")
_HEX = re.compile(r"[0-9a-f]{64}")


class BadFingerprint(ValueError):
    """A fingerprint typed or configured by someone is not 64 hex digits."""


def certificate_fingerprint(certificate_der: bytes) -> str:
    """The fingerprint of a DER certificate: SHA-256 of its SubjectPublicKeyInfo, 64 lowercase hex digits."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    certificate = x509.load_der_x509_certificate(certificate_der)
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def parse_fingerprint(text: str) -> str:
    """Accept a fingerprint as people copy it (upper case, ``:`` or spaces between groups); return 64 digits.

    Raises `BadFingerprint` for anything else.
    """
    digits = _SEPARATORS.sub("", text).lower()
    if digits.startswith("sha256"):
        digits = digits.removeprefix("sha256")
    if not _HEX.fullmatch(digits):
        raise BadFingerprint(f"a fingerprint is {FINGERPRINT_DIGITS} hex digits (SHA-256), not {text!r}")
    return digits


def grouped(fingerprint: str) -> str:
    """The same digits in groups of four, for reading aloud and comparing by eye."""
    return " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))
