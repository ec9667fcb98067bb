"""Public keys with the short-exponent base h_s: format versions, upgrade, checks."""

import json

import gmpy2
import pytest

from hefl.cli import main
from hefl.errors import SerializationError
from hefl.paillier.keys import PrivateKey, PublicKey, generate_keypair


@pytest.fixture(scope="module")
def pair():
    return generate_keypair(256)


@pytest.fixture(scope="module")
def plain_pair():
    return generate_keypair(256, djn=False)


def test_new_keys_carry_an_nth_power(pair):
    pub, priv = pair
    assert pub.h_s is not None and 1 < pub.h_s < pub.n2
    # h_s^(λ) = 1 mod n² holds exactly for the n-th powers.
    lam = (priv.p - 1) * (priv.q - 1) // int(gmpy2.gcd(priv.p - 1, priv.q - 1))
    assert pow(pub.h_s, lam, pub.n2) == 1
    d = json.loads(pub.to_json())
    assert d["version"] == 2 and int(d["h_s"], 16) == pub.h_s


def test_round_trip_keeps_h_s(pair):
    pub, priv = pair
    assert PublicKey.from_json(pub.to_json()).h_s == pub.h_s
    back = PrivateKey.from_json(priv.to_json())
    assert back.public_key.h_s == pub.h_s
    assert back.public_key.djn_fingerprint == pub.djn_fingerprint


def test_version_one_files_still_load(plain_pair):
    pub, priv = plain_pair
    d = json.loads(pub.to_json())
    assert d["version"] == 1 and "h_s" not in d
    assert PublicKey.from_json(pub.to_json()).h_s is None
    assert PrivateKey.from_json(priv.to_json()).public_key.h_s is None
    assert pub.djn_fingerprint is None


def test_upgrade_is_explicit_and_once(plain_pair):
    pub, priv = plain_pair
    up = priv.with_djn_base()
    assert up.public_key.n == pub.n and up.public_key.fingerprint == pub.fingerprint
    assert up.public_key.h_s is not None
    with pytest.raises(SerializationError, match="already has h_s"):
        up.with_djn_base()


def test_h_s_does_not_change_the_ciphertext_fingerprint(pair):
    pub, _ = pair
    other = PublicKey(pub.n, pub.h_s * pub.h_s % pub.n2)
    assert other.fingerprint == pub.fingerprint
    assert other.djn_fingerprint != pub.djn_fingerprint


@pytest.mark.parametrize("edit", [
    lambda d: d.update(version=True),
    lambda d: d.update(version=3),
    lambda d: d.pop("h_s"),
    lambda d: d.update(version=1),
    lambda d: d.update(h_s="zz"),
    lambda d: d.update(h_s="1"),
])
def test_malformed_versions_and_fields(pair, edit):
    d = json.loads(pair[0].to_json())
    edit(d)
    with pytest.raises(SerializationError):
        PublicKey.from_json(json.dumps(d))


def test_private_key_refuses_an_h_s_that_is_no_nth_power(pair, rng):
    pub, priv = pair
    d = json.loads(priv.to_json())
    while True:
        y = rng.randrange(2, pub.n2)
        if gmpy2.gcd(y, pub.n) == 1 and pow(y, priv.p - 1, priv.p2) != 1:
            break
    d["h_s"] = format(y, "x")
    with pytest.raises(SerializationError, match="n-th power"):
        PrivateKey.from_json(json.dumps(d))


def test_keygen_upgrade_cli(tmp_path, plain_pair, capsys):
    pub, priv = plain_pair
    priv.save(tmp_path / "private.json")
    pub.save(tmp_path / "public.json")
    assert main(["keygen", "--upgrade", "--out", str(tmp_path)]) == 0
    new_pub = PublicKey.load(tmp_path / "public.json")
    new_priv = PrivateKey.load(tmp_path / "private.json")
    assert new_pub.n == pub.n and new_pub.h_s == new_priv.public_key.h_s is not None
    assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600
    capsys.readouterr()
    assert main(["keygen", "--upgrade", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already has h_s" in err[0]
