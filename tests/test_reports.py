"""Report headers, atomic writes and output-folder checks (hefl.reports)."""

import json

import numpy as np
import pytest

from hefl import __version__
from hefl.errors import HeflError, OutputPathError
from hefl.reports import check_output_dir, report_meta, write_json_atomic


def test_header_fields():
    m = report_meta("demo", 2)
    assert m["hefl_version"] == __version__ and m["schema"] == "hefl-demo/2"
    assert m["created"].endswith("Z") and len(m["created"]) == 20


def test_atomic_write_replaces_whole_files(tmp_path):
    path = tmp_path / "r" / "report.json"
    write_json_atomic(path, {"a": np.int64(3), "b": float("nan"), "c": [np.float32(0.5)]})
    assert json.loads(path.read_text()) == {"a": 3, "b": None, "c": [0.5]}
    write_json_atomic(path, {"a": 4})
    assert json.loads(path.read_text()) == {"a": 4}
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]   # no temporaries left


def test_output_dir_checks(tmp_path):
    assert check_output_dir(tmp_path / "new" / "deep").is_dir()
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputPathError, match="is a file"):
        check_output_dir(f)
    with pytest.raises(OutputPathError):
        check_output_dir("/proc/hefl-cannot-exist")
    assert issubclass(OutputPathError, HeflError)


def test_unwritable_report_is_typed():
    with pytest.raises(OutputPathError, match="cannot write"):
        write_json_atomic("/proc/hefl-x/report.json", {})


def test_backend_options_and_unknown_backend_message():
    import argparse

    from hefl.accel import get_accelerator
    from hefl.cli_options import BACKENDS, add_device_arguments, backend_options
    p = argparse.ArgumentParser()
    add_device_arguments(p)
    a = p.parse_args(["--xclbin", "k.xclbin", "--device", "/dev/ttyUSB9"])
    assert backend_options("xrt", a) == {"xclbin": "k.xclbin"}
    assert backend_options("serial", a) == {"url": "/dev/ttyUSB9"}
    assert backend_options("cpu", a) == {}
    with pytest.raises(HeflError) as e:
        get_accelerator("bogus")
    assert all(name in str(e.value) for name in BACKENDS)
