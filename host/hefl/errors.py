"""Typed errors raised by hefl.

Every error a user can provoke with bad input derives from :class:`HeflError`
and says what is wrong and, where it can, what to do. Callers catch the
specific class; the CLI catches :class:`HeflError` and prints its message
instead of a traceback.
"""

__all__ = [
    "HeflError",
    "ModulusError", "OperandRangeError",
    "CiphertextError", "CiphertextRangeError", "KeyMismatchError",
    "SerializationError",
    "EncodingError", "NonFiniteUpdateError", "PackingOverflowError",
    "BackendUnavailable", "DeviceError", "DeviceTimeout", "VerificationError",
    "PrivateKeyRequired", "VectorLengthError",
    "FlowerConfigError", "FlowerRunError",
    "ToolNotFound", "ToolFailed", "LinkError",
    "DeviceStatusError",
]


class HeflError(Exception):
    """Base class of every error hefl raises on purpose."""


# --- arithmetic input -------------------------------------------------------

class ModulusError(HeflError, ValueError):
    """A modulus that the arithmetic cannot use (even, too small, too wide)."""


class OperandRangeError(HeflError, ValueError):
    """An operand outside ``[0, modulus)`` (or a negative exponent)."""


# --- Paillier ---------------------------------------------------------------

class CiphertextError(HeflError, ValueError):
    """A received ciphertext that must not be used."""


class CiphertextRangeError(CiphertextError):
    """A ciphertext outside ``0 < c < n²`` or sharing a factor with ``n``."""


class KeyMismatchError(CiphertextError):
    """Data made under another key (fingerprint mismatch)."""


class SerializationError(HeflError, ValueError):
    """A serialised key or ciphertext vector that is malformed or truncated."""


# --- encoding ---------------------------------------------------------------

class EncodingError(HeflError, ValueError):
    """Bad encoding parameters or values that cannot be encoded."""


class NonFiniteUpdateError(EncodingError):
    """A model update holding NaN or infinity; nothing was encrypted."""


class PackingOverflowError(EncodingError):
    """A packed sum carried into a neighbouring slot; the result is unusable."""


# --- devices ----------------------------------------------------------------

class BackendUnavailable(HeflError, RuntimeError):
    """A backend whose software or hardware is not installed here."""


class DeviceError(HeflError, RuntimeError):
    """The device reported an error status."""


class DeviceTimeout(DeviceError):
    """The device did not finish within the deadline."""


class VerificationError(DeviceError):
    """A device result disagreed with the CPU on a spot-check."""


# --- Paillier keys (appended) ---------------------------------------------

class PrivateKeyRequired(HeflError, RuntimeError):
    """An operation (decryption, CRT encryption) needs the private key, which this party lacks."""


class VectorLengthError(CiphertextError):
    """Ciphertext vectors (or a vector and its scalars) of different lengths."""


# --- Flower deployment (appended) -------------------------------------------

class FlowerConfigError(HeflError, ValueError):
    """A Flower node or run configuration hefl cannot use (missing key path, bad value)."""


# --- build flows and the board link (appended) -------------------------------

class ToolNotFound(BackendUnavailable):
    """A vendor tool a build flow needs (``vivado``, ``v++``) is not on ``PATH``."""


class ToolFailed(HeflError, RuntimeError):
    """A build tool ran and failed; the message names its log."""


class LinkError(DeviceError):
    """The board's serial link answered with an error status or a malformed reply."""


class FlowerRunError(HeflError, RuntimeError):
    """A Flower federation run that failed or timed out (processes, run, results)."""


# --- device driver (appended) -----------------------------------------------

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
