"""Key distribution as configuration.

The federation shares one Paillier key pair (docs/design.md §5: a key
authority, or the clients themselves, make it; the aggregator never sees
the private half). On Flower that becomes configuration, not protocol:

* every SuperNode is started with ``--node-config 'key-dir="/path"'``; the
  directory holds ``public.json`` and ``private.json`` (the latter written
  0600 by :meth:`hefl.paillier.PrivateKey.save`). The ClientApp reads both
  from the path in its node config;
* the ServerApp reads only the public key, from the path in the run config
  key ``public-key``. Nothing on the server side ever opens a private file.

Nothing travels over Flower's links but public data: the key fingerprint
inside every ciphertext vector lets each side check the other uses the
same key.
"""

from pathlib import Path

from hefl.errors import FlowerConfigError, KeyMismatchError
from hefl.paillier import PrivateKey, PublicKey

__all__ = [
    "NODE_KEY_DIR", "RUN_PUBLIC_KEY", "PUBLIC_FILE", "PRIVATE_FILE",
    "write_keypair", "load_keypair", "load_public_key", "node_keypair", "run_public_key",
]

#: node-config key of the directory holding the key pair (client side)
NODE_KEY_DIR = "key-dir"
#: run-config key of the public key file (server side)
RUN_PUBLIC_KEY = "public-key"
PUBLIC_FILE = "public.json"
PRIVATE_FILE = "private.json"


def write_keypair(directory, public_key, private_key):
    """Store a key pair in ``directory`` as a node's key directory.

    Parameters
    ----------
    directory : str or Path
        Created if missing.
    public_key : PublicKey
    private_key : PrivateKey

    Returns
    -------
    (Path, Path)
        Paths of the public and private key files.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    pub_path, priv_path = d / PUBLIC_FILE, d / PRIVATE_FILE
    public_key.save(pub_path)
    private_key.save(priv_path)
    return pub_path, priv_path


def load_public_key(path):
    """Read a public key file, naming the path in any error.

    Raises
    ------
    FlowerConfigError
        The file does not exist.
    SerializationError
        The file is not a hefl public key.
    """
    p = Path(path)
    if not p.is_file():
        raise FlowerConfigError(f"public key file {str(p)!r} does not exist")
    return PublicKey.load(p)


def load_keypair(directory):
    """Read ``public.json`` and ``private.json`` from ``directory``.

    Raises
    ------
    FlowerConfigError
        The directory or one of the files is missing.
    KeyMismatchError
        The private key belongs to another public key.
    """
    d = Path(directory)
    if not d.is_dir():
        raise FlowerConfigError(f"key directory {str(d)!r} does not exist")
    pub = load_public_key(d / PUBLIC_FILE)
    priv_path = d / PRIVATE_FILE
    if not priv_path.is_file():
        raise FlowerConfigError(f"private key file {str(priv_path)!r} does not exist")
    priv = PrivateKey.load(priv_path)
    if priv.public_key != pub:
        raise KeyMismatchError(
            f"{PRIVATE_FILE} in {str(d)!r} belongs to key {priv.public_key.fingerprint}, "
            f"but {PUBLIC_FILE} is key {pub.fingerprint}")
    return pub, priv


def node_keypair(node_config):
    """The key pair named by a SuperNode's node config (``key-dir``)."""
    path = node_config.get(NODE_KEY_DIR)
    if not path:
        raise FlowerConfigError(
            f"node config has no {NODE_KEY_DIR!r}: start the SuperNode with "
            f"--node-config '{NODE_KEY_DIR}=\"/path/to/keys\"'")
    return load_keypair(path)


def run_public_key(run_config):
    """The public key named by the run config (``public-key``); server side."""
    path = run_config.get(RUN_PUBLIC_KEY)
    if not path:
        raise FlowerConfigError(
            f"run config has no {RUN_PUBLIC_KEY!r}: pass --run-config "
            f"'{RUN_PUBLIC_KEY}=\"/path/to/public.json\"' to flwr run")
    return load_public_key(path)
