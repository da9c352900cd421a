"""``ctune models``: list a registry's versions, show one, move the pointer by hand, write one
as a Triton model repository."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from controller.models.history import PAGE, write_history
from controller.models.listing import ls_lines, show_lines
from controller.models.registry import CURRENT, VERSIONS, Registry, RegistryError, is_registry, split_ref


def models_command(args: argparse.Namespace, say: Callable[[str], None]) -> int:
    """``ctune models ls|show|promote|rollback``."""
    uri, version = split_ref(args.ref) if args.action in ("show", "serve") else (args.registry, None)
    if not is_registry(uri):  # opening a folder's store would create it
        raise RegistryError(f"{uri} is not a model registry (no {CURRENT} or {VERSIONS}/ in it)")
    registry = Registry(uri)
    registry.store.check()
    pointer = registry.pointer()
    if args.action == "ls":
        records = registry.versions()
        if not records:
            raise RegistryError(f"{uri} holds no versions")
        print("\n".join(ls_lines(records, pointer)))
        say(f"history page: {uri}/{PAGE}")
        if pointer.current is None:
            say(f"{uri} has no current.json: `ctune models promote {uri} VERSION` sets one")
        return 0
    if args.action == "show":
        chosen = registry.resolve(version)
        print("\n".join(show_lines(registry.record(chosen), pointer)))
        say(f"model card: {uri}/{VERSIONS}/{chosen}/README.md")
        return 0
    if args.action == "serve":
        from controller.models.serving_layout import write_repository

        name = args.name or uri.rstrip("/").rsplit("/", 1)[-1]
        write_repository(registry, registry.resolve(version), args.out, name, args.runtime, say)
        return 0
    if args.action == "promote":
        registry.record(args.version)
        if pointer.current == args.version:
            say(f"{args.version} is current already")
            return 0
        moved = registry.move(pointer, "promote", args.version, "promoted by hand (ctune models promote)")
    else:
        if len(pointer.stack) < 2:
            raise RegistryError(f"{uri}: no earlier version to roll back to (current: {pointer.current})")
        moved = registry.move(pointer, "rollback", pointer.stack[-1], f"rolled back to {pointer.stack[-2]}")
    if not moved:
        raise RegistryError(f"{uri}: another writer moved the pointer meanwhile; look again (ctune models ls)")
    write_history(registry)
    say(f"current: {registry.pointer().current}")
    return 0
