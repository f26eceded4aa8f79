"""Who may reach a listening address: the one rule of the controller's gRPC port and the
TUI's web page. Loopback is open; anything beyond it needs a token, unless the user says
the network is trusted (``--insecure``)."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1 (brackets allowed); a name or an empty host
    (every interface, for most servers) is not."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refusal(listen: str, *, token: str | None, insecure: bool, flag: str, env: str) -> str:
    """Why listening on ``listen`` is refused, or '' if it is fine. ``flag`` and ``env``
    name the option and the variable that set the token."""
    host = listen.rsplit(":", 1)[0]
    if is_loopback(host) or token or insecure:
        return ""
    return (
        f"refusing to listen on {listen} without a token: anyone who reaches it "
        f"could start load against your databases. Set {flag} (or {env}), "
        "or pass --insecure if the network is trusted"
    )
