"""Build step of fus: compile kernels/*.cu for the CPU and ship the sources for the GPU.

The CUDA C++ sources in ``kernels/`` are compiled by the host C++ compiler (``-x c++``) into one
shared library, ``fus/_kernels_cpu<ext-suffix>``, loaded at run time with ctypes. The same sources
(and the portability header) are copied into ``fus/_kernels/`` so the GPU backend can hand them to
NVRTC; nothing reads the repository at run time.

Environment:

``CXX``
    host C++ compiler (default ``c++``).
``FUS_CPU_ARCH``
    value for ``-march=`` (default ``native``; use e.g. ``x86-64-v3`` to build a library that
    runs on other machines, or ``none`` to pass no ``-march``).
``FUS_NO_OPENMP=1``
    build single-threaded even if OpenMP is available.

Flags: ``-O3 -fno-math-errno -fno-trapping-math -ffp-contract=fast``; never ``-ffast-math`` or
``-ffinite-math-only`` (NaN must survive, it carries bad thermometry voxels to the safety logic).
"""

from __future__ import annotations

import ast
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
KERNEL_DIR = HERE / "kernels"
BASE_FLAGS = [
    "-O3",
    "-std=c++17",
    "-fPIC",
    "-fvisibility=hidden",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-ffp-contract=fast",
    "-fno-finite-math-only",  # explicit: NaN and inf checks must survive whatever else is added
    "-Wall",
    "-Wno-unknown-pragmas",
]


def _compiler() -> list[str]:
    return shlex.split(os.environ.get("CXX", "c++"))


