"""``hefl bench peers`` with tiny sizes: every library runs and checks itself; the JSON's shape, never its timings.

The peers (python-paillier, pypaillier, SecretFlow HEU) are dev
dependencies, so on the platform their wheels exist for (Linux x86-64, the
one CI runs on) none may be skipped: a missing one fails this test.
"""

import json
import platform
import sys

import pytest

from hefl.bench import peers
from hefl.cli import main

_WHEELS_HERE = sys.platform == "linux" and platform.machine() == "x86_64"


def test_peers_smoke(tmp_path, capsys):
    out = tmp_path / "reports" / "peers.json"
    rc = main(["bench", "peers", "--key-bits", "512", "--count", "6", "--phe-count", "3", "--repeat", "2",
               "--json", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert r["benchmark"] == "peers" and r["schema"] == "hefl-peers/1"
    assert set(r["libraries"]) == set(peers.LIBRARIES) == {"hefl", "phe", "pypaillier", "heu-ZPaillier",
                                                             "heu-IPCL"}
    if _WHEELS_HERE:
        assert r["skipped"] == {}, f"dev-dependency peers missing: {r['skipped']}"
    for name, info in r["libraries"].items():
        if info["skipped"]:
            assert info["reason"] and name in capsys.readouterr().err
            assert name not in r["per_s"]
            continue
        assert r["per_s"][name]["encrypt_public"] > 0 and r["per_s"][name]["decrypt"] > 0
        assert len(r["passes_per_s"][name]["encrypt_public"]) == 2
        assert info["key_bits"] == (2048 if name == "pypaillier" else 512)
    assert r["per_s"]["hefl"]["encrypt_keyholder"] > 0
    assert {n: set(v) for n, v in r["per_cpu_s"].items()} == {n: set(v) for n, v in r["per_s"].items()}
    assert len(r["load_average_before"]) == len(r["load_average_after"]) == 3
    # pypaillier's key is larger here: it is no contender for the targets.
    assert r["fastest_peer"]["library"] != "pypaillier"
    assert set(r["targets"]) == {"encrypt_public", "encrypt_keyholder"}
    for t in r["targets"].values():
        assert t["measured"] > 0 and t["met"] == (t["measured"] >= t["min_ratio"])
    assert "hefl" in capsys.readouterr().out


def test_missing_peer_is_skipped_with_its_reason(monkeypatch, capsys):
    # None in sys.modules: `import heu` raises ImportError, as without the wheel.
    monkeypatch.setitem(sys.modules, "heu", None)
    r = peers.measure(256, count=3, repeat=1, only=["heu-IPCL", "phe"])
    assert r["libraries"]["heu-IPCL"] == {"skipped": True, "reason": r["skipped"]["heu-IPCL"]}
    assert "sf-heu is not installed" in r["skipped"]["heu-IPCL"]
    assert "heu-IPCL: SKIPPED" in capsys.readouterr().err
    assert set(r["per_s"]) == {"hefl", "phe"}


def test_unknown_library_is_refused():
    from hefl.errors import HeflError
    with pytest.raises(HeflError, match="unknown libraries"):
        peers.measure(256, count=2, repeat=1, only=["seal"])
