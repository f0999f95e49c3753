"""Tier 4: each district is served by its home region (docs/tier4.md). A request for a district
homed in another region gets a 307 to that region's API host, same path and query, before
anything else runs: its key is never checked against this region's database and no audit row
is written here, as keys and audit rows live in the district's home region.

The district comes from the API key's public prefix (`<district>-<hex>`, auth.new_key): every
request carries its key, so clients change nothing, and no database is needed to read it.
The prefix is not trusted: a key naming another district than its own is sent to that
district's region, whose database refuses it like any bad key. Keys made before keys named
their district, and requests without a key, are served here.

The directory (a DynamoDB global table: `district_id` -> `home_region`, read with GetItem
from this region's replica) is cached per district for DIRECTORY_CACHE_SECONDS, "no entry"
included. While it is unreachable, the last answer keeps serving (it is retried at most every
RETRY_SECONDS per district); a district this process has never looked up gets 503 with
Retry-After, as it could belong to any region."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from starlette.concurrency import run_in_threadpool

from app.api.limits import ASGIApp, send_error
from app.core.auth import key_district
from app.core.settings import Settings

log = logging.getLogger("app.api")

ROUTED_PREFIX = "/v1/"  # the district's data; probes, metrics and SageMaker's routes are local
RETRY_SECONDS = 5.0  # while the directory is down, one lookup per district this often
CACHE_SIZE = 100_000  # districts remembered (a state-wide deployment has hundreds)
# A lookup gives up within about two seconds: a slow directory must not hold requests longer
# than the database pool's own timeout would.
CLIENT_CONFIG = Config(
    connect_timeout=1, read_timeout=1, retries={"max_attempts": 2, "mode": "standard"}
)


class DirectoryUnavailableError(RuntimeError):
    """The directory did not answer and this district has no earlier answer to fall back on."""


class DistrictDirectory:
    """The home region of each district (None: the directory has no entry), cached."""

    def __init__(
        self,
        table: str,
        region: str,
        ttl: float,
        client: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = table
        self.ttl = ttl
        self.clock = clock
        self._client = client or boto3.client("dynamodb", region_name=region, config=CLIENT_CONFIG)
        self._answers: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self._lock = threading.Lock()  # lookups run in the thread pool

    def cached(self, district: str) -> tuple[bool, str | None]:
        """(fresh, home region): an answer still within its TTL, without a lookup."""
        with self._lock:
            answer = self._answers.get(district)
        if answer is None or answer[0] <= self.clock():
            return False, None
        return True, answer[1]

    def home_region(self, district: str) -> str | None:
        fresh, region = self.cached(district)
        if fresh:
            return region
        try:
            item = self._client.get_item(
                TableName=self.table,
                Key={"district_id": {"S": district}},
                ProjectionExpression="home_region",
            ).get("Item")
        except (BotoCoreError, ClientError) as exc:
            with self._lock:
                stale = self._answers.get(district)
                if stale is None:
                    raise DirectoryUnavailableError(str(exc)) from exc
                self._remember(district, stale[1], RETRY_SECONDS)
            log.warning(
                "district directory unavailable; serving the last answer",
                extra={"district": district, "error": str(exc)[:300]},
            )
            return stale[1]
        region = item["home_region"]["S"] if item and "home_region" in item else None
        with self._lock:
            self._remember(district, region, self.ttl)
        return region

    def _remember(self, district: str, region: str | None, ttl: float) -> None:
        self._answers[district] = (self.clock() + ttl, region)
        self._answers.move_to_end(district)
        while len(self._answers) > CACHE_SIZE:
            self._answers.popitem(last=False)


class RegionRedirectMiddleware:
    """307 to the home region's host for a district homed elsewhere (plain ASGI: the body is
    neither read nor limited here; a 307 makes the client send it again, same method)."""

    def __init__(
        self,
        app: ASGIApp,
        directory: DistrictDirectory,
        home_region: str,
        hosts: dict[str, str],
        retry_after: int,
    ) -> None:
        self.app = app
        self.directory = directory
        self.home_region = home_region
        self.hosts = hosts
        self.retry_after = retry_after

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(ROUTED_PREFIX):
            await self.app(scope, receive, send)
            return
        key = dict(scope["headers"]).get(b"x-api-key", b"").decode("latin-1")
        district = key_district(key)
        if district is None:
            await self.app(scope, receive, send)
            return
        fresh, region = self.directory.cached(district)
        if not fresh:  # GetItem blocks: off the event loop
            try:
                region = await run_in_threadpool(self.directory.home_region, district)
            except DirectoryUnavailableError:
                log.error("district directory unavailable", extra={"district": district})
                await send_error(
                    send,
                    503,
                    "district directory unavailable, retry later",
                    {"Retry-After": str(self.retry_after)},
                )
                return
        if region is None or region == self.home_region:
            await self.app(scope, receive, send)
            return
        host = self.hosts.get(region)
        if host is None:
            log.error("no API host for region", extra={"district": district, "region": region})
            await send_error(
                send,
                503,
                f"district {district} is served in {region}, which has no API host here",
                {"Retry-After": str(self.retry_after)},
            )
            return
        target = f"https://{host}{scope.get('raw_path', scope['path'].encode()).decode()}"
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        await send_error(
            send,
            307,
            f"district {district} is served in {region}",
            {"Location": target, "Cache-Control": "no-store"},
        )


def add_region_redirect(app: Any, settings: Settings) -> None:
    """Install the redirect when the stack has a district directory (tier 4 regional stacks)."""
    if not settings.district_directory_table:
        return
    assert settings.home_region  # Settings refuses a directory without HOME_REGION
    app.add_middleware(
        RegionRedirectMiddleware,
        directory=DistrictDirectory(
            settings.district_directory_table,
            settings.home_region,
            settings.directory_cache_seconds,
        ),
        home_region=settings.home_region,
        hosts=settings.region_api_hosts,
        retry_after=settings.db_retry_after_seconds,
    )
