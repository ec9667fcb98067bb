"""``hefl keygen`` through the real CLI entry point."""

import os
import stat
import subprocess
import sys

from hefl.cli import main
from hefl.paillier import Paillier, PrivateKey, PublicKey


def test_keygen_writes_usable_keys(tmp_path, capsys):
    out = tmp_path / "keys"
    assert main(["keygen", "--key-bits", "512", "--insecure-test-key", "--out", str(out)]) == 0
    assert stat.S_IMODE(os.stat(out / "private.json").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
    pub = PublicKey.load(out / "public.json")
    priv = PrivateKey.load(out / "private.json")
    assert pub.bits == 512 and priv.public_key == pub
    assert pub.fingerprint in capsys.readouterr().out
    with Paillier(pub, priv) as he:
        assert he.decrypt(he.encrypt([42])) == [42]


def test_keygen_refuses_to_overwrite(tmp_path, capsys):
    assert main(["keygen", "--key-bits", "128", "--insecure-test-key", "--out", str(tmp_path)]) == 0
    before = (tmp_path / "private.json").read_text()
    assert main(["keygen", "--key-bits", "128", "--insecure-test-key", "--out", str(tmp_path)]) == 2
    assert "already exist" in capsys.readouterr().err
    assert (tmp_path / "private.json").read_text() == before
    assert main(["keygen", "--key-bits", "128", "--insecure-test-key", "--out", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "private.json").read_text() != before


def test_keygen_bad_bits_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "hefl.cli", "keygen", "--key-bits", "1001", "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "--key-bits must be an even number" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
