"""docs/architecture.md stays a true map: every module path it names exists, and every package
of the code is on it (and in the README's layout table)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "architecture.md").read_text()
README = (ROOT / "README.md").read_text()
PATH = re.compile(r"`((?:chatserver/|chat/|daemon/|twisted/|web/)?[\w/]+\.py|[\w/]+/)`")
BASES = ("", "chatserver/", "chatserver/chat/", "chatserver/daemon/", "chatserver/web/")


def named_paths(text):
    for match in PATH.finditer(text):
        yield match.group(1)


def exists(path):
    if "/" not in path:  # a module named in the context of its package: somewhere in the code
        return any((ROOT / "chatserver").rglob(path))
    return any((ROOT / base / path).exists() for base in BASES)


def test_every_path_the_map_names_exists():
    missing = sorted({path for path in named_paths(DOC) if not exists(path)})
    assert not missing, f"docs/architecture.md names what is not there: {missing}"


def packages():
    for init in sorted((ROOT / "chatserver").rglob("__init__.py")):
        package = init.parent.relative_to(ROOT / "chatserver")
        if package.parts and package.parts[-1] in {"migrations", "commands", "management"}:
            continue
        if package.parts and package.parts[0] == "settings":
            continue
        if package.parts:
            yield package.as_posix()


def test_every_package_is_on_the_map_and_in_the_readme():
    for package in packages():
        short = package.removeprefix("chat/") if package.startswith("chat/") else package
        assert f"{short}/" in DOC or f"{package}/" in DOC, f"{package} missing in architecture.md"
        assert f"chatserver/{package}/" in README, f"{package} missing in README's layout"


def test_every_daemon_module_is_on_the_map():
    modules = sorted(p.name for p in (ROOT / "chatserver" / "daemon").glob("*.py"))
    missing = [m for m in modules if m != "__init__.py" and m not in DOC]
    assert not missing, f"daemon modules missing in architecture.md: {missing}"
