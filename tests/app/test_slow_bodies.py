"""Clients that send their bodies slowly, or not at all, against a real uvicorn server: they
hold no keyed client's slot (admission counts a request once its body has arrived), and a body
not received within BODY_READ_TIMEOUT_SECONDS is refused with 408."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import httpx

from tests.app.conftest import District
from tests.app.helpers import auth, scalar, served

# The attack: as many connections as the worker admits at once (MAX_IN_FLIGHT's default), no
# API key, each declaring a 1,000-byte body, sending 10 bytes of it and then nothing.
ATTACKERS = 64
DECLARED, SENT = 1000, 10
# The attackers stay silent this long at most (or until the keyed client is done).
SILENCE_SECONDS = 9.5


def slow_body_request(path: str, declared: int, sent: int) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    return head.encode() + b"{" * sent


@contextmanager
def slow_bodies(url: str, count: int, path: str = "/v1/events") -> Iterator[list[socket.socket]]:
    """`count` connections that each send part of a body and then stay silent."""
    address = urlparse(url)
    conns: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.create_connection((address.hostname, address.port), timeout=30)
            s.sendall(slow_body_request(path, DECLARED, SENT))
            conns.append(s)
        yield conns
    finally:
        for s in conns:
            s.close()


def read_response(s: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, "connection closed before a response"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        body += s.recv(65536)
    return int(lines[0].split(" ", 2)[1]), headers, body


def test_slow_bodies_without_a_key_hold_no_keyed_clients_slot(district: District) -> None:
    settings = district.settings_with(cache_prefix="slow-bodies", cache_ttl_risk_seconds=0)
    assert settings.max_in_flight == ATTACKERS  # the default: the attack fills it exactly
    # A day the student has on record, restated as it is: the district other tests share
    # keeps its rows and features.
    day, status = scalar(
        district.url,
        "SELECT array[date::text, status::text] FROM attendance WHERE student_id = 1"
        " ORDER BY date DESC LIMIT 1",
    )
    event = {
        "idempotency_key": "slow-bodies-1",
        "student_id": 1,
        "type": "attendance_marked",
        "date": day,
        "status": status,
    }
    timings: dict[str, float] = {}
    statuses: dict[str, int] = {}
    with served(settings) as url, slow_bodies(url, ATTACKERS):
        attack_started = time.monotonic()
        time.sleep(0.5)  # every attacker's request has reached the app and is reading its body
        with httpx.Client(base_url=url, timeout=SILENCE_SECONDS + 5) as http:
            for name, send in {
                "risk": lambda: http.get(
                    "/v1/students/1/risk", headers=auth(district.keys["district1"])
                ),
                "events": lambda: http.post(
                    "/v1/events",
                    json={"events": [event]},
                    headers=auth(district.keys["school1"]),
                ),
            }.items():
                started = time.monotonic()
                statuses[name] = send().status_code
                timings[name] = time.monotonic() - started
        during_attack = time.monotonic() - attack_started < SILENCE_SECONDS
    print({"statuses": statuses, "seconds": {k: round(v, 3) for k, v in timings.items()}})
    assert statuses == {"risk": 200, "events": 202}
    assert during_attack  # answered while every attacker was still holding its connection
    # Answered as usual, not after the attack: well under the attackers' silence.
    assert max(timings.values()) < SILENCE_SECONDS / 4


def test_a_body_not_received_in_time_is_a_408(district: District) -> None:
    settings = district.settings_with(cache_prefix="slow-bodies-408", body_read_timeout_seconds=1)
    with served(settings) as url, slow_bodies(url, 1) as (conn,):
        started = time.monotonic()
        status, headers, body = read_response(conn)
        took = time.monotonic() - started
        assert conn.recv(1) == b""  # and the connection is closed: its body is unread
    assert status == 408
    assert json.loads(body) == {"detail": "request body not received within 1 s"}
    assert headers["connection"] == "close"
    assert 0.9 < took < 5


def test_a_body_sent_in_time_in_pieces_is_served(district: District) -> None:
    """The timeout bounds the whole body, not each read: a body sent in pieces within it is
    read whole."""
    settings = district.settings_with(cache_prefix="slow-bodies-ok", body_read_timeout_seconds=3)
    body = json.dumps({"events": [{"idempotency_key": "in-pieces", "student_id": 1}]}).encode()
    with served(settings) as url:
        parsed = urlparse(url)
        with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as s:
            key = district.keys["school1"]
            s.sendall(
                f"POST /v1/events HTTP/1.1\r\nHost: api\r\nX-API-Key: {key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            )
            for i in range(0, len(body), 10):
                s.sendall(body[i : i + 10])
                time.sleep(0.1)
            status, _, answer = read_response(s)
    assert status == 202
    assert json.loads(answer)["rejected"][0]["idempotency_key"] == "in-pieces"
