"""The API-key commands, run with the master login: `create-key` (the key printed once, only
its hash stored), `list-keys`, and `revoke-key` (deactivated in the database, then announced
through Redis so that every replica forgets the key within about a second)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from app.cli.exit_codes import EXIT_OK, EXIT_USAGE
from app.core.settings import Settings

log = logging.getLogger("app.cli")


def create_key_command(args: argparse.Namespace, settings: Settings) -> int:
    from app.core import db
    from app.core.auth import create_key

    with db.connect_owner(settings) as conn:
        client_id, key = create_key(
            conn,
            settings.api_key_pepper,
            args.name,
            args.school_id,
            args.district_id,
            args.key_class,
        )
    print(json.dumps({"client_id": client_id, "api_key": key, "class": args.key_class}))
    return EXIT_OK


def list_keys_command(args: argparse.Namespace, settings: Settings) -> int:
    from app.core import db
    from app.core.auth import list_keys

    with db.connect_owner(settings) as conn:
        print(json.dumps(list_keys(conn), default=str))
    return EXIT_OK


def revoke_key_command(args: argparse.Namespace, settings: Settings) -> int:
    from app.core import db
    from app.core.auth import announce_revocation, revoke_key
    from app.core.cache import Cache

    with db.connect_owner(settings) as conn:
        revoked = revoke_key(conn, args.client_id, args.prefix)
    if not revoked:
        print("no active key matches", file=sys.stderr)
        return EXIT_USAGE
    announced = announce_revocation(Cache(settings.redis_url, settings.cache_prefix))
    if not announced and settings.redis_url:
        log.warning(
            "revocation not announced (Redis unavailable): replicas may accept the key for 30 s"
        )
    print(json.dumps({"revoked": revoked, "announced": announced}))
    return EXIT_OK
