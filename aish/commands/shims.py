"""`aish --install-shims [DIR]`: every specialist as a command on PATH, user-defined ones too.

A shim is a symlink to the `aish` script; `aish` looks at the name it was started under, so
`sherlock ...` runs as `aish sherlock ...`.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from aish.commands.context import Context
from aish.commands.registry import JSON, Arg, command
from aish.errors import StorageError


def aish_script() -> Path:
    here = Path(sys.argv[0])
    if here.name == "aish" and here.exists():
        return here.resolve()
    found = shutil.which("aish") or str(Path(sys.executable).parent / "aish")
    return Path(found).resolve()


@command("install-shims", "aish", "Put every specialist on PATH as a command (symlinks to aish).",
         args=(Arg("DIR", "where to put them (default ~/.local/bin)", nargs="?",
                   completes="path"), JSON),
         example="aish --install-shims ~/.local/bin")
def install_shims(ctx: Context, args) -> int:
    folder = Path(args.dir or Path(ctx.environ.get("HOME", "~")) / ".local" / "bin").expanduser()
    target = aish_script()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {folder}: {exc.strerror}") from None
    done, kept = [], []
    for name in sorted(ctx.specialists):
        link = folder / name
        if link.is_symlink() and link.resolve() == target:
            done.append(name)
            continue
        if link.exists() or link.is_symlink():
            kept.append(name)  # never replace a file that is not our shim
            continue
        try:
            os.symlink(target, link)
        except OSError as exc:
            raise StorageError(f"cannot create {link}: {exc.strerror}") from None
        done.append(name)
    if args.json:
        import json

        ctx.out.data(json.dumps({"dir": str(folder), "installed": done, "skipped": kept}))
        return 0
    ctx.out.note(f"Installed in {folder}: {', '.join(done) or 'nothing'}")
    if kept:
        ctx.out.warn(f"left alone (a file of that name exists): {', '.join(kept)}")
    if str(folder) not in ctx.environ.get("PATH", "").split(os.pathsep):
        ctx.out.warn(f"{folder} is not on PATH")
    return 0
