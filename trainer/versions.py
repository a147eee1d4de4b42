"""Versions of the libraries that shape an adapter, saved with every artifact (as peft saves its own)."""

import platform
import sys
from importlib import metadata

LIBRARIES = ("loraledger", "torch", "transformers", "peft", "accelerate", "bitsandbytes", "safetensors")


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process (Linux/macOS), in MiB."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
