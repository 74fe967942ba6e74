"""Move modules and rewrite every import and dotted/path reference to them.

    python tools/reorg_imports.py --move            # git mv per MOVES, then rewrite
    python tools/reorg_imports.py                   # rewrite only (after merging a branch
                                                    # that still imports the old names)

Used once for the package layout of issue 14; kept so that a branch written against the old
layout can be brought over after a merge.
"""

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("chatserver", "tests", "bench", "twisted", "tools")
TEXTS = ("docs", "README.md", "systemd", "pyproject.toml", "Makefile", "bench/README.md")

# old dotted module -> new dotted module
MOVES = {
    "chatserver.chat.fanout": "chatserver.chat.delivery.fanout",
    "chatserver.chat.localgroups": "chatserver.chat.delivery.localgroups",
    "chatserver.chat.sync_broadcast": "chatserver.chat.delivery.sync_broadcast",
    "chatserver.chat.presence": "chatserver.chat.delivery.presence",
    "chatserver.chat.ratelimit": "chatserver.chat.limits.ratelimit",
    "chatserver.chat.connect_limits": "chatserver.chat.limits.connect_limits",
    "chatserver.chat.login_throttle": "chatserver.chat.limits.login_throttle",
    "chatserver.chat.auth": "chatserver.chat.auth.websocket",
    "chatserver.chat.tokens": "chatserver.chat.auth.tokens",
    "chatserver.chat.revocation": "chatserver.chat.auth.revocation",
    "chatserver.chat.origins": "chatserver.chat.auth.origins",
    "chatserver.chat.views": "chatserver.chat.auth.views",
    "chatserver.chat.broadcast": "chatserver.chat.operations.operator_actions",
    "chatserver.chat.health": "chatserver.chat.operations.health",
    "chatserver.chat.readiness": "chatserver.chat.operations.readiness",
    "chatserver.chat.metrics": "chatserver.chat.operations.metrics",
    "chatserver.chat.export": "chatserver.chat.operations.export",
    "chatserver.chat.eventlog": "chatserver.chat.services.eventlog",
    "chatserver.chat.permissions": "chatserver.chat.services.permissions",
}

PACKAGE_DOCS = {
    "chatserver.chat.delivery": "Frames to sockets: local groups, the channel layer, presence.",
    "chatserver.chat.limits": "What a user or an address may do: rate buckets, connects, logins.",
    "chatserver.chat.auth": "Who is on the socket: tokens, WebSocket auth, revocation, origins.",
    "chatserver.chat.operations": "For operators: health, readiness, metrics, exports, actions.",
}


def module_path(dotted):
    return ROOT / (dotted.replace(".", "/") + ".py")


def dotted_of(path):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_of(path):
    dotted = dotted_of(path)
    return dotted if path.name == "__init__.py" else dotted.rpartition(".")[0]


def move_files():
    """git mv each module; returns {new path: old package} for the moved files."""
    moved = {}
    for old, new in MOVES.items():
        src, dst = module_path(old), module_path(new)
        if not src.exists():
            print(f"skip {old}: not there", file=sys.stderr)
            continue
        if dst.parent != ROOT / "chatserver/chat" and not dst.parent.exists():
            dst.parent.mkdir(parents=True)
        init = dst.parent / "__init__.py"
        if not init.exists():
            init.write_text(f'"""{PACKAGE_DOCS[dotted_of(dst.parent / "__init__.py")]}"""\n')
            subprocess.run(["git", "add", str(init)], cwd=ROOT, check=True)
        if dst.exists():  # e.g. a package named like the module it replaces
            sys.exit(f"{dst} exists")
        if src.with_suffix("") == dst.parent:  # auth.py -> auth/websocket.py
            tmp = src.with_name(src.stem + "_moving.py")
            subprocess.run(["git", "mv", str(src), str(tmp)], cwd=ROOT, check=True)
            src = tmp
        subprocess.run(["git", "mv", str(src), str(dst)], cwd=ROOT, check=True)
        moved[dst] = old.rpartition(".")[0]
    return moved


def relative(from_package, target):
    """``target`` (dotted) as a relative import base from ``from_package``."""
    here, there = from_package.split("."), target.split(".")
    common = 0
    while common < min(len(here), len(there)) and here[common] == there[common]:
        common += 1
    if common == 0:
        return target
    dots = "." * (len(here) - common + 1)
    return dots + ".".join(there[common:])


