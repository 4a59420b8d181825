"""Package-level contracts: light imports, CLIs with subcommands."""
import subprocess
import sys

from tests.conftest import REPO


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout


def test_import_does_not_load_optional_backends():
    out = _run(
        "import sys, face3d, face3d.render, avatars, audio2exp\n"
        "bad = [m for m in ('nvdiffrast', 'pytorch3d', 'open3d', 'dlib', 'skimage', 'imageio') if m in sys.modules]\n"
        "print(','.join(bad) or 'none')"
    )
    assert out.strip() == "none"


def test_each_cli_lists_subcommands():
    for mod, expected in (("face3d.cli", "demo"), ("avatars.cli", "turntable"), ("audio2exp.cli", "animate")):
        out = subprocess.run([sys.executable, "-m", mod, "--help"], cwd=REPO, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert expected in out.stdout, out.stdout
