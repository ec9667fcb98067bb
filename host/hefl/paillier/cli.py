"""``hefl keygen``: generate a Paillier key pair into a directory.

Writes ``DIR/public.json`` (for everyone, the aggregator included) and
``DIR/private.json`` (mode 0600, for the key holders only). Existing files
are kept unless ``--force`` is given.

``--upgrade`` adds the short-exponent base ``h_s`` to a key pair made
before it existed (key-file version 1), once, by the key holder; the new
``public.json`` must then replace the old one at every party, so that the
whole federation shares one ``h_s``. Ciphertexts made before stay valid.
"""

import os
import sys
import time

from hefl.errors import HeflError
from hefl.paillier.keys import MIN_KEY_BITS, generate_keypair

__all__ = ["add_arguments", "run"]

_RECOMMENDED_MIN = 2048


def add_arguments(parser):
    parser.add_argument("--bits", type=int, default=2048,
                        help="bit length of n (1024/2048/3072/4096; default 2048)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="directory for public.json and private.json (created 0700 if missing)")
    parser.add_argument("--force", action="store_true", help="overwrite existing key files")
    parser.add_argument("--upgrade", action="store_true",
                        help="add h_s (short-exponent encryption) to the existing key pair in DIR")


def _upgrade(out):
    from hefl.paillier.keys import PrivateKey
    priv_path = os.path.join(out, "private.json")
    pub_path = os.path.join(out, "public.json")
    new = PrivateKey.load(priv_path).with_djn_base()
    new.save(priv_path)
    new.public_key.save(pub_path)
    print(f"key {new.public_key.fingerprint}: added h_s ({new.public_key.djn_fingerprint})")
    print(f"  give the new {pub_path} to every party (one h_s per federation); "
          "existing ciphertexts stay valid")
    return 0


def run(args):
    if args.upgrade:
        return _upgrade(args.out)
    if args.bits < MIN_KEY_BITS or args.bits % 2:
        raise HeflError(f"--bits must be an even number ≥ {MIN_KEY_BITS}, not {args.bits}")
    out = args.out
    os.makedirs(out, mode=0o700, exist_ok=True)
    pub_path = os.path.join(out, "public.json")
    priv_path = os.path.join(out, "private.json")
    existing = [p for p in (pub_path, priv_path) if os.path.exists(p)]
    if existing and not args.force:
        raise HeflError(f"{', '.join(existing)} already exist; pass --force to overwrite")
    if args.bits < _RECOMMENDED_MIN:
        print(f"hefl keygen: note: {args.bits}-bit keys are for tests; use {_RECOMMENDED_MIN} or more for real data",
              file=sys.stderr)
    t0 = time.perf_counter()
    pub, priv = generate_keypair(args.bits)
    # Private first: a public key on disk must never outlive a failed private write.
    priv.save(priv_path)
    pub.save(pub_path)
    print(f"{args.bits}-bit key {pub.fingerprint} in {time.perf_counter() - t0:.2f} s")
    print(f"  public:  {pub_path}")
    print(f"  private: {priv_path} (mode 0600)")
    return 0
