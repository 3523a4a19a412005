"""Build real (tiny) wheel distributions for plugin tests, without setuptools or network."""
import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(directory, dist: str, version: str, modules: dict, entry_points: dict) -> Path:
    """Write ``{dist}-{version}-py3-none-any.whl`` holding ``modules`` (filename -> source) and
    ``entry_points`` (group -> {name: "module:attr"})."""
    norm = dist.replace("-", "_")
    info = f"{norm}-{version}.dist-info"
    files = {name: source.encode() for name, source in modules.items()}
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: zoo-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{info}/entry_points.txt"] = "".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for group, eps in entry_points.items()
    ).encode()
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    path = Path(directory) / f"{norm}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def pip_install_target(wheels, target) -> None:
    """``pip install --target`` the wheels (no dependencies, no index)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(target),
         *map(str, wheels)],
        check=True,
    )
