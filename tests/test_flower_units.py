"""Fast checks of the Flower layer's configuration plumbing (no Flower processes).

Keys from node and run configs, settings, the example app's declared
config, the launcher's run config and TOML quoting, ``hefl flower``'s
flags, the loopback TLS certificates (a real handshake), failure
diagnostics. The federations themselves run in ``test_flower_federation.py``.
"""

import argparse
import socket
import ssl
import stat
import threading
import tomllib

import pytest

import flwr  # noqa: E402,F401  (the flower extra is part of make setup: never skip)

from hefl.errors import FlowerConfigError, KeyMismatchError  # noqa: E402
from hefl.flower import keys as flkeys  # noqa: E402
from hefl.flower import cli as flcli  # noqa: E402
from hefl.flower import launch  # noqa: E402
from hefl.flower.local_app import app_config  # noqa: E402
from hefl.flower.protocol import NODE_KEYS, RUN_DEFAULTS, EncodingSettings, setting  # noqa: E402
from hefl.flower.report import last_exception  # noqa: E402
from hefl.flower.tls import make_loopback_certificates  # noqa: E402
from hefl.paillier import generate_keypair  # noqa: E402


def _never(*a, **k):
    raise AssertionError("the server side opened a private key")


def test_keys_from_node_or_run_config(tmp_path, monkeypatch):
    with pytest.raises(FlowerConfigError, match="hefl-key-dir"):
        flkeys.client_keypair({}, {})
    with pytest.raises(FlowerConfigError, match="does not exist"):
        flkeys.client_keypair({}, {"hefl-key-dir": str(tmp_path / "nowhere")})
    with pytest.raises(FlowerConfigError, match="hefl-public-key"):
        flkeys.server_public_key({})
    pub1, priv1 = generate_keypair(512)
    pub2, priv2 = generate_keypair(512)
    flkeys.write_keypair(tmp_path / "a", pub1, priv1)
    flkeys.write_keypair(tmp_path / "b", pub2, priv2)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert flkeys.client_keypair({"hefl-key-dir": a}, {}) == (pub1, priv1)
    assert flkeys.client_keypair({"hefl-key-dir": a}, {"hefl-key-dir": b}) == (pub2, priv2)
    # The server reads a public key file, or only public.json of a key dir.
    assert flkeys.server_public_key({"hefl-public-key": f"{a}/public.json"}) == pub1
    with monkeypatch.context() as m:
        m.setattr(flkeys.PrivateKey, "load", _never)
        assert flkeys.server_public_key({"hefl-key-dir": b}) == pub2
    pub2.save(tmp_path / "a" / flkeys.PUBLIC_FILE)
    with pytest.raises(KeyMismatchError, match="belongs to key"):
        flkeys.load_keypair(tmp_path / "a")


def test_settings_and_their_precedence():
    assert setting("hefl-alpha", {}) == RUN_DEFAULTS["hefl-alpha"]
    assert setting("hefl-alpha", {"hefl-alpha": 3.0}, {"hefl-alpha": 9.0}) == 3.0  # not a node key
    assert set(NODE_KEYS) <= set(RUN_DEFAULTS)
    assert setting("hefl-client-backend", {"hefl-client-backend": "cpu"},
                   {"hefl-client-backend": "sim"}) == "sim"
    with pytest.raises(FlowerConfigError, match="not a hefl setting"):
        setting("hefl-alhpa", {})
    s = EncodingSettings.from_run_config({"hefl-alpha": 2, "hefl-value-bits": 20.0})
    assert (s.alpha, s.value_bits, s.guard_bits) == (2.0, 20, RUN_DEFAULTS["hefl-guard-bits"])
    for bad in ({"hefl-alpha": "1"}, {"hefl-value-bits": 16.5}, {"hefl-guard-bits": True},
                {"hefl-alpha": float("nan")}):
        with pytest.raises(FlowerConfigError):
            EncodingSettings.from_run_config(bad)


def test_example_app_declares_every_hefl_setting():
    app = app_config(launch.example_app())
    assert set(RUN_DEFAULTS) <= set(app["config"])
    assert app["components"] == {"serverapp": "flower_multitensor.server_app:app",
                                 "clientapp": "flower_multitensor.client_app:app"}
    # Private by default: the app never asks for plaintext, and names no key.
    assert app["config"]["hefl-send-plaintext-reference"] is False
    assert app["config"]["hefl-key-dir"] == "" and app["config"]["hefl-public-key"] == ""


