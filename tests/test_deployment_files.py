"""The deployment files in systemd/ agree with the daemon and pass their own tools' checks.

``systemd-analyze verify`` and ``nginx -t`` run when the tools are installed (the tests skip
otherwise); the rest needs nothing but the repository. Each checker also gets a sabotaged copy,
so a checker that silently accepts everything fails here instead of passing forever.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "chatserver.service"
SOCKET_UNIT = ROOT / "systemd" / "chatserver.socket"
TEMPLATE_UNIT = ROOT / "systemd" / "chatserver@.service"
TEMPLATE_SOCKET = ROOT / "systemd" / "chatserver@.socket"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"
NGINX_SITE = ROOT / "systemd" / "nginx-chatserver.conf"

# --------------------------------------------------------------------------------------------
# Reading the unit file


def unit_entries(text):
    """(section, key, value) for every assignment, with backslash continuations joined."""
    entries = []
    section = None
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line[0] in "#;"):
            continue
        if logical and line[:1] in ("#", ";"):
            continue  # systemd skips comment lines inside a continued line
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        if logical.startswith("[") and logical.endswith("]"):
            section = logical[1:-1]
        elif "=" in logical:
            key, value = logical.split("=", 1)
            entries.append((section, key.strip(), value.strip()))
        logical = ""
    return entries


def unit_values(text, key, section="Service"):
    return [v for s, k, v in unit_entries(text) if s == section and k == key]


def exec_start_argv(text):
    (line,) = unit_values(text, "ExecStart")
    return shlex.split(line.lstrip("-@:+!"))


def split_twistd_argv(argv):
    """(twistd's own options, the chat sub-command's options) of a twistd command line."""
    assert Path(argv[0]).name == "twistd", argv
    assert "chat" in argv, f"ExecStart does not run the chat sub-command: {argv}"
    index = argv.index("chat")
    return argv[1:index], argv[index + 1 :]


def systemd_seconds(value):
    """A systemd time span ("30", "30s", "1min 30s", "2m") in seconds."""
    units = {
        "us": 1e-6,
        "ms": 1e-3,
        "s": 1,
        "sec": 1,
        "m": 60,
        "min": 60,
        "h": 3600,
        "hr": 3600,
        "d": 86400,
    }
    value = value.strip()
    if value == "infinity":
        return float("inf")
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    if not parts or re.sub(r"[\d.\sa-z]", "", value):
        raise ValueError(f"not a time span: {value!r}")
    return sum(float(number) * units[unit or "s"] for number, unit in parts)


def commented_manhole_arguments(text):
    """The manhole options the unit documents in its comments (to append to ExecStart)."""
    match = re.search(r"#\s*(--manhole .*?)\n(?:#\s*(.*?)\n)?", text)
    assert match, "the unit no longer documents how to enable the manhole"
    joined = " ".join(part.rstrip("\\ ") for part in match.groups() if part)
    return shlex.split(joined)


# --------------------------------------------------------------------------------------------
# Parsing options with the real parsers, in a child process: the chat Options install Twisted's
# asyncio reactor, which must not clash with whatever reactor this test process already has.

PARSE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from twisted.python import usage
    from twisted.scripts.twistd import ServerOptions
    from chatserver.daemon.options import Options

    twistd_args, chat_args = json.loads(sys.argv[1])
    result = {}
    try:
        server = ServerOptions()
        server.parseOptions(twistd_args)
        result["twistd"] = {k: server[k] for k in ("nodaemon", "pidfile", "logfile")}
        options = Options()
        options.parseOptions(chat_args)
        plain = (str, int, float, list, type(None))
        result["chat"] = {k: v for k, v in options.items() if isinstance(v, plain)}
        # getopt accepts unique prefixes (--proxy-header): report the exact names as well.
        result["long_options"] = sorted(
            {name.rstrip("=") for name in server.longOpt + options.longOpt}
        )
    except usage.UsageError as error:
        result["error"] = str(error)
    print(json.dumps(result))
    """
)


