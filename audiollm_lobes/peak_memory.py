"""Peak memory of this process (CPU) or of a CUDA device, on any OS.

Recipes report how much memory their training took, and the benchmarks
compare it between methods; both ask the same two questions here:

* ``peak_rss_mb``: the high-water mark of this process's resident memory
  (``getrusage`` on POSIX, whose unit differs between Linux and macOS;
  ``psutil``'s peak working set on Windows);
* ``peak_memory_mb(device)``: on a CUDA device, the most memory PyTorch
  has allocated there since ``reset_peak_memory(device)``, i.e. the
  weights, gradients, optimizer state and activations alive at the worst
  moment; on a CPU, ``peak_rss_mb`` (which cannot be reset).

Authors
 * audiollm-lobes developers, 2026
"""

import sys

import torch

try:  # POSIX only
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None

MIB = 1024.0 * 1024.0


def rusage_peak_mb(max_rss, platform=sys.platform):
    """Converts ``getrusage``'s ``ru_maxrss`` to MiB.

    Arguments
    ---------
    max_rss : int
        ``ru_maxrss`` as the OS reports it: KiB on Linux and the BSDs,
        bytes on macOS.
    platform : str
        ``sys.platform``.

    Returns
    -------
    float
        MiB.

    Example
    -------
    >>> rusage_peak_mb(2048, "linux"), rusage_peak_mb(2 * 1024**2, "darwin")
    (2.0, 2.0)
    """
    if platform == "darwin":
        return max_rss / MIB
    return max_rss / 1024.0


def peak_rss_mb():
    """Peak resident memory of this process so far, in MiB.

    Returns
    -------
    float or None
        The high-water mark of the resident set (POSIX: ``ru_maxrss``;
        Windows: ``psutil``'s ``peak_wset``); None where neither exists.

    Example
    -------
    >>> peak_rss_mb() > 0
    True
    """
    if resource is not None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return rusage_peak_mb(usage.ru_maxrss)
    try:  # pragma: no cover - Windows
        import psutil
    except ImportError:  # pragma: no cover
        return None
    peak = getattr(psutil.Process().memory_info(), "peak_wset", None)
    return None if peak is None else peak / MIB


def is_cuda(device):
    """Whether ``device`` (a string or ``torch.device``) is a CUDA device.

    Arguments
    ---------
    device : str or torch.device
        E.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``.

    Returns
    -------
    bool
        True for CUDA devices.

    Example
    -------
    >>> is_cuda("cuda:1"), is_cuda(torch.device("cpu"))
    (True, False)
    """
    return torch.device(device).type == "cuda"


def synchronize(device):
    """Waits for the device's queued kernels (CUDA); nothing on a CPU.

    Call it before reading a clock around GPU work: CUDA kernels run
    asynchronously, so without it a timer measures the launches only.

    Arguments
    ---------
    device : str or torch.device
        The device the timed work runs on.

    Example
    -------
    >>> synchronize("cpu")
    """
    if is_cuda(device):
        torch.cuda.synchronize(device)


def reset_peak_memory(device):
    """Starts a new peak-memory measurement on a CUDA device.

    On a CPU there is nothing to reset: ``peak_memory_mb("cpu")`` is the
    process's peak since it started.

    Arguments
    ---------
    device : str or torch.device
        The device to measure.

    Example
    -------
    >>> reset_peak_memory("cpu")
    """
    if is_cuda(device):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device):
    """Peak memory in MiB: allocated on a CUDA device, resident on a CPU.

    Arguments
    ---------
    device : str or torch.device
        The device the work ran on.

    Returns
    -------
    float or None
        CUDA: ``torch.cuda.max_memory_allocated`` since the last
        ``reset_peak_memory`` (every tensor alive at the peak: weights,
        gradients, optimizer state, activations, caches). CPU:
        ``peak_rss_mb()``.

    Example
    -------
    >>> peak_memory_mb("cpu") > 0
    True
    """
    if is_cuda(device):
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / MIB
    return peak_rss_mb()
