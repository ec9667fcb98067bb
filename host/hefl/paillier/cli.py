"""``hefl keygen``: generate a Paillier key pair into a directory; the key-size policy of every command.

Writes ``DIR/public.json`` (for everyone, the aggregator included) and
``DIR/private.json`` (mode 0600, for the key holders only). Existing files
are kept unless ``--force`` is given.

``--upgrade`` adds the short-exponent base ``h_s`` to a key pair made
before it existed (key-file version 1), once, by the key holder; the new
``public.json`` must then replace the old one at every party, so that the
whole federation shares one ``h_s``. Ciphertexts made before stay valid.

Key sizes on the command line
-----------------------------
Every command that makes a key (``hefl keygen``, ``hefl demo``, ``hefl
flower``) takes ``--key-bits`` and ``--insecure-test-key``
(:func:`add_key_bits_arguments`) and checks them with
:func:`checked_key_bits`: below :data:`~hefl.paillier.keys.RECOMMENDED_KEY_BITS`
(2048) it prints one warning line naming the security level; below
:data:`~hefl.paillier.keys.INSECURE_KEY_BITS` (1024) it refuses unless
``--insecure-test-key`` is given. The library (:func:`generate_keypair`)
stays permissive, for tests.
"""

import argparse
import os
import sys
import time

from hefl.errors import HeflError, KeySizeError, OutputPathError
from hefl.paillier.keys import (
    INSECURE_KEY_BITS,
    MAX_KEY_BITS,
    MIN_KEY_BITS,
    RECOMMENDED_KEY_BITS,
    generate_keypair,
    security_level,
)

__all__ = ["add_arguments", "run", "add_key_bits_arguments", "checked_key_bits", "key_size_warning",
           "INSECURE_FLAG"]

#: The flag that lets a command make a key below INSECURE_KEY_BITS.
INSECURE_FLAG = "--insecure-test-key"


class _DeprecatedAlias(argparse.Action):
    """Store like the new flag, with a one-line note naming it."""

    def __init__(self, *args, new, **kw):
        self._new = new
        super().__init__(*args, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: note: {option_string} is deprecated; use {self._new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_key_bits_arguments(parser, *, default, help="bit length of the Paillier modulus n"):
    """Add ``--key-bits`` (``default``; ``None`` lets the command choose) and ``--insecure-test-key``."""
    parser.add_argument("--key-bits", type=int, default=default, metavar="BITS", help=help)
    parser.add_argument(INSECURE_FLAG, action="store_true",
                        help=f"allow keys below {INSECURE_KEY_BITS} bits (tests and demos only: "
                             "they can be factored)")


def key_size_warning(bits):
    """The one-line warning for a ``bits``-bit key, or ``None`` from RECOMMENDED_KEY_BITS up."""
    if bits >= RECOMMENDED_KEY_BITS:
        return None
    level = security_level(bits)
    security = "less than 80-bit security" if level is None else f"about {level}-bit security"
    return f"{bits}-bit keys give {security}; use {RECOMMENDED_KEY_BITS} or more for real data"


def checked_key_bits(bits, *, allow_insecure, prog, warn=True):
    """``bits`` if a command may make such a key; prints the warning line (stderr) below 2048.

    ``warn=False`` leaves the warning to the caller (:func:`key_size_warning`),
    for a command that checks more before it starts.

    Raises
    ------
    KeySizeError
        Not an even number from MIN_KEY_BITS to MAX_KEY_BITS, or below
        INSECURE_KEY_BITS without ``allow_insecure``.
    """
    if bits % 2 or not MIN_KEY_BITS <= bits <= MAX_KEY_BITS:
        raise KeySizeError(f"--key-bits must be an even number from {MIN_KEY_BITS} to {MAX_KEY_BITS}, "
                           f"not {bits}")
    if bits < INSECURE_KEY_BITS and not allow_insecure:
        raise KeySizeError(f"{key_size_warning(bits)}; {bits}-bit keys are refused unless "
                           f"{INSECURE_FLAG} is given (tests and demos)")
    warning = key_size_warning(bits)
    if warning and warn:
        print(f"{prog}: warning: {warning}", file=sys.stderr)
    return bits


def add_arguments(parser):
    add_key_bits_arguments(parser, default=RECOMMENDED_KEY_BITS,
                           help="bit length of n (2048, 3072, 4096; below 2048 for tests)")
    parser.add_argument("--bits", type=int, dest="key_bits", action=_DeprecatedAlias, new="--key-bits",
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS)
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


def _key_dir(out):
    """Create ``out`` (0700) if needed and prove it a writable folder; one-line OutputPathError if not."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise OutputPathError(f"key folder {out} is a file")
    try:
        os.makedirs(out, mode=0o700, exist_ok=True)
    except OSError as e:
        raise OutputPathError(f"cannot create key folder {out}: {e.strerror or e}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputPathError(f"key folder {out} is not writable")


def run(args):
    if args.upgrade:
        return _upgrade(args.out)
    bits = checked_key_bits(args.key_bits, allow_insecure=args.insecure_test_key, prog="hefl keygen",
                            warn=False)
    out = args.out
    _key_dir(out)
    pub_path = os.path.join(out, "public.json")
    priv_path = os.path.join(out, "private.json")
    for p in (pub_path, priv_path):
        if os.path.isdir(p):
            raise OutputPathError(f"cannot write key file {p}: it is a folder")
    existing = [p for p in (pub_path, priv_path) if os.path.exists(p)]
    if existing and not args.force:
        raise HeflError(f"{', '.join(existing)} already exist; pass --force to overwrite")
    if key_size_warning(bits):
        print(f"hefl keygen: warning: {key_size_warning(bits)}", file=sys.stderr)
    t0 = time.perf_counter()
    pub, priv = generate_keypair(bits)
    # Private first: a public key on disk must never outlive a failed private write.
    priv.save(priv_path)
    pub.save(pub_path)
    print(f"{bits}-bit key {pub.fingerprint} in {time.perf_counter() - t0:.2f} s")
    print(f"  public:  {pub_path}")
    print(f"  private: {priv_path} (mode 0600)")
    return 0