def test_launcher_run_config(tmp_path):
    app = launch.example_app()
    cfg = launch.FlowerRun(out=tmp_path, rounds=2, clients=3)
    deployment = launch._run_config(cfg, app, tmp_path / "keys", "cpu", "cpu")
    # The server gets the public key file, and no path to a private key.
    assert deployment["hefl-public-key"] == str(tmp_path / "keys" / "public.json")
    assert "hefl-key-dir" not in deployment
    assert deployment["hefl-send-plaintext-reference"] is False
    assert (deployment["num-server-rounds"], deployment["min-nodes"]) == (2, 3)
    sim = launch._run_config(launch.FlowerRun(out=tmp_path, runtime="simulation"), app,
                             tmp_path / "keys", "cpu", "cpu")
    assert sim["hefl-key-dir"] == str(tmp_path / "keys")
    with pytest.raises(FlowerConfigError, match="declares no run config key"):
        launch._run_config(launch.FlowerRun(out=tmp_path, run_config={"lrr": 1}), app,
                           tmp_path, "cpu", "cpu")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "pyproject.toml").write_text('[tool.flwr.app]\npublisher = "x"\n'
                                         '[tool.flwr.app.config]\nlr = 0.1\n')
    with pytest.raises(FlowerConfigError, match="does not declare hefl-"):
        launch._run_config(cfg, bare, tmp_path, "cpu", "cpu")


def test_toml_values_round_trip():
    values = {"a": 'x "quoted" \\ path', "b": True, "c": 3, "d": 0.1}
    text = "\n".join(f"{k} = {launch.toml_value(v)}" for k, v in values.items())
    assert tomllib.loads(text) == values
    assert flcli.parse_run_config(["lr=0.5", "name=abc", 'p="x y"', "on=true"]) == \
        {"lr": 0.5, "name": "abc", "p": "x y", "on": True}
    with pytest.raises(FlowerConfigError, match="KEY=VALUE"):
        flcli.parse_run_config(["lr"])


def test_cli_flags_map_to_the_run(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(launch, "run_flower", seen.append)
    parser = argparse.ArgumentParser()
    flcli.add_arguments(parser)
    assert flcli.run(parser.parse_args(["--out", str(tmp_path)])) == 0
    cfg = seen[-1]
    assert (cfg.tls, cfg.supernode_auth, cfg.send_plaintext_reference) == (True, True, False)
    assert cfg.runtime == "deployment" and cfg.app is None
    flcli.run(parser.parse_args(["--insecure", "--runtime", "simulation",
                                 "--send-plaintext-reference", "--backend", "xrt",
                                 "--xclbin", "k.xclbin", "--run-config", "lr=0.2"]))
    cfg = seen[-1]
    assert (cfg.tls, cfg.supernode_auth, cfg.send_plaintext_reference) == (False, False, True)
    assert cfg.backend_options == {"xclbin": "k.xclbin"} and cfg.run_config == {"lr": 0.2}
    with pytest.raises(SystemExit):
        parser.parse_args(["--backend", "gpu"])
    with pytest.raises(FlowerConfigError, match="at least 1"):
        flcli.run(parser.parse_args(["--rounds", "0"]))


def test_supernode_auth_needs_tls(tmp_path):
    with pytest.raises(FlowerConfigError, match="needs TLS"):
        launch.LocalFederation(tmp_path, [], tls=False, supernode_auth=True)


def _handshake(certs, cafile, hostname):
    """Serve one TLS connection with the server certificate; verify it as a client would."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs.server_cert, certs.server_key)
    client_ctx = ssl.create_default_context(cafile=str(cafile))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve():
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with client_ctx.wrap_socket(raw, server_hostname=hostname) as tls:
                    tls.sendall(b"x")
                    return tls.version()
        finally:
            t.join(timeout=5)


def test_loopback_certificates_verify_and_keep_keys_private(tmp_path):
    certs = make_loopback_certificates(tmp_path / "tls")
    assert stat.S_IMODE(certs.server_key.stat().st_mode) == 0o600
    assert not any(p.suffix == ".key" for p in (tmp_path / "tls").iterdir()
                   if p != certs.server_key)      # the CA key was never written
    assert _handshake(certs, certs.ca_cert, "127.0.0.1").startswith("TLS")
    assert _handshake(certs, certs.ca_cert, "localhost").startswith("TLS")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch|match"):
        _handshake(certs, certs.ca_cert, "example.org")
    other = make_loopback_certificates(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(certs, other.ca_cert, "127.0.0.1")


def test_last_exception_of_a_log(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("INFO x\nTraceback (most recent call last):\n  File \"a\"\n    f()\n"
                   "hefl.errors.BackendUnavailable: no such backend\nERROR exit 201\n")
    assert last_exception(log) == "hefl.errors.BackendUnavailable: no such backend"
    assert last_exception(tmp_path / "missing.log") is None


def test_backend_fallback_only_when_not_requested(monkeypatch):
    from hefl.errors import BackendUnavailable
    notices = []
    monkeypatch.setattr(launch, "DEFAULT_BACKEND", "no-such-backend")
    assert launch.open_backend(None, [15], echo=notices.append) == "cpu"
    assert "falling back to 'cpu'" in notices[0]
    with pytest.raises(BackendUnavailable):
        launch.open_backend("no-such-backend", [15], echo=notices.append)
    assert launch.open_backend("cpu", [15]) == "cpu"
