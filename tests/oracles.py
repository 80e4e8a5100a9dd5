"""The gateways' callback checksums as the protocols write them (docs/gateways.md §2.6 and
§3.5), for tests to sign callbacks and check signatures with. Written from the protocol's text
alone: nothing here comes from the shop or the sandbox, so a mistake in theirs cannot hide."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

# BPC/RBS leaves these out of the signed text (§2.6).
RBS_UNSIGNED = ("checksum", "sign_alias")
# AltaPay signs only these posted fields, with the terminal's secret (§3.5).
ALTAPAY_SIGNED = ("amount", "currency", "shop_orderid")


def rbs_checksum(params: Mapping[str, str], key: str) -> str:
    """BPC/RBS (§2.6): every parameter but ``checksum`` and ``sign_alias``, sorted by name, as
    ``name;value;`` one after another; HMAC-SHA256 with the shared key, in upper-case hex."""
    pairs = sorted((name, value) for name, value in params.items() if name not in RBS_UNSIGNED)
    text = "".join(f"{name};{value};" for name, value in pairs)
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest().upper()


def altapay_checksum(fields: Mapping[str, str], secret: str) -> str:
    """AltaPay (§3.5): the posted ``amount``, ``currency`` and ``shop_orderid`` and the
    ``secret`` as ``key=value``, sorted by key, joined by commas; MD5 in lower-case hex."""
    pairs = {**{name: fields[name] for name in ALTAPAY_SIGNED}, "secret": secret}
    text = ",".join(f"{name}={pairs[name]}" for name in sorted(pairs))
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - AltaPay's checksum is MD5
