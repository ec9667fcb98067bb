"""A Verilator C++ harness for long BatchEngine runs (Paillier-sized jobs).

cocotb pays a Python call per clock edge or per trigger; a 4096-bit
encryption modexp is ~35 M cycles. This harness
(``engine_harness.cpp``, beside this module) clocks the model in C++ and talks to Python through a pipe,
one job at a time::

    from hefl.sim.engine_model import EngineHarness
    with EngineHarness(L=4096, w=51, k=4, x=4096) as h:
        h.load_constants(n)
        value, cycles = h.run(job)      # job from hefl.golden.batch

``cycles`` is measured as in the cocotb bench (first input handshake to last
result handshake) and must equal :func:`hefl.golden.batch.engine_job_cycles`.
Builds go to ``build/harness/<top>/`` and are reused while the Verilog and
the harness source are unchanged.
"""

import hashlib
import subprocess

from hefl.errors import DeviceError, DeviceTimeout
from hefl.golden.montgomery import from_words, mont_constants, to_words, words_for
from hefl.hw.jobs import TAG_BITS, job_layout, result_layout
from hefl.paths import build_root, package_dir
from hefl.sim.engine_bench import BUILD_ARGS, engine_verilog
from hefl.sim.runner import verilator_path

__all__ = ["EngineHarness", "build_harness"]

#: The C++ harness source, installed beside this module.
HARNESS_CPP = package_dir("hefl.sim") / "engine_harness.cpp"


def build_harness(L, w, k, x, lanes=1):
    """Build (if needed) the harness binary for one configuration; returns its path."""
    verilog, top = engine_verilog(L, w, k, x, lanes)
    work = build_root() / "harness" / top
    work.mkdir(parents=True, exist_ok=True)
    exe = work / "Vharness"
    digest = hashlib.sha256(verilog.read_bytes() + HARNESS_CPP.read_bytes()).hexdigest()
    stamp = work / "stamp"
    if exe.exists() and stamp.exists() and stamp.read_text() == digest:
        return exe
    cmd = [str(verilator_path()), "--cc", "--exe", "--build", "-O3",
           "--x-assign", "fast", "--x-initial", "fast", *BUILD_ARGS,
           "-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC",
           "--top-module", top, "--prefix", "Vtop", "-Mdir", str(work),
           "-CFLAGS", "-O2 -std=c++17", "-MAKEFLAGS", "-j1",
           str(verilog), str(HARNESS_CPP), "-o", "Vharness"]
    log = work / "build.log"
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=work, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0 or not exe.exists():
        raise DeviceError(f"Verilator harness build failed; see {log}")
    stamp.write_text(digest)
    return exe


class EngineHarness:
    """A running harness process for one BatchEngine configuration.

    Parameters
    ----------
    L, w, k, x : int
        Operand bits, word bits, window bits, maximum exponent bits.
    tag_bits : int
        Tag width of the engine (default the BatchEngine's, :data:`hefl.hw.jobs.TAG_BITS`).
    cycle_limit : int
        A job taking longer raises :class:`hefl.errors.DeviceTimeout`.
    """

    def __init__(self, *, L, w, k, x, tag_bits=TAG_BITS, cycle_limit=200_000_000):
        self.L, self.w, self.k, self.x = L, w, k, x
        self.s = words_for(L, w)
        self._jo = {name: f.offset for name, f in job_layout(w, tag_bits)}
        self._ro = {name: f.offset for name, f in result_layout(w, tag_bits)}
        self._tag_mask = (1 << tag_bits) - 1
        self._exe = build_harness(L, w, k, x)
        self._proc = subprocess.Popen([str(self._exe), str(self._ro["last"]), str(cycle_limit)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                      bufsize=1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._proc.poll() is None:
            try:
                self._proc.stdin.write("quit\n")
                self._proc.stdin.flush()
                self._proc.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self._proc.kill()

    def _send(self, line):
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def load_constants(self, n):
        """Write N', N, R² mod N and R mod N (the engine is idle between jobs)."""
        c = mont_constants(n, self.w, self.s)
        self._send(f"nprime {c.nprime:x}")
        for sel, val in ((0, n), (1, c.r2_mod_n), (2, c.r_mod_n)):
            for i, word in enumerate(to_words(val, self.w, self.s)):
                self._send(f"const {sel:x} {i:x} {word:x}")
        self.n = n

    def run(self, job):
        """Run one job alone; returns ``(value, cycles)``."""
        o = self._jo
        beats = []
        for i, word in enumerate(job.words):
            p = (word << o["data"] | int(i == 0) << o["first"]
                 | int(i == len(job.words) - 1) << o["last"] | job.op << o["op"]
                 | job.tag << o["tag"] | job.count << o["count"])
            beats.append(f"{p:x}")
        self._send(f"job {len(beats):x} " + " ".join(beats))
        first, last, words = None, None, []
        mask = (1 << self.w) - 1
        for line in self._proc.stdout:
            parts = line.split()
            if parts[0] == "first":
                first = int(parts[1])
            elif parts[0] == "out":
                p = int(parts[2], 16)
                words.append((p >> self._ro["data"]) & mask)
                if (p >> self._ro["tag"]) & self._tag_mask != job.tag:
                    raise DeviceError(f"result tagged {(p >> self._ro['tag']) & self._tag_mask}, "
                                      f"job {job.tag}")
                last = int(parts[1])
            elif parts[0] == "end":
                break
            elif parts[0] == "timeout":
                raise DeviceTimeout(f"job {job.tag} did not finish within the cycle limit")
        else:
            raise DeviceError(f"harness exited (code {self._proc.poll()}) during job {job.tag}")
        if len(words) != self.s or first is None:
            raise DeviceError(f"job {job.tag}: {len(words)} result words, want {self.s}")
        return from_words(words, self.w), last - first