def _accepts(cxx: list[str], flags: list[str], code: str = "int main(){return 0;}\n") -> bool:
    """True when the compiler builds and links a small program with ``flags``."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.cpp"
        src.write_text(code)
        cmd = [*cxx, *flags, str(src), "-o", str(Path(tmp) / "probe")]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True)
        except OSError:
            return False
        return res.returncode == 0


OPENMP_PROBE = "#include <omp.h>\nint main(){return omp_get_max_threads() > 0 ? 0 : 1;}\n"


class BuildKernels(build_ext):
    """Compile the kernel sources into the CPU shared library and ship the sources."""

    def build_extension(self, ext: Extension) -> None:
        out = Path(self.get_ext_fullpath(ext.name))
        out.parent.mkdir(parents=True, exist_ok=True)
        self._ship_sources(out.parent / "_kernels")
        self._ship_sample_data(out.parent / "_sample_data")

        cxx = _compiler()
        if shutil.which(cxx[0]) is None:
            raise RuntimeError(
                f"fus needs a C++ compiler to build its CPU kernels: {cxx[0]!r} was not found "
                "(install g++ or clang++, or set CXX)"
            )
        flags = list(BASE_FLAGS)
        arch = os.environ.get("FUS_CPU_ARCH", "native")
        if arch != "none":
            if _accepts(cxx, [f"-march={arch}"]):
                flags.append(f"-march={arch}")
            else:
                self.warn(f"fus: the compiler refuses -march={arch}; building for the default target")
        # Prefer full-width AVX-512 vectors where the target has them (g++ defaults to 256-bit).
        if _accepts(cxx, [*flags, "-mprefer-vector-width=512"]):
            flags.append("-mprefer-vector-width=512")

        link = []
        if os.environ.get("FUS_NO_OPENMP") == "1":
            self.warn("fus: FUS_NO_OPENMP=1: building the CPU kernels single-threaded")
            flags.append("-fopenmp-simd")
        elif _accepts(cxx, ["-fopenmp"], OPENMP_PROBE):
            flags.append("-fopenmp")
            link.append("-fopenmp")
        else:
            self.warn(
                "fus: OpenMP is not available with this compiler: the CPU kernels are built "
                "single-threaded (install libgomp / libomp for multi-threading)"
            )
            if _accepts(cxx, ["-fopenmp-simd"]):
                flags.append("-fopenmp-simd")

        tmp = Path(self.build_temp) / "fus_kernels"
        tmp.mkdir(parents=True, exist_ok=True)
        version = subprocess.run([*cxx, "--version"], capture_output=True, text=True).stdout
        described = f"{' '.join(cxx)} ({version.splitlines()[0] if version else '?'}) {' '.join(flags)}"
        (tmp / "fus_build_flags.h").write_text(
            f"#define FUS_BUILD_FLAGS {_c_string(described)}\n"
            f"#define FUS_SOURCE_HASH {_c_string(source_hash(KERNEL_DIR))}\n"
        )
        table = kernel_table()
        # CPU library: each kernel source, plus the parameter-type list of each of its kernels
        units = []
        for src in sorted(KERNEL_DIR.glob("*.cu")):
            unit = tmp / f"cpu_{src.stem}.cpp"
            lines = [f'#include "{src.name}"', '#include "host/signature.hpp"']
            lines += [f"FUS_CPU_SIGNATURE({name})" for name in table.get(src.name, [])]
            unit.write_text("\n".join(lines) + "\n")
            units.append(unit)
        units += sorted(KERNEL_DIR.glob("*.cpp"))  # host_info.cpp: build facts for `fus info`
        self._link(cxx, flags, units, tmp / "cpu", out, link)

        # GPU emulation library: the FUS_GPU branches of the same sources, compiled by the host
        # compiler with the emulation header (no OpenMP: blocks run on the runtime's own threads)
        emu_flags = [f for f in flags if f not in ("-fopenmp", "-fopenmp-simd")]
        emu_flags += ["-include", str(KERNEL_DIR / "host" / "gpu_emulation.hpp"), "-pthread"]
        emu_units = []
        for src in sorted(KERNEL_DIR.glob("*.cu")):
            unit = tmp / f"emu_{src.stem}.cpp"
            lines = [f'#include "{src.name}"']
            lines += [f'FUS_EMU_EXPORT({name}, "{src.name}")' for name in table.get(src.name, [])]
            lines += ['#include "fus_build_flags.h"',
                      f'extern "C" __attribute__((visibility("default"))) const char* fus_emu_source_hash_{src.stem}() {{ return FUS_SOURCE_HASH; }}']
            unit.write_text("\n".join(lines) + "\n")
            emu_units.append(unit)
        emu_units.append(KERNEL_DIR / "host" / "gpu_emulation_runtime.cpp")
        emu_out = out.parent / out.name.replace("_kernels_cpu", "_gpu_emulation")
        self._link(cxx, emu_flags, emu_units, tmp / "emu", emu_out, ["-pthread"])
        self._fus_extra = [emu_out]
        # ... and once more under ThreadSanitizer, where the compiler has it (CI's race check)
        tsan = ["-fsanitize=thread", "-g", "-O1"]
        if _accepts(cxx, tsan + ["-pthread"]):
            tsan_flags = [f for f in emu_flags if f != "-O3"] + tsan
            tsan_out = out.parent / out.name.replace("_kernels_cpu", "_gpu_emulation_tsan")
            self._link(cxx, tsan_flags, emu_units, tmp / "tsan", tsan_out, ["-pthread", "-fsanitize=thread"])
            self._fus_extra.append(tsan_out)
        else:
            self.warn("fus: the compiler has no -fsanitize=thread: the ThreadSanitizer build of the emulated GPU is skipped")

    def _link(self, cxx: list[str], flags: list[str], units: list[Path], tmp: Path, out: Path, link: list[str]) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        objects = []
        for src in units:
            obj = tmp / (src.name + ".o")
            cmd = [*cxx, *flags, "-x", "c++", f"-I{KERNEL_DIR}", f"-I{tmp.parent}", "-c", str(src), "-o", str(obj)]
            self.announce(" ".join(cmd), level=2)
            print(" ".join(cmd), file=sys.stderr)
            subprocess.run(cmd, check=True)
            objects.append(str(obj))
        cmd = [*cxx, "-shared", *objects, "-o", str(out), *link]
        print(" ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)

    def get_outputs(self) -> list[str]:
        return super().get_outputs() + [str(p) for p in getattr(self, "_fus_extra", [])]

    def copy_extensions_to_source(self) -> None:
        # Editable installs (`pip install -e .`) build in a temporary tree and copy only the
        # library back into the source package. There the package is the repository, so
        # fus/_kernels is a link to kernels/: the GPU backend compiles the sources being edited,
        # and the CPU backend refuses a library built from other sources (see source hash).
        super().copy_extensions_to_source()
        for extra in getattr(self, "_fus_extra", []):
            shutil.copy2(extra, HERE / "fus" / extra.name)
        link = HERE / "fus" / "_kernels"
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.is_dir():
            shutil.rmtree(link)
        try:
            link.symlink_to(Path("..") / "kernels", target_is_directory=True)
        except OSError:
            self._ship_sources(link)
        data = HERE / "fus" / "_sample_data"  # likewise the sample data (fus demo)
        if data.is_symlink() or data.is_file():
            data.unlink()
        elif data.is_dir():
            shutil.rmtree(data)
        try:
            data.symlink_to(Path("..") / "sample_data", target_is_directory=True)
        except OSError:
            self._ship_sample_data(data)

    @staticmethod
    def _ship_sample_data(dest: Path) -> None:
        """The scenarios and the sample DICOM series, inside the package (``fus demo`` after a
        non-editable install); the generator script stays in the repository."""
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        elif dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(HERE / "sample_data", dest, ignore=shutil.ignore_patterns("*.py", "__pycache__"))

    @staticmethod
    def _ship_sources(dest: Path) -> None:
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for src in sorted(KERNEL_DIR.iterdir()):
            if src.suffix in {".cu", ".cuh"}:
                shutil.copy2(src, dest / src.name)


def kernel_table() -> dict[str, list[str]]:
    """Kernel names per source file, read from the launch table (fus/backend/signatures.py).

    Parsed, not imported: the package is not importable while it is being built.
    """
    tree = ast.parse((HERE / "fus" / "backend" / "signatures.py").read_text())
    table: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "KernelSignature":
            kw = {k.arg: k.value for k in node.keywords}
            if isinstance(kw.get("name"), ast.Constant) and isinstance(kw.get("source"), ast.Constant):
                table.setdefault(kw["source"].value, []).append(kw["name"].value)
    if not table:
        raise RuntimeError("fus: no kernel found in fus/backend/signatures.py")
    return table


def source_hash(directory: Path) -> str:
    """sha256 over the kernel sources (names and contents); mirrors fus.backend.sources."""
    h = hashlib.sha256()
    for p in sorted(directory.iterdir()):
        if p.suffix in {".cu", ".cuh"}:
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


setup(
    ext_modules=[Extension("fus._kernels_cpu", sources=[])],
    cmdclass={"build_ext": BuildKernels},
)
