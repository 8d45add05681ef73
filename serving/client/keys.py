"""`deepfake-pipeline keys create|list|revoke`: the detection service's API keys, in its history database."""

import argparse
import sys


def keys(args: argparse.Namespace) -> int:
    """`keys create|list|revoke`: the store is opened (and migrated) here, so keys can be made before the
    service first starts on a new database."""
    from serving.service.auth import KeyStore

    if not args.history_url:
        print("keys needs --history-url (or DEEPFAKE_HISTORY_URL): the service's history database", file=sys.stderr)
        return 2
    store = KeyStore.open(args.history_url)
    try:
        if args.action == "create":
            try:
                key = store.create(args.name, args.admin)
            except ValueError as e:
                print(e, file=sys.stderr)
                return 2
            role = "an admin key" if args.admin else "a key"
            print(f"Created {role} for {args.name}. It is shown only this once; keep it secret:")
            print(key)
        elif args.action == "list":
            print(f"{'name':<24} {'key id':<16} {'admin':<5} {'created':<25} revoked")
            for info in store.list():
                revoked = info.revoked_at.isoformat(timespec="seconds") if info.revoked_at else "-"
                created = info.created_at.isoformat(timespec="seconds")
                print(f"{info.name:<24} {info.key_id:<16} {'yes' if info.admin else 'no':<5} {created:<25} {revoked}")
        else:
            revoked = store.revoke(args.name, args.key_id)
            if not revoked:
                print(f"{args.name} holds no live key", file=sys.stderr)
                return 1
            print(f"Revoked {revoked} key(s) of {args.name}")
    finally:
        store.close()
    return 0