def parse_with_real_options(twistd_args, chat_args):
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    # --production must not need a production environment to parse: settings load later.
    for name in (
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "REDIS_URL",
        "DATABASE_URL",
        "DJANGO_SETTINGS_MODULE",
    ):
        env.pop(name, None)
    completed = subprocess.run(
        [sys.executable, "-c", PARSE_SCRIPT, json.dumps([twistd_args, chat_args])],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# The unit and the daemon's options


@pytest.fixture(scope="module")
def unit_text():
    return UNIT.read_text()


def test_execstart_runs_twistd_in_the_foreground_without_pidfile(unit_text):
    argv = exec_start_argv(unit_text)
    twistd_args, _ = split_twistd_argv(argv)
    parsed = parse_with_real_options(twistd_args, [])
    assert "error" not in parsed, parsed
    assert parsed["twistd"] == {"nodaemon": 1, "pidfile": "", "logfile": "-"}


def test_execstart_chat_options_are_accepted_by_the_daemon(unit_text):
    _, chat_args = split_twistd_argv(exec_start_argv(unit_text))
    parsed = parse_with_real_options([], chat_args)
    assert "error" not in parsed, parsed["error"]
    chat = parsed["chat"]
    assert chat["endpoints"] == ["unix:/run/daphne/daphne.sock:mode=660:lockfile=1:backlog=1024"]
    assert chat["settings"] == "chatserver.settings.production"
    assert chat["proxy-headers"]
    spelled = {arg[2:].split("=", 1)[0] for arg in chat_args if arg.startswith("--")}
    assert spelled <= set(parsed["long_options"]), "abbreviated or unknown option names"


def test_execstart_twistd_options_are_spelled_out(unit_text):
    twistd_args, _ = split_twistd_argv(exec_start_argv(unit_text))
    parsed = parse_with_real_options(twistd_args, [])
    spelled = {arg[2:].split("=", 1)[0] for arg in twistd_args if arg.startswith("--")}
    assert spelled <= set(parsed["long_options"])


def test_parser_check_can_fail():
    parsed = parse_with_real_options([], ["--socket", "/run/daphne/daphne.sock", "--no-such-opt"])
    assert "no-such-opt" in parsed["error"]


def test_documented_manhole_options_are_accepted(unit_text, tmp_path):
    keys = tmp_path / "manhole_authorized_keys"
    keys.write_text("")
    arguments = commented_manhole_arguments(unit_text)
    assert arguments[0] == "--manhole" and "--manhole-keys" in arguments
    arguments[arguments.index("--manhole-keys") + 1] = str(keys)
    _, chat_args = split_twistd_argv(exec_start_argv(unit_text))
    parsed = parse_with_real_options([], chat_args + arguments)
    assert "error" not in parsed, parsed["error"]
    assert parsed["chat"]["manhole"].startswith("unix:/run/daphne/")
    assert parsed["chat"]["manhole"].endswith(":mode=600")


def test_migrations_run_exactly_once(unit_text):
    """Either ExecStartPre migrates and the daemon gets --no-migrate, or the daemon migrates."""
    _, chat_args = split_twistd_argv(exec_start_argv(unit_text))
    pre = " ".join(unit_values(unit_text, "ExecStartPre"))
    migrates_before = re.search(r"\bchatserver migrate\b", pre) is not None
    assert migrates_before == ("--no-migrate" in chat_args)
    if migrates_before:
        assert "--noinput" in pre or "--no-input" in pre
        # The management command must load the same settings as the daemon's --production.
        assert "DJANGO_SETTINGS_MODULE=chatserver.settings.production" in unit_values(
            unit_text, "Environment"
        )


def test_stop_timeout_leaves_room_for_the_drain(unit_text):
    from chatserver.daemon.options import Options

    _, chat_args = split_twistd_argv(exec_start_argv(unit_text))
    drain = Options()["drain"]
    if "--drain" in chat_args:
        drain = float(chat_args[chat_args.index("--drain") + 1])
    (timeout,) = unit_values(unit_text, "TimeoutStopSec")
    # The drain is followed by closing the channel layer: keep a few seconds on top of it.
    assert drain + 5 <= systemd_seconds(timeout) < float("inf")
    assert unit_values(unit_text, "KillSignal") in ([], ["SIGTERM"])


def test_systemd_seconds():
    assert systemd_seconds("30") == 30
    assert systemd_seconds("1min 30s") == 90
    assert systemd_seconds("5s") == 5
    with pytest.raises(ValueError):
        systemd_seconds("abc")


def test_unit_directories_and_socket_permissions(unit_text):
    service = dict((k, v) for s, k, v in unit_entries(unit_text) if s == "Service")
    assert service["User"] == "chatserver"
    # nginx (www-data) connects to the 0660 socket through the group.
    assert service["Group"] == "www-data"
    assert service["RuntimeDirectory"] == "daphne"
    assert service["RuntimeDirectoryMode"] == "0750"
    assert service["StateDirectory"] == "chatserver"
    # The state directory is group www-data too: keep nginx out of it.
    assert service["StateDirectoryMode"] == "0700"
    assert "CHATSERVER_STATE_DIR=/var/lib/chatserver" in unit_values(unit_text, "Environment")
    assert service["UMask"] == "0007"
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"


# --------------------------------------------------------------------------------------------
# systemd-analyze verify


def stub_programs(text, directory):
    """The unit with every Exec*= program pointed at a stub executable of the same name."""
    bin_dir = directory / "bin"
    bin_dir.mkdir(exist_ok=True)

    def stub(match):
        prefix, program = match.group(1), match.group(2)
        path = bin_dir / Path(program).name
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o755)
        return f"{prefix}{path}"

    return re.sub(r"(?m)^(Exec\w+=[-@:+!]*)(/\S+)", stub, text)


