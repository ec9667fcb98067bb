"""Key sizes on the command line, private key file permissions, keygen path errors (issue 16)."""

import json
import os

import pytest

from hefl.cli import main
from hefl.errors import InsecureKeyFileError, KeyFileError, OutputPathError
from hefl.paillier.cli import key_size_warning
from hefl.paillier.keys import PrivateKey, PublicKey, generate_keypair, security_level


def _one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("bits,level", [(512, None), (1024, 80), (1536, 80), (2048, 112), (3072, 128),
                                        (4096, 128), (7680, 192), (15360, 256)])
def test_security_levels(bits, level):
    assert security_level(bits) == level


def test_warning_wording():
    assert key_size_warning(1024) == "1024-bit keys give about 80-bit security; use 2048 or more for real data"
    assert "less than 80-bit" in key_size_warning(512)
    assert key_size_warning(2048) is None and key_size_warning(4096) is None


def test_keygen_below_1024_needs_the_flag(tmp_path, capsys):
    assert main(["keygen", "--key-bits", "512", "--out", str(tmp_path / "k")]) == 2
    line = _one_line(capsys)
    assert "less than 80-bit security" in line and "--insecure-test-key" in line
    assert not (tmp_path / "k").exists()
    assert main(["keygen", "--key-bits", "512", "--insecure-test-key", "--out", str(tmp_path / "k")]) == 0
    assert "hefl keygen: warning: 512-bit keys give less than 80-bit security" in _one_line(capsys)


def test_keygen_1024_warns_once_2048_is_quiet(tmp_path, capsys):
    assert main(["keygen", "--key-bits", "1024", "--out", str(tmp_path / "a")]) == 0
    assert _one_line(capsys) == ("hefl keygen: warning: 1024-bit keys give about 80-bit security; "
                                 "use 2048 or more for real data")
    assert PublicKey.load(tmp_path / "a" / "public.json").bits == 1024


def test_bits_is_a_deprecated_alias(tmp_path, capsys):
    assert main(["keygen", "--bits", "256", "--insecure-test-key", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "--bits is deprecated; use --key-bits" in err
    assert PublicKey.load(tmp_path / "public.json").bits == 256


def test_keygen_sizes_out_of_range_are_one_line(tmp_path, capsys):
    for bits in ("1001", "16", "20000"):
        assert main(["keygen", "--key-bits", bits, "--insecure-test-key", "--out", str(tmp_path)]) == 2
        assert "--key-bits must be an even number" in _one_line(capsys)


def test_keygen_path_errors_are_one_line(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    for out, words in [(f, "is a file"), (f / "sub", "cannot create key folder"),
                       ("/proc/hefl-no-such/keys", "cannot create key folder")]:
        assert main(["keygen", "--key-bits", "256", "--insecure-test-key", "--out", str(out)]) == 2
        line = _one_line(capsys)
        assert line.startswith("hefl keygen: error:") and words in line
    # A key file path that is a folder: refused before the key is made, nothing left behind.
    (tmp_path / "k" / "private.json").mkdir(parents=True)
    assert main(["keygen", "--key-bits", "256", "--insecure-test-key", "--force", "--out",
                 str(tmp_path / "k")]) == 2
    assert "cannot write key file" in _one_line(capsys)
    assert not [p for p in os.listdir(tmp_path / "k") if p.endswith(".tmp")]


def test_private_key_with_group_or_other_bits_is_refused(tmp_path, capsys):
    pub, priv = generate_keypair(256)
    path = tmp_path / "private key.json"
    priv.save(path)
    for mode in (0o640, 0o604, 0o660, 0o644, 0o610):
        os.chmod(path, mode)
        with pytest.raises(InsecureKeyFileError) as e:
            PrivateKey.load(path)
        assert f"{mode:04o}" in str(e.value) and f"chmod 600 '{path}'" in str(e.value)
        assert isinstance(e.value, PermissionError)
    os.chmod(path, 0o400)
    assert PrivateKey.load(path) == priv
    os.chmod(path, 0o600)
    assert PrivateKey.load(path) == priv
    # A public key may be world-readable.
    pub.save(tmp_path / "public.json")
    os.chmod(tmp_path / "public.json", 0o644)
    assert PublicKey.load(tmp_path / "public.json") == pub
    # Through the CLI: one line with the fix.
    os.chmod(path, 0o644)
    os.rename(path, tmp_path / "private.json")
    assert main(["keygen", "--upgrade", "--out", str(tmp_path)]) == 2
    line = _one_line(capsys)
    assert "too open" in line and "chmod 600" in line


def test_unreadable_key_files_are_typed(tmp_path, capsys):
    with pytest.raises(KeyFileError, match="cannot read public key file"):
        PublicKey.load(tmp_path / "missing.json")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (1 << 17))
    with pytest.raises(KeyFileError, match="larger than"):
        PublicKey.load(big)
    with pytest.raises(KeyFileError):
        PrivateKey.load(tmp_path)                     # a folder
    assert main(["keygen", "--upgrade", "--out", str(tmp_path / "none")]) == 2
    assert "cannot read private key file" in _one_line(capsys)


def test_save_errors_are_typed(tmp_path):
    pub, _ = generate_keypair(256)
    with pytest.raises(OutputPathError, match="cannot write key file"):
        pub.save(tmp_path / "no" / "such" / "public.json")
    assert json.loads(pub.to_json())["bits"] == 256
