"""Fast checks of the Flower layer's configuration plumbing (no processes).

The end-to-end behaviour runs on a real Flower deployment in
``test_flower_federation.py``; here only the parts that fail before any
Flower process starts: key configuration, run settings, CLI parsing, the
launcher's TOML quoting and its failure diagnostics.
"""

import tomllib

import pytest

pytest.importorskip("flwr", reason="needs the flower extra: pip install -e '.[dev,flower]'")

from hefl.errors import FlowerConfigError, KeyMismatchError  # noqa: E402
from hefl.flower import keys as flkeys  # noqa: E402
from hefl.flower.cli import _garble, _nan  # noqa: E402
from hefl.flower.launch import APP_DIR, _last_exception, _toml_value  # noqa: E402
from hefl.flower.protocol import RUN_DEFAULTS, TRAIN_KEYS, garble_spec, nan_round  # noqa: E402
from hefl.flower.server_app import run_settings  # noqa: E402
from hefl.paillier import generate_keypair  # noqa: E402


def test_key_config_errors(tmp_path):
    with pytest.raises(FlowerConfigError, match="key-dir"):
        flkeys.node_keypair({})
    with pytest.raises(FlowerConfigError, match="does not exist"):
        flkeys.node_keypair({"key-dir": str(tmp_path / "nowhere")})
    with pytest.raises(FlowerConfigError, match="public-key"):
        flkeys.run_public_key({})
    pub1, priv1 = generate_keypair(512)
    pub2, _ = generate_keypair(512)
    flkeys.write_keypair(tmp_path, pub1, priv1)
    assert flkeys.load_keypair(tmp_path) == (pub1, priv1)
    assert flkeys.run_public_key({"public-key": str(tmp_path / flkeys.PUBLIC_FILE)}) == pub1
    pub2.save(tmp_path / flkeys.PUBLIC_FILE)
    with pytest.raises(KeyMismatchError, match="belongs to key"):
        flkeys.load_keypair(tmp_path)


def test_app_config_matches_defaults():
    """The Flower App's [tool.flwr.app.config] and RUN_DEFAULTS name the same settings."""
    with open(APP_DIR / "pyproject.toml", "rb") as f:
        app = tomllib.load(f)["tool"]["flwr"]["app"]
    assert app["config"] == RUN_DEFAULTS
    assert set(TRAIN_KEYS) <= set(RUN_DEFAULTS)
    assert app["components"] == {"serverapp": "hefl.flower.server_app:app",
                                 "clientapp": "hefl.flower.client_app:app"}


def test_run_settings_rejects_unknown_keys():
    assert run_settings({"alpha": 0.5})["alpha"] == 0.5
    with pytest.raises(FlowerConfigError, match="alhpa"):
        run_settings({"alhpa": 0.5})


def test_toml_values_round_trip():
    values = {"a": 'x "quoted" \\ path', "b": True, "c": 3, "d": 0.1}
    text = "\n".join(f"{k} = {_toml_value(v)}" for k, v in values.items())
    assert tomllib.loads(text) == values


def test_garble_options():
    assert _garble("1:2") == (1, (2, "truncate"))
    assert _garble("0:3:flip") == (0, (3, "flip"))
    for bad in ("1", "a:2", "1:2:melt"):
        with pytest.raises(FlowerConfigError):
            _garble(bad)
    assert garble_spec({}) is None
    assert garble_spec({"garble-round": 2, "garble-mode": "zero"}) == (2, "zero")
    assert _nan("2:1") == (2, 1)
    with pytest.raises(FlowerConfigError):
        _nan("2")
    assert nan_round({}) is None and nan_round({"nan-round": 3}) == 3


def test_last_exception_of_a_log(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("INFO x\nTraceback (most recent call last):\n  File \"a\"\n    f()\n"
                   "hefl.errors.BackendUnavailable: no such backend\nERROR exit 201\n")
    assert _last_exception(log) == "hefl.errors.BackendUnavailable: no such backend"
    assert _last_exception(tmp_path / "missing.log") is None


def test_backend_fallback_only_when_not_requested(monkeypatch):
    from hefl.errors import BackendUnavailable
    from hefl.flower import launch
    notices = []
    monkeypatch.setattr(launch, "DEFAULT_BACKEND", "no-such-backend")
    assert launch.open_backend(None, [15], echo=notices.append) == "cpu"
    assert "falling back to 'cpu'" in notices[0]
    with pytest.raises(BackendUnavailable):
        launch.open_backend("no-such-backend", [15], echo=notices.append)
    assert launch.open_backend("cpu", [15]) == "cpu"
