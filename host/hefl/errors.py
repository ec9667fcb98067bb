"""Typed errors raised by hefl: every one of them, grouped by layer.

Every error a user can provoke with bad input derives from :class:`HeflError`
and says what is wrong and, where it can, what to do. Callers catch the
specific class; the CLI catches :class:`HeflError` and prints its message
instead of a traceback.

=================================  ===========================================
layer                              classes
=================================  ===========================================
arithmetic input                   ModulusError, OperandRangeError and its
                                   OperandTypeError
keys, ciphertexts, serialisation   PrivateKeyRequired, KeySizeError,
                                   KeyFileError and its InsecureKeyFileError,
                                   CiphertextError and its
                                   CiphertextRangeError, KeyMismatchError,
                                   VectorLengthError, MetadataMismatchError;
                                   SerializationError
encoding                           EncodingError, NonFiniteUpdateError,
                                   PackingOverflowError
devices, transports, board link    BackendUnavailable, DeviceError and its
                                   DeviceTimeout, DeviceStatusError,
                                   VerificationError, LinkError
build tools                        ToolNotFound, ToolFailed
federated learning, Flower         DatasetError, ModelError,
                                   AggregationMismatchError, FlowerConfigError,
                                   FlowerRunError
runs and their outputs             OutputPathError
=================================  ===========================================

The modules that raise them re-export some under their old names
(``hefl.fedavg.aggregator.MetadataMismatchError``, ...); this module is
where each is defined.
"""

__all__ = [
    "HeflError",
    # arithmetic input
    "ModulusError", "OperandRangeError", "OperandTypeError",
    # keys, ciphertexts, serialisation
    "PrivateKeyRequired", "KeySizeError", "KeyFileError", "InsecureKeyFileError", "CiphertextError", "CiphertextRangeError", "KeyMismatchError",
    "VectorLengthError", "MetadataMismatchError", "SerializationError",
    # encoding
    "EncodingError", "NonFiniteUpdateError", "PackingOverflowError",
    # devices, transports, board link
    "BackendUnavailable", "DeviceError", "DeviceTimeout", "DeviceStatusError",
    "VerificationError", "LinkError",
    # build tools
    "ToolNotFound", "ToolFailed",
    # federated learning, Flower
    "DatasetError", "ModelError", "AggregationMismatchError", "FlowerConfigError",
    "FlowerRunError",
    # runs and their outputs
    "OutputPathError",
]


class HeflError(Exception):
    """Base class of every error hefl raises on purpose."""


# --- arithmetic input -------------------------------------------------------

class ModulusError(HeflError, ValueError):
    """A modulus that the arithmetic cannot use (even, too small, too wide)."""


class OperandRangeError(HeflError, ValueError):
    """An operand outside ``[0, modulus)`` (or a negative exponent)."""


class OperandTypeError(OperandRangeError, TypeError):
    """An operand, exponent or modulus that is not an integer (a float, a string, a bool).

    A :class:`TypeError` too, and an :class:`OperandRangeError`, so callers
    that catch either see it: ``powmod([3.9], [2.7], 7)`` must not quietly
    compute ``pow(3, 2, 7)``.
    """


# --- keys, ciphertexts, serialisation ---------------------------------------

class PrivateKeyRequired(HeflError, RuntimeError):
    """An operation (decryption, CRT encryption) needs the private key, which this party lacks."""


class KeySizeError(ModulusError):
    """A key size refused: odd, too large, or too small without ``--insecure-test-key``."""


class KeyFileError(HeflError, OSError):
    """A key file that cannot be read (missing, unreadable, too large)."""


class InsecureKeyFileError(KeyFileError, PermissionError):
    """A private key file that group or others may read; the message gives the ``chmod`` that fixes it."""


class CiphertextError(HeflError, ValueError):
    """A received ciphertext that must not be used."""


class CiphertextRangeError(CiphertextError):
    """A ciphertext outside ``0 < c < n²`` or sharing a factor with ``n``."""


class KeyMismatchError(CiphertextError):
    """Data made under another key (fingerprint mismatch)."""


class VectorLengthError(CiphertextError):
    """Ciphertext vectors (or a vector and its scalars) of different lengths."""


class MetadataMismatchError(CiphertextError):
    """A well-formed ciphertext vector whose metadata does not fit this round."""


class SerializationError(HeflError, ValueError):
    """A serialised key or ciphertext vector that is malformed or truncated."""


# --- encoding ---------------------------------------------------------------

class EncodingError(HeflError, ValueError):
    """Bad encoding parameters or values that cannot be encoded."""


class NonFiniteUpdateError(EncodingError):
    """A model update holding NaN or infinity; nothing was encrypted."""


class PackingOverflowError(EncodingError):
    """A packed sum carried into a neighbouring slot; the result is unusable."""


# --- devices, transports, board link ----------------------------------------

class BackendUnavailable(HeflError, RuntimeError):
    """A backend whose software or hardware is not installed here."""


class DeviceError(HeflError, RuntimeError):
    """The device reported an error status."""


class DeviceTimeout(DeviceError):
    """The device did not finish within the deadline."""


class DeviceStatusError(DeviceError):
    """The kernel rejected a batch: nonzero status in the result header.

    Attributes
    ----------
    status : int
        The raw status word.
    flags : list of str
        Names of the flags set (``hefl.hw.regmap.LAYOUT.status_flags``).
    """

    def __init__(self, message, status=0, flags=()):
        super().__init__(message)
        self.status = status
        self.flags = list(flags)


class VerificationError(DeviceError):
    """A device result disagreed with the CPU on a spot-check."""


class LinkError(DeviceError):
    """The board's serial link answered with an error status or a malformed reply."""


# --- build tools --------------------------------------------------------------

class ToolNotFound(BackendUnavailable):
    """A vendor tool a build flow needs (``vivado``, ``v++``) is not on ``PATH``."""


class ToolFailed(HeflError, RuntimeError):
    """A build tool ran and failed; the message names its log."""


# --- federated learning, Flower -----------------------------------------------

class DatasetError(HeflError, ValueError):
    """A dataset name or split parameters (or run settings) that cannot be used."""


class ModelError(HeflError, ValueError):
    """Bad model parameters (unknown model, wrong parameter vector length)."""


class AggregationMismatchError(HeflError, AssertionError):
    """The decrypted aggregate disagrees with the plaintext mean beyond the bound.

    An :class:`AssertionError` too: it means the encrypted pipeline is wrong,
    not that the input was bad.
    """


class FlowerConfigError(HeflError, ValueError):
    """A Flower node or run configuration hefl cannot use (missing key path, bad value)."""


class FlowerRunError(HeflError, RuntimeError):
    """A Flower federation run that failed or timed out (processes, run, results)."""


# --- runs and their outputs -----------------------------------------------------

class OutputPathError(HeflError, OSError):
    """An output file or folder that cannot be written (checked before a run starts)."""