def resolve(node, package):
    if node.level == 0:
        return node.module
    base = package.split(".")
    if node.level > 1:
        base = base[: -(node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def render(base, names, package, was_relative):
    where = relative(package, base) if was_relative else base
    parts = [n if a is None else f"{n} as {a}" for n, a in names]
    return f"from {where} import {', '.join(parts)}"


def rewrite_imports(path, old_package=None):
    """Rewrite the imports of moved modules; a file moved itself (``old_package``: where its
    relative imports were written) gets every relative import re-rendered from its new place."""
    original = path.read_text()
    text = rewrite_text(original)  # absolute dotted names first; relative imports below
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    package = package_of(path)
    written_in = old_package or package
    lines = text.splitlines(keepends=True)
    edits = []  # (start line, end line, replacement)
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        base = resolve(node, written_in)
        if base is None:
            continue
        names = [(a.name, a.asname) for a in node.names]
        rel = node.level > 0
        if base in MOVES and is_package_now(base):
            continue  # "from .auth import tokens": the package, not the module it replaced
        if base in MOVES:
            new = [render(MOVES[base], names, package, rel)]
        elif any(f"{base}.{n}" in MOVES for n, _ in names) or (rel and old_package):
            stay = [(n, a) for n, a in names if f"{base}.{n}" not in MOVES]
            new = [render(base, stay, package, rel)] if stay else []
            for n, a in names:
                target = MOVES.get(f"{base}.{n}")
                if target is None:
                    continue
                parent, _, leaf = target.rpartition(".")
                alias = a or (n if leaf != n else None)
                new.append(render(parent, [(leaf, alias)], package, rel))
        else:
            continue
        indent = re.match(r"\s*", lines[node.lineno - 1]).group(0)
        comment = re.search(r"\s+#.*$", lines[node.end_lineno - 1].rstrip("\n"))
        comment = comment.group(0) if comment else ""
        edits.append(
            (node.lineno, node.end_lineno, "".join(f"{indent}{s}{comment}\n" for s in new))
        )
    for start, end, replacement in sorted(edits, reverse=True):
        lines[start - 1 : end] = [replacement]
    new_text = "".join(lines)
    if new_text != original:
        path.write_text(new_text)
        return True
    return False


def rewrite_text(text):
    """Dotted names and repository paths of moved modules, in strings, comments and docs: one
    pass, so that a new name is never taken for an old one (``auth`` became a package)."""
    replacements = {}
    for old, new in MOVES.items():
        replacements[old] = new
        old_path, new_path = old.replace(".", "/") + ".py", new.replace(".", "/") + ".py"
        replacements[old_path] = new_path
        replacements[old_path.removeprefix("chatserver/")] = new_path.removeprefix("chatserver/")
    pattern = "|".join(re.escape(k) for k in sorted(replacements, key=len, reverse=True))

    def replace(match):
        old = match[1]
        rest = match.string[match.end() :]
        if is_package_now(old) and re.match(r"[./]\w", rest):
            return old  # already a name inside the package that took the module's name
        return replacements[old]

    return re.sub(rf"(?<![\w./])({pattern})(?![\w])", replace, text)


def is_package_now(old):
    """Whether ``old`` (dotted or a path) names a package that replaced a module (auth)."""
    dotted = old.removesuffix(".py").replace("/", ".")
    if not dotted.startswith("chatserver."):
        dotted = "chatserver." + dotted
    return (ROOT / dotted.replace(".", "/") / "__init__.py").exists()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--move", action="store_true")
    args = parser.parse_args()
    moved = move_files() if args.move else {}
    changed = []
    for top in SOURCES:
        for path in (ROOT / top).rglob("*.py"):
            if ".venv" in path.parts or "results" in path.parts or path.name == "reorg_imports.py":
                continue
            if rewrite_imports(path, moved.get(path)):
                changed.append(path)
    for top in TEXTS:
        target = ROOT / top
        for path in [target] if target.is_file() else target.rglob("*"):
            if path.is_file() and path.suffix in {".md", ".toml", "", ".conf", ".service"}:
                try:
                    text = path.read_text()
                except UnicodeDecodeError:
                    continue
                new = rewrite_text(text)
                if new != text:
                    path.write_text(new)
                    changed.append(path)
    for path in changed:
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
