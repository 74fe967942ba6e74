"""Run the real nginx with the shipped site (systemd/nginx-chatserver.conf) in front of daemons.

The site is transformed only where a test machine differs from a server: the upstream lists the
test's Unix sockets, the HTTPS server listens in plain HTTP on a loopback port (no certificate),
the port-80 redirect server is dropped and log paths point into the test's directory. The map,
the log format, the upstream's other directives and every proxy location stay as shipped.
"""

import grp
import os
import pwd
import re
import shutil
from pathlib import Path

from .processes import Managed, free_port, tcp_port_accepts

SITE = Path(__file__).resolve().parents[2] / "systemd" / "nginx-chatserver.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def server_blocks(text):
    """(start, end) of every top-level ``server { ... }`` block, braces counted."""
    blocks = []
    for match in re.finditer(r"(?m)^server\s*\{", text):
        depth, index = 0, match.end() - 1
        while True:
            char = text[index]
            depth += char == "{"
            depth -= char == "}"
            index += 1
            if depth == 0:
                break
        blocks.append((match.start(), index))
    return blocks


def site_for_test(text, sockets, port, directory):
    """The shipped site with the test's sockets, port and paths (see the module docstring)."""
    servers = "".join(f"    server unix:{path} fail_timeout=0;\n" for path in sockets)
    upstream = re.search(r"(?ms)^upstream chatserver \{\n(.*?)^\}", text)
    assert upstream, "the shipped site has no `upstream chatserver` block"
    # Every `server unix:...` line of the upstream, shipped or commented out, gives way to ours.
    body = re.sub(r"(?m)^\s*#?\s*server unix:\S+[^\n]*\n", "", upstream.group(1))
    text = text[: upstream.start(1)] + servers + body + text[upstream.end(1) :]
    kept = []
    for start, end in server_blocks(text):
        block = text[start:end]
        if re.search(r"(?m)^\s*listen\s+443\b", block):
            kept.append((start, end, block))
    assert len(kept) == 1, "expected one HTTPS server block in the shipped site"
    start, end, block = kept[0]
    block = re.sub(r"(?m)^\s*listen\s+\[::\]:443[^\n]*\n", "", block)
    block = re.sub(r"(?m)^(\s*)listen\s+443[^;]*;", rf"\g<1>listen 127.0.0.1:{port};", block)
    block = re.sub(r"(?m)^\s*ssl_[a-z_]+\s[^\n]*\n", "", block)
    prefix = text[: server_blocks(text)[0][0]]  # the map, log format and upstream
    site = prefix + block + "\n"
    return site.replace("/var/log/nginx/", f"{directory}/")


class Nginx:
    """nginx in the foreground (``daemon off``) with its own prefix, pid, logs and temp paths."""

    def __init__(self, directory, sockets, port=None):
        if NGINX is None:
            raise RuntimeError("nginx is not installed: `make test` installs nginx-light.")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.site = site_for_test(SITE.read_text(), sockets, self.port, self.directory)
        self.process = None

    def config(self):
        d = self.directory
        temp_paths = "".join(
            f"    {kind}_temp_path {d}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # As root, nginx's workers would switch to `nobody`, who cannot open the daemons' 0660
        # sockets: keep them as the user running the test (the daemons' owner).
        user = ""
        if os.geteuid() == 0:
            user = f"user {pwd.getpwuid(0).pw_name} {grp.getgrgid(0).gr_name};\n"
        return (
            f"{user}daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\n"
            f"error_log {d}/error.log info;\n"
            "events { worker_connections 1024; }\n"
            f"http {{\n    access_log {d}/access.log;\n{temp_paths}"
            f"    include {d}/site.conf;\n}}\n"
        )

    def start(self, timeout=30):
        (self.directory / "site.conf").write_text(self.site)
        (self.directory / "nginx.conf").write_text(self.config())
        self.managed = Managed(
            "nginx",
            [NGINX, "-p", str(self.directory), "-c", str(self.directory / "nginx.conf")]
            + ["-e", str(self.directory / "error.log")],  # not the built-in /var/log path
            log_path=self.directory / "stderr.log",
            new_session=False,
        )
        self.process = self.managed.popen
        self.managed.wait_ready(tcp_port_accepts(self.port), timeout, self.log)
        return self

    def log(self):
        parts = []
        for name in ("stderr.log", "error.log"):
            path = self.directory / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def access_log(self):
        path = self.directory / "chatserver.access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, timeout=10):
        """SIGTERM by PID (a fast shutdown: a graceful one would wait for every WebSocket)."""
        if self.process is not None:
            self.managed.stop(timeout)
