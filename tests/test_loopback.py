"""The embedded Ray must listen on loopback only: nothing of the pipeline is reachable from outside."""

import ipaddress

import psutil


def _descendants():
    me = psutil.Process()
    return {me.pid} | {p.pid for p in me.children(recursive=True)}


def test_embedded_ray_listens_on_loopback_only(ray_address):
    host = ray_address.rsplit(":", 1)[0]
    assert ipaddress.ip_address(host).is_loopback, ray_address
    pids = _descendants()
    listening = [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN and c.pid in pids]
    assert listening, "expected Ray's own servers among this process tree"
    for conn in listening:
        address = ipaddress.ip_address(conn.laddr.ip)
        mapped = getattr(address, "ipv4_mapped", None)
        assert (mapped or address).is_loopback, f"pid {conn.pid} listens on {conn.laddr.ip}:{conn.laddr.port}"
