"""The register map and buffer layout: consistent, pure data, ap_ctrl_hs offsets."""

import subprocess
import sys

import pytest

from hefl.hw.regmap import LAYOUT, REGMAP, Access


def test_ap_ctrl_hs_offsets():
    # The Vitis ap_ctrl_hs convention fixes these (UG1393); args start at 0x10.
    ctrl = REGMAP.reg("ctrl")
    assert ctrl.offset == 0
    assert [(f.name, f.lsb) for f in ctrl.fields] == [
        ("ap_start", 0), ("ap_done", 1), ("ap_idle", 2), ("ap_ready", 3), ("auto_restart", 7)]
    assert (REGMAP.reg("gie").offset, REGMAP.reg("ier").offset, REGMAP.reg("isr").offset) == (4, 8, 12)
    assert min(a.offset for a in REGMAP.args) == 0x10
    assert ctrl.field("ap_done").access is Access.RC
    assert REGMAP.reg("isr").field("done").access is Access.TOW


def test_registers_disjoint_and_args_match():
    regs = list(REGMAP)
    offsets = [r.offset for r in regs]
    assert offsets == sorted(set(offsets))
    assert all(o % 4 == 0 and o < 1 << REGMAP.addr_bits for o in offsets)
    for a in REGMAP.args:
        assert a.is_pointer and a.size == 8
        lo, hi = (REGMAP.reg(n) for n in a.registers)
        assert (lo.offset, hi.offset) == (a.offset, a.offset + 4)
        assert lo.access is hi.access is Access.RW
    with pytest.raises(KeyError):
        REGMAP.reg("nonexistent")


def test_job_header_roundtrip(rng):
    for _ in range(200):
        op, tag, count = rng.randrange(3), rng.randrange(1 << 16), rng.randrange(1 << 16)
        limb = LAYOUT.pack_job_header(op, tag, count)
        # Independent computation of the contract's bit positions.
        assert limb == op | tag << 2 | count << 18
        assert LAYOUT.unpack_job_header(limb) == (op, tag, count)
    with pytest.raises(ValueError):
        LAYOUT.pack_job_header(0, 1 << 16, 1)


def test_layout_indices():
    assert LAYOUT.magic_word == 0x4845464C | 1 << 32
    assert bytes.fromhex(f"{LAYOUT.magic:08x}") == b"HEFL"
    assert [LAYOUT.desc.index(n) for n in ("magic", "jobs", "words", "word_bits", "nprime",
                                           "stream_limbs")] == list(range(6))
    assert [LAYOUT.result.index(n) for n in ("status", "cycles", "jobs_done")] == [0, 1, 2]
    assert LAYOUT.result_limb(3, words=5) == 8 + 15
    assert LAYOUT.job_operand_limbs(LAYOUT.op("powmod"), 65, 4, 32) == 4 + 3
    assert LAYOUT.job_operand_limbs(LAYOUT.op("mulmod"), 2, 4, 32) == 8
    assert LAYOUT.job_operand_limbs(LAYOUT.op("product"), 5, 4, 32) == 20
    assert LAYOUT.decode_status(1 | 8) == ["bad_magic", "stream_length"]


def test_import_is_pure_data():
    # The host imports the map on every call path: it must not pull in Amaranth,
    # nor may the widths and the golden models that read it.
    code = ("import sys, hefl.hw.regmap, hefl.hw.params, hefl.golden.batch; "
            "assert 'amaranth' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_generated_doc_lists_everything(tmp_path):
    from hefl.flows.regmap_doc import write_regmap_doc
    text = write_regmap_doc(tmp_path / "regmap.md").read_text()
    rows = [c for c in (ln.split("|")[1:-1] for ln in text.splitlines() if ln.startswith("| 0x"))
            if len(c) == 6]
    documented = {(int(c[0], 16), c[1].strip(), c[3].strip()) for c in rows}
    for r in REGMAP:
        for f in r.fields:
            assert (r.offset, r.name, f.name) in documented
    for a in REGMAP.args:
        assert f"| {a.name} | 0x{a.offset:02X} | {a.size} |" in text
    for name, bit in LAYOUT.status_flags:
        assert f"| {bit:#x} | {name} |" in text
