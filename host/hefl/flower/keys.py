"""Key distribution as configuration.

The federation shares one Paillier key pair (docs/design.md §5: a key
authority, or the clients themselves, make it; the aggregator never sees
the private half). On Flower that becomes configuration, not protocol:

* a key directory holds ``public.json`` and ``private.json`` (the latter
  written 0600 by :meth:`hefl.paillier.PrivateKey.save`; ``hefl keygen
  --out DIR`` writes this layout). A ClientApp finds it under
  ``hefl-key-dir`` in its SuperNode's node config (``--node-config
  'hefl-key-dir="/path"'``) or, where nodes have no config of their own
  (Flower's Simulation Runtime), in the run config;
* the ServerApp reads only a public key: the file named by
  ``hefl-public-key`` in the run config, or else the ``public.json`` of
  the run config's ``hefl-key-dir``. Nothing on the server side ever opens
  a private key file.

Nothing travels over Flower's links but public data: the key fingerprint
inside every ciphertext vector lets each side check the other uses the
same key.
"""

from pathlib import Path

from hefl.errors import FlowerConfigError, KeyMismatchError
from hefl.flower.protocol import setting
from hefl.paillier import PrivateKey, PublicKey

__all__ = [
    "KEY_DIR", "PUBLIC_KEY", "PUBLIC_FILE", "PRIVATE_FILE",
    "write_keypair", "load_keypair", "load_public_key", "client_keypair", "server_public_key",
]

#: node- or run-config key of the directory holding the key pair (client side)
KEY_DIR = "hefl-key-dir"
#: run-config key of the public key file (server side)
PUBLIC_KEY = "hefl-public-key"
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


def client_keypair(run_config, node_config):
    """The key pair of a ClientApp: ``hefl-key-dir`` of the node config, else of the run config.

    Raises
    ------
    FlowerConfigError
        Neither names a key directory, or it lacks a file.
    KeyMismatchError
        The private key belongs to another public key.
    """
    path = setting(KEY_DIR, run_config, node_config)
    if not path:
        raise FlowerConfigError(
            f"no key directory: start the SuperNode with --node-config "
            f"'{KEY_DIR}=\"/path/to/keys\"' or set {KEY_DIR} in the run config "
            f"(flwr run --run-config '{KEY_DIR}=\"/path/to/keys\"')")
    return load_keypair(path)


def server_public_key(run_config):
    """The public key of the ServerApp: ``hefl-public-key``, else ``hefl-key-dir``/public.json.

    Only the public file is opened, even when a key directory is named.

    Raises
    ------
    FlowerConfigError
        The run config names neither, or the file does not exist.
    """
    path = setting(PUBLIC_KEY, run_config)
    if not path:
        key_dir = setting(KEY_DIR, run_config)
        if not key_dir:
            raise FlowerConfigError(
                f"run config has no {PUBLIC_KEY!r}: pass --run-config "
                f"'{PUBLIC_KEY}=\"/path/to/public.json\"' to flwr run")
        path = Path(key_dir) / PUBLIC_FILE
    return load_public_key(path)