def verify_units(units, directory):
    """Problems systemd-analyze reports about copies of ``units`` ({file name: text}).

    ``verify`` refuses a unit whose ExecStart binary is missing, and /opt/chatserver/venv is not
    here: every Exec*= program is pointed at a stub executable of the same name. Warnings
    ("Unknown key", "Failed to parse ...") do not change the exit status, so every line that
    names one of the units counts as a problem. A template is verified as an instance
    (chatserver@1.service), so that %i resolves.
    """
    paths = []
    for name, text in units.items():
        path = directory / name
        path.write_text(stub_programs(text, directory))
        paths.append(str(path))
    completed = subprocess.run(
        ["systemd-analyze", "verify", *paths],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = (completed.stdout + completed.stderr).splitlines()
    problems = [line for line in output if any(name in line for name in units)]
    if completed.returncode != 0 and not problems:
        problems = output or [f"systemd-analyze exited with {completed.returncode}"]
    return problems


def verify_unit(text, directory):
    """Problems in chatserver.service ``text``, verified with its socket unit beside it."""
    units = {"chatserver.service": text, "chatserver.socket": SOCKET_UNIT.read_text()}
    return verify_units(units, directory)


needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


@pytest.fixture
def working_systemd_analyze(tmp_path):
    """Skip where systemd-analyze cannot verify even a trivial unit (odd containers)."""
    control = tmp_path / "control"
    control.mkdir()
    trivial = "[Unit]\nDescription=control\n\n[Service]\nExecStart=/bin/true\n"
    problems = verify_unit(trivial, control)
    if problems:
        pytest.skip(f"systemd-analyze cannot verify units here: {problems[:3]}")


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_unit(unit_text, tmp_path, working_systemd_analyze):
    assert verify_unit(unit_text, tmp_path) == []


@needs_systemd_analyze
@pytest.mark.parametrize(
    "units",
    [
        {"chatserver.socket": SOCKET_UNIT, "chatserver.service": UNIT},
        {"chatserver@1.service": TEMPLATE_UNIT, "chatserver@1.socket": TEMPLATE_SOCKET},
    ],
    ids=["socket", "template"],
)
def test_systemd_analyze_verify_accepts_the_other_units(units, tmp_path, working_systemd_analyze):
    texts = {name: path.read_text() for name, path in units.items()}
    assert verify_units(texts, tmp_path) == []
    sabotaged = {name: text.replace("0660", "0999") for name, text in texts.items()}
    assert verify_units(sabotaged, tmp_path) != []  # SocketMode=0999 is refused


@needs_systemd_analyze
@pytest.mark.parametrize(
    "sabotage",
    [
        ("Restart=on-failure", "Restrat=on-failure"),  # unknown key: a warning, exit status 0
        ("TimeoutStopSec=30", "TimeoutStopSec=thirty"),  # unparsable value: also exit status 0
        ("RestrictAddressFamilies=AF_UNIX", "RestrictAddressFamilies=AF_BOGUS"),
        ("\nExecStart=", "\n#ExecStart="),  # no ExecStart: a real error
    ],
)
def test_systemd_analyze_check_can_fail(unit_text, tmp_path, working_systemd_analyze, sabotage):
    old, new = sabotage
    assert old in unit_text
    assert verify_unit(unit_text.replace(old, new, 1), tmp_path) != []


# --------------------------------------------------------------------------------------------
# The nginx site


@pytest.fixture(scope="module")
def site_text():
    return NGINX_SITE.read_text()


def nginx_seconds(value):
    """An nginx time ("86400", "86400s", "1d", "24h", "1h 30m") in seconds."""
    units = {"ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w)?", value.replace(" ", ""))
    if not parts or re.sub(r"\d+(ms|s|m|h|d|w)?", "", value.replace(" ", "")):
        raise ValueError(f"not an nginx time: {value!r}")
    return sum(int(number) * units[unit or "s"] for number, unit in parts)


def nginx_directives(text, name):
    """Arguments of every ``name ...;`` directive outside comments."""
    code = re.sub(r"#[^\n]*", "", text)
    pattern = r"(?m)^\s*" + re.escape(name) + r"\s+([^;{}\n]*);"
    return [m.group(1).strip() for m in re.finditer(pattern, code)]


def test_nginx_read_timeout_keeps_websockets_open(site_text):
    timeouts = nginx_directives(site_text, "proxy_read_timeout")
    assert timeouts, "proxy_read_timeout is missing (nginx's default of 60 s cuts WebSockets)"
    assert all(nginx_seconds(value) >= 86400 for value in timeouts), timeouts


def test_nginx_seconds():
    assert nginx_seconds("86400") == 86400
    assert nginx_seconds("86400s") == 86400
    assert nginx_seconds("1d") == 86400
    assert nginx_seconds("23h") < 86400
    with pytest.raises(ValueError):
        nginx_seconds("forever")


def test_nginx_site_matches_the_unit(site_text, unit_text):
    from chatserver.daemon.options import Options

    _, chat_args = split_twistd_argv(exec_start_argv(unit_text))
    socket_path = chat_args[chat_args.index("--socket") + 1]
    assert nginx_directives(site_text, "server") == [f"unix:{socket_path} fail_timeout=0"]
    assert "http://chatserver" in nginx_directives(site_text, "proxy_pass")
    assert nginx_directives(site_text, "proxy_http_version") == ["1.1"]
    headers = nginx_directives(site_text, "proxy_set_header")
    assert "Upgrade $http_upgrade" in headers
    assert "Connection $connection_upgrade" in headers
    assert "Host $host" in headers
    # HTTP bodies get the same limit as WebSocket messages in the daemon.
    (body_limit,) = nginx_directives(site_text, "client_max_body_size")
    assert body_limit == "1m"
    assert Options()["max-message-size"] == 1024 * 1024


def make_test_certificate(directory):
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chat.example.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fullchain.pem", directory / "privkey.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def nginx_test(site, directory):
    """Run ``nginx -t`` on the site inside a minimal http {} block; return (ok, output).

    Only what nginx -t would touch outside ``directory`` is redirected: the certificate paths
    (a throw-away self-signed certificate), log files, the pid file and temporary paths.
    """
    cert_path, key_path = make_test_certificate(directory)
    site = re.sub(r"(?m)^(\s*ssl_certificate\s+)\S+;", rf"\g<1>{cert_path};", site)
    site = re.sub(r"(?m)^(\s*ssl_certificate_key\s+)\S+;", rf"\g<1>{key_path};", site)
    site = site.replace("/var/log/nginx/", f"{directory}/")
    (directory / "site.conf").write_text(site)
    temp_paths = "\n".join(
        f"    {kind}_temp_path {directory}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (directory / "nginx.conf").write_text(
        f"pid {directory}/nginx.pid;\n"
        f"error_log {directory}/error.log;\n"
        "events {}\n"
        "http {\n"
        f"    access_log {directory}/access.log;\n"
        f"{temp_paths}\n"
        f"    include {directory}/site.conf;\n"
        "}\n"
    )
    command = ["nginx", "-t", "-p", str(directory), "-c", str(directory / "nginx.conf")]
    completed = subprocess.run(
        [*command[:2], "-e", str(directory / "error.log"), *command[2:]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "invalid option" in completed.stderr:  # nginx < 1.19.5 has no -e
        completed = subprocess.run(command, capture_output=True, text=True, timeout=60)
    output = completed.stdout + completed.stderr
    return completed.returncode == 0 and "test is successful" in output, output


needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")


@needs_nginx
def test_nginx_accepts_the_site(site_text, tmp_path):
    ok, output = nginx_test(site_text, tmp_path)
    assert ok, output
    # Warnings (e.g. a duplicate or conflicting directive) pass nginx -t: refuse them too.
    assert "[warn]" not in output and "[emerg]" not in output, output


@needs_nginx
@pytest.mark.parametrize(
    "sabotage",
    [
        ("proxy_http_version 1.1;", "proxy_http_version 1.1"),  # missing semicolon
        ("proxy_read_timeout 86400s;", "proxy_read_timeout forever;"),
        ("keepalive 32;", "keepalive_connections 32;"),
    ],
)
def test_nginx_check_can_fail(site_text, tmp_path, sabotage):
    old, new = sabotage
    assert old in site_text
    ok, _ = nginx_test(site_text.replace(old, new, 1), tmp_path)
    assert not ok


# --------------------------------------------------------------------------------------------
# Socket activation, Type=notify and the templated units


@pytest.fixture(scope="module")
def template_text():
    return TEMPLATE_UNIT.read_text()


def socket_values(path, key):
    return unit_values(path.read_text(), key, section="Socket")


@pytest.mark.parametrize(
    ("service", "socket_unit", "path"),
    [
        (UNIT, SOCKET_UNIT, "/run/daphne/daphne.sock"),
        (TEMPLATE_UNIT, TEMPLATE_SOCKET, "/run/daphne/daphne-%i.sock"),
    ],
)
def test_the_socket_unit_owns_the_path_the_daemon_serves(service, socket_unit, path):
    from chatserver.daemon.options import LISTEN_BACKLOG

    _, chat_args = split_twistd_argv(exec_start_argv(service.read_text()))
    assert chat_args[chat_args.index("--socket") + 1] == path
    assert socket_values(socket_unit, "ListenStream") == [path]
    assert socket_values(socket_unit, "SocketMode") == ["0660"]
    assert socket_values(socket_unit, "SocketUser") == ["chatserver"]
    assert socket_values(socket_unit, "SocketGroup") == ["www-data"]  # nginx's group
    assert socket_values(socket_unit, "Accept") in ([], ["no"])
    # The daemon listens again on the passed socket with its own backlog: keep them equal.
    assert socket_values(socket_unit, "Backlog") == [str(LISTEN_BACKLOG)]


@pytest.mark.parametrize("service", [UNIT, TEMPLATE_UNIT])
def test_services_are_type_notify_with_a_watchdog_and_need_their_socket(service):
    text = service.read_text()
    entries = {(s, k): v for s, k, v in unit_entries(text)}
    assert entries[("Service", "Type")] == "notify"
    assert entries[("Service", "NotifyAccess")] == "main"
    assert 10 <= systemd_seconds(entries[("Service", "WatchdogSec")]) <= 120
    socket_name = "chatserver@%i.socket" if "@" in service.name else "chatserver.socket"
    assert socket_name in entries[("Unit", "Requires")].split()
    assert socket_name in entries[("Unit", "After")].split()
    # Stopping the service must not delete the socket unit's file with /run/daphne.
    assert entries[("Service", "RuntimeDirectoryPreserve")] == "yes"


def test_the_template_is_the_single_unit_line_for_line(unit_text, template_text):
    """Only the instance's socket path, names and the migration lock differ."""
    expected = (
        unit_text.replace("chatserver.socket", "chatserver@%i.socket")
        .replace("/run/daphne/daphne.sock", "/run/daphne/daphne-%i.sock")
        .replace("/run/daphne/manhole.sock", "/run/daphne/manhole-%i.sock")
    )
    differing = {"Description", "ExecStartPre"}
    assert [e for e in unit_entries(template_text) if e[1] not in differing] == [
        e for e in unit_entries(expected) if e[1] not in differing
    ]
    (pre,) = unit_values(template_text, "ExecStartPre")
    assert pre.startswith("/usr/bin/flock /run/daphne/migrate.lock ")
    assert pre.endswith(unit_values(unit_text, "ExecStartPre")[0])
    assert commented_manhole_arguments(template_text)[1] == "unix:/run/daphne/manhole-%i.sock"


def security_exposure(text, directory, name="chatserver.service"):
    """The overall exposure ``systemd-analyze security --offline=true`` gives the unit."""
    path = directory / name
    path.write_text(stub_programs(text, directory))
    completed = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = completed.stdout + completed.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", output)
    assert match, output
    return float(match.group(1))


def documented_exposure():
    match = re.search(r"exposure level of \*\*(\d+\.\d+)", DEPLOYMENT_DOC.read_text())
    assert match, "docs/deployment.md no longer states the units' security exposure"
    return float(match.group(1))


@needs_systemd_analyze
@pytest.mark.parametrize(("unit", "name"), [(UNIT, "chatserver.service"),
                                             (TEMPLATE_UNIT, "chatserver@1.service")])  # fmt: skip
def test_security_exposure_stays_at_most_the_documented_score(unit, name, tmp_path):
    assert security_exposure(unit.read_text(), tmp_path, name) <= documented_exposure()


@needs_systemd_analyze
def test_security_check_can_fail(unit_text, tmp_path):
    weakened = re.sub(r"(?m)^(ProtectSystem|NoNewPrivileges|CapabilityBoundingSet)=.*\n", "",
                      unit_text)  # fmt: skip
    assert security_exposure(weakened, tmp_path) > documented_exposure()
