import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bin" / "check-python"


def test_make_warns_below_the_required_python_patch_level_and_never_fails():
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    if sys.version_info[:3] < (3, 11, 10):
        assert "older than 3.11.10" in proc.stderr and "CVE-2024-6923" in proc.stderr
    else:
        assert proc.stderr == ""


def test_make_up_and_make_test_run_the_check():
    makefile = (SCRIPT.parents[1] / "Makefile").read_text()
    for target in ("up:", "test:"):
        recipe = makefile.split(f"\n{target}", 1)[1].split("\n\n", 1)[0]
        assert "bin/check-python" in recipe, target
