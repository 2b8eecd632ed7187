"""Step time and peak memory of PLITS, LAL and PAL, side by side.

For a mid-size random Llama (default: hidden 1024, 8 layers, 16 heads,
vocab 32000) and several audio lengths with 64 text tokens, this measures

* a **training step** (forward + backward; the LLM is frozen, only the
  audio projections are trainable: a PLITS input projector, the LAL
  per-layer maps, or both for PAL), and
* **greedy generation** of ``--new-tokens`` tokens (KV cache, no early
  stop),

for three integrations:

* ``plits``: the projected audio tokens are prepended to the text and go
  through every layer;
* ``lal``: ``AttentionOnlyInjector`` on all layers (audio as keys/values
  only);
* ``pal``: half of the audio tokens through PLITS, the other half via LAL.

Each (integration, audio length, train|generate) runs in a process of its
own, forked from a parent that built the frozen LLM once (the children
share its weights copy-on-write and never write to them), so that peak
memory is not polluted by another run. Peak memory is the growth of the
process's peak resident set size during the steps: after the inputs and
trainable modules are built, the kernel's high-water mark is reset
(``echo 5 > /proc/self/clear_refs``) and the current RSS recorded as the
baseline; after the steps, ``VmHWM`` minus that baseline is reported. It
therefore includes activations, gradients, the KV cache and allocator
temporaries, but not the frozen weights. Where ``clear_refs`` is
unavailable, ``ru_maxrss`` is used instead (it may then under-report when
the setup peaked higher).

Timing is side by side: the three processes of one (mode, audio length)
are alive together and run one warm-up step (same shapes; generation with
2 new tokens), then ``--repeats`` rounds of one step each, one process at
a time, in an order that rotates every round. The reported time is the
minimum over the rounds (the least disturbed step). The table prints
PLITS/LAL and PLITS/PAL time ratios, LAL/PLITS and PAL/PLITS memory
ratios, and the FLOP ratio PLITS/X computed from the shapes (dense
attention over all query/key pairs, as SDPA with a mask computes it;
backward of frozen layers counted as input gradients only).

Threads: the default is one torch thread per run. On this 2-core machine,
shared with other jobs, two OpenMP threads made element-wise kernels about
5x slower than one thread (a preempted thread stalls the other at every
barrier), which distorted LAL (many element-wise ops on audio tensors)
far more than PLITS (dominated by large matrix products). Use
``--threads 2`` on an idle machine.

On a CUDA device (``--device cuda``, the default when one is available)
the configurations run one after the other in this process, on a model
in ``--dtype`` (default bfloat16 there) with bf16 autocast: each is
built, warmed up with one step, its peak-memory counter reset, then timed
over ``--repeats`` steps, ``torch.cuda.synchronize()`` around each.
Training steps there include an AdamW step over the trainable
parameters, and the peak is ``torch.cuda.max_memory_allocated``: frozen
weights, trainable weights, gradients, optimizer state, activations and
KV caches all count. The rows print the peak and the frozen weights'
share of it; the memory ratios compare whole peaks.

Usage::

    python benchmarks/pal_efficiency.py            # 5-10 min on 2 cores
    python benchmarks/pal_efficiency.py --quick    # smoke test, seconds
    python benchmarks/pal_efficiency.py --shapes llama-3.2-1b   # on a GPU

``--shapes llama-3.2-1b`` sets the LLM shapes of the PAL paper's backbone
(hidden 2048, 16 layers, 32 heads, 8 key/value heads, MLP 8192, vocab
128256, tied embeddings; random weights). Times depend on machine load
(FLOP ratios do not); run it on an idle machine for numbers worth
quoting. The CPU path is Linux only (``fork``, ``/proc``).

Authors
 * audiollm-lobes developers, 2026
"""

import argparse
import multiprocessing
import time
import traceback

from audiollm_lobes.peak_memory import (
    peak_memory_mb,
    peak_rss_mb,
    reset_peak_memory,
    synchronize,
)

METHODS = ("plits", "lal", "pal")
#: ``--shapes`` presets: LLM shapes of published backbones.
SHAPES = {
    "llama-3.2-1b": {
        "hidden": 2048,
        "layers": 16,
        "heads": 32,
        "kv_heads": 8,
        "intermediate": 8192,
        "vocab": 128256,
        "tied": True,
    },
}


# ------------------------------------------------------------------ FLOPs
def layer_linear_params(hidden, heads, kv_heads, intermediate):
    """Weights of one Llama layer's linear maps (multiply-adds per token).

    Arguments
    ---------
    hidden : int
        Model width.
    heads : int
        Query heads.
    kv_heads : int
        Key/value heads.
    intermediate : int
        MLP width.

    Returns
    -------
    int
        ``q + k + v + o + gate + up + down`` weight count.

    Example
    -------
    >>> layer_linear_params(8, 2, 1, 16)
    576
    """
    head_dim = hidden // heads
    attn = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    return attn + 3 * hidden * intermediate


def count_flops(shape, n_plits, n_lal, n_text, mode, new_tokens=0):
    """FLOPs of one training step or one generation from the shapes.

    Counts matrix products only (2 FLOPs per multiply-add). Training:
    frozen linear maps cost forward + input gradient (2x), trainable maps
    forward + weight gradient (2x, the audio features need no gradient),
    attention forward + backward (3x). Logits only at the labelled text
    positions (all text tokens but the first). Generation: prefill with
    logits at the last position, then one token per step over the cache.

    Arguments
    ---------
    shape : dict
        ``hidden, layers, heads, kv_heads, intermediate, vocab, batch,
        audio_dim``.
    n_plits : int
        Audio tokens prepended to the input.
    n_lal : int
        Audio tokens injected as keys/values in every layer.
    n_text : int
        Text tokens.
    mode : str
        ``"train"`` or ``"generate"``.
    new_tokens : int
        Generated tokens (``generate``).

    Returns
    -------
    float
        FLOPs.

    Example
    -------
    >>> s = dict(hidden=8, layers=1, heads=2, kv_heads=1, intermediate=16,
    ...          vocab=10, batch=1, audio_dim=8)
    >>> count_flops(s, 4, 0, 4, "train") > count_flops(s, 0, 4, 4, "train")
    True
    """
    d, n_layers = shape["hidden"], shape["layers"]
    heads, kv = shape["heads"], shape["kv_heads"]
    head_dim = d // heads
    kv_dim = kv * head_dim
    batch, da, vocab = shape["batch"], shape["audio_dim"], shape["vocab"]
    per_token = 2 * layer_linear_params(d, heads, kv, shape["intermediate"])
    seq = n_plits + n_text  # tokens that go through the layers

    def attention(queries, keys):
        return 2 * 2 * heads * head_dim * queries * keys

    projector = 2 * da * d * n_plits  # PLITS input projector
    lal_maps = 2 * da * d * n_lal * n_layers if n_lal else 0
    lal_kv = 2 * 2 * d * kv_dim * n_lal * n_layers if n_lal else 0
    if mode == "train":
        layers = n_layers * (
            2 * per_token * seq + 3 * attention(seq, n_lal + seq)
        )
        head = 2 * 2 * d * vocab * (n_text - 1)
        trainable = 2 * (projector + lal_maps)
        total = layers + head + trainable + 2 * lal_kv
        return float(batch * total)
    prefill = n_layers * (per_token * seq + attention(seq, n_lal + seq))
    prefill += 2 * d * vocab + projector + lal_maps + lal_kv
    decode = 0
    for step in range(1, new_tokens):
        keys = n_lal + seq + step
        decode += n_layers * (per_token + attention(1, keys))
        decode += 2 * d * vocab
    return float(batch * (prefill + decode))


# ------------------------------------------------------------ memory
def current_rss_kb():
    """Current resident set size of this process (kB), or None.

    Returns
    -------
    int or None
        ``VmRSS`` from ``/proc/self/status``.

    Example
    -------
    >>> rss = current_rss_kb()
    >>> rss is None or rss > 0
    True
    """
    return _status_kb("VmRSS")


def _status_kb(field):
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss():
    """Resets the kernel's peak-RSS mark of this process (Linux >= 4.0).

    Returns
    -------
    bool
        Whether it worked (``VmHWM`` is then the current RSS).

    Example
    -------
    >>> isinstance(reset_peak_rss(), bool)
    True
    """
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return _status_kb("VmHWM") is not None
    except OSError:
        return False


def peak_rss_kb(hwm_reset):
    """Peak RSS (kB) since the last reset, else since the process started.

    Arguments
    ---------
    hwm_reset : bool
        Whether ``reset_peak_rss`` worked.

    Returns
    -------
    int
        ``VmHWM`` or ``ru_maxrss``.

    Example
    -------
    >>> peak_rss_kb(False) > 0
    True
    """
    if hwm_reset:
        return _status_kb("VmHWM")
    return peak_rss_mb() * 1024.0


# ------------------------------------------------------------ worker
#: The frozen LLM, built once in the parent and shared with every forked
#: child (copy-on-write; the children never write to it).
_MODEL = None


def build_model(shape, seed=0, device="cpu", dtype="float32"):
    """A random, frozen ``LlamaForCausalLM`` of the given shape.

    Arguments
    ---------
    shape : dict
        ``hidden, layers, heads, kv_heads, intermediate, vocab``, optional
        ``tied`` (input and output embeddings shared).
    seed : int
        Initialisation seed.
    device : str
        Where the weights live.
    dtype : str
        Weight dtype (``"float32"``, ``"bfloat16"``).

    Returns
    -------
    transformers.LlamaForCausalLM
        In eval mode, ``requires_grad=False``.

    Example
    -------
    >>> m = build_model(dict(hidden=8, layers=1, heads=2, kv_heads=1,
    ...                      intermediate=16, vocab=10))
    >>> m.config.num_key_value_heads
    1
    """
    import torch
    import transformers

    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=shape["vocab"],
        hidden_size=shape["hidden"],
        intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"],
        max_position_embeddings=4096,
        tie_word_embeddings=shape.get("tied", False),
    )
    model = transformers.LlamaForCausalLM(config).eval()
    model.requires_grad_(False)
    return model.to(device=device, dtype=getattr(torch, dtype))


def prepare(spec, model):
    """Builds the inputs and trainable modules of one configuration.

    Arguments
    ---------
    spec : dict
        ``shape, method, mode, n_audio, n_text, new_tokens, threads``;
        optional ``device`` (default ``"cpu"``; the model's), ``autocast``
        (a dtype name: run the steps under ``torch.autocast``) and
        ``optimizer`` (training steps also take an AdamW step).
    model : transformers.LlamaForCausalLM
        The frozen LLM.

    Returns
    -------
    step : callable
        ``step(new_tokens)`` runs one training step (forward + backward)
        or one greedy generation of ``new_tokens`` tokens.
    info : dict
        ``trainable`` (parameter count) and ``flops`` (of one step with
        ``spec["new_tokens"]``).

    Example
    -------
    >>> shape = dict(hidden=8, layers=1, heads=2, kv_heads=1,
    ...              intermediate=16, vocab=10, batch=1, audio_dim=8)
    >>> spec = dict(shape=shape, method="pal", mode="train", n_audio=4,
    ...             n_text=3, new_tokens=2, threads=1)
    >>> step, info = prepare(spec, build_model(shape))
    >>> step(2); info["trainable"]
    144
    """
    import torch
    import transformers

    from audiollm_lobes.injection import AttentionOnlyInjector
    from audiollm_lobes.llm import CausalLM

    torch.set_num_threads(spec["threads"])
    shape = spec["shape"]
    method, mode = spec["method"], spec["mode"]
    device = torch.device(spec.get("device", "cpu"))
    batch, n_audio, n_text = shape["batch"], spec["n_audio"], spec["n_text"]
    n_lal = {"plits": 0, "lal": n_audio, "pal": n_audio // 2}[method]
    n_plits = n_audio - n_lal
    d, da = shape["hidden"], shape["audio_dim"]
    torch.manual_seed(1)
    audio = torch.randn(batch, n_audio, da).to(device)
    ids = torch.randint(3, shape["vocab"], (batch, n_text)).to(device)
    embed = model.get_input_embeddings()
    with torch.no_grad():
        text = embed(ids)
    projector = torch.nn.Linear(da, d).to(device) if n_plits else None
    injector = None
    if n_lal:
        llm = CausalLM.from_model(model)
        injector = AttentionOnlyInjector(llm, da, lal_layers="all")
        injector.to(device)
    plits_audio, lal_audio = audio[:, :n_plits], audio[:, n_plits:]
    lal_mask = torch.ones(batch, n_lal, dtype=torch.bool, device=device)
    labels = ids.clone()
    labels[:, 0] = -100
    trainables = [
        p
        for m in (projector, injector)
        if m is not None
        for p in m.parameters()
    ]
    optimizer = None
    if spec.get("optimizer") and mode == "train":
        optimizer = torch.optim.AdamW(trainables, lr=1e-4)
    autocast = spec.get("autocast")

    def inputs():
        """Text (with PLITS audio prepended), its mask and labels."""
        if not n_plits:
            mask = torch.ones(batch, n_text, dtype=torch.bool, device=device)
            return text, mask, labels
        embeds = torch.cat([projector(plits_audio).to(text.dtype), text], 1)
        mask = torch.ones(embeds.shape[:2], dtype=torch.bool, device=device)
        ignore = torch.full((batch, n_plits), -100, device=device)
        return embeds, mask, torch.cat([ignore, labels], dim=1)

    def plits_loss(embeds, mask, targets):
        valid = targets[:, 1:] != -100
        logits_at = torch.zeros_like(mask)
        logits_at[:, :-1] = valid
        hidden = model.model(
            inputs_embeds=embeds, attention_mask=mask.long()
        ).last_hidden_state
        logits = model.lm_head(hidden[logits_at])
        return torch.nn.functional.cross_entropy(logits, targets[:, 1:][valid])

    def train_step(_new_tokens):
        embeds, mask, targets = inputs()
        if injector is None:
            loss = plits_loss(embeds, mask, targets)
        else:
            loss = injector.loss(embeds, mask, targets, lal_audio, lal_mask)
        loss.backward()
        if optimizer is not None:
            optimizer.step()
        for module in (projector, injector):
            if module is not None:
                module.zero_grad(set_to_none=True)

    @torch.no_grad()
    def generate_step(new_tokens):
        embeds, mask, _ = inputs()
        if injector is not None:
            return injector.generate(
                lal_audio, lal_mask, embeds, mask, new_tokens, eos_ids=[]
            )
        cache = transformers.DynamicCache(config=model.config)
        out = model(
            inputs_embeds=embeds,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        tokens = [out.logits[:, -1].argmax(-1)]
        for _ in range(new_tokens - 1):
            out = model(
                input_ids=tokens[-1][:, None],
                past_key_values=cache,
                use_cache=True,
            )
            tokens.append(out.logits[:, -1].argmax(-1))
        return torch.stack(tokens, 1)

    trainable = sum(p.numel() for p in trainables)
    flops = count_flops(shape, n_plits, n_lal, n_text, mode, spec["new_tokens"])
    step = train_step if mode == "train" else generate_step
    if autocast:
        plain_step = step

        def step(new_tokens):
            dtype = getattr(torch, autocast)
            with torch.autocast(device.type, dtype=dtype):
                return plain_step(new_tokens)

    return step, {"trainable": trainable, "flops": flops}


def _child(spec, conn):
    """Child process: prepare, then run steps on request, report the peak."""
    try:
        step, info = prepare(spec, _MODEL)
        hwm_reset = reset_peak_rss()
        baseline = current_rss_kb() if hwm_reset else peak_rss_kb(False)
        conn.send(("ready", None))
        while True:
            command, new_tokens = conn.recv()
            if command != "step":
                break
            start = time.perf_counter()
            step(new_tokens)
            conn.send(("time", time.perf_counter() - start))
        peak = peak_rss_kb(hwm_reset) - baseline
        info.update(peak_mb=peak / 1024.0, hwm_reset=hwm_reset)
        conn.send(("done", info))
    except BaseException:  # report anything, including KeyboardInterrupt
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def _expect(conn, spec, kind):
    status, payload = conn.recv()
    if status == "error":
        raise RuntimeError(
            f"{spec['method']}/{spec['mode']}/audio={spec['n_audio']} "
            f"failed:\n{payload}"
        )
    if status != kind:
        raise RuntimeError(f"expected {kind!r} from a worker, got {status!r}")
    return payload


def compare(specs, rounds, new_tokens):
    """Measures configurations side by side, one forked process each.

    All processes are started (each prepares its inputs and resets its
    peak-RSS mark), warmed up with one step (generation: 2 tokens), then
    run ``rounds`` steps in turn, the order rotating every round, so that
    all configurations see the same machine load. Only one process
    computes at a time.

    Arguments
    ---------
    specs : list of dict
        See ``prepare``.
    rounds : int
        Timed steps per configuration.
    new_tokens : int
        Tokens per timed generation.

    Returns
    -------
    list of dict
        Per spec: ``times`` (s), ``time`` (minimum: the least disturbed
        step), ``peak_mb``, ``hwm_reset``, ``trainable``, ``flops``.

    Example
    -------
    >>> callable(compare)
    True
    """
    ctx = multiprocessing.get_context("fork")
    workers = []
    try:
        for spec in specs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_child, args=(spec, child))
            proc.start()
            child.close()
            workers.append((spec, parent, proc))
        for spec, conn, _ in workers:
            _expect(conn, spec, "ready")
        times = [[] for _ in workers]
        for r in range(rounds + 1):
            order = list(range(len(workers)))
            order = order[r % len(order) :] + order[: r % len(order)]
            for i in order:
                spec, conn, _ = workers[i]
                conn.send(("step", new_tokens if r else 2))
                elapsed = _expect(conn, spec, "time")
                if r:  # round 0 is the warm-up
                    times[i].append(elapsed)
        results = []
        for (spec, conn, _), spec_times in zip(workers, times):
            conn.send(("stop", None))
            info = _expect(conn, spec, "done")
            info.update(times=spec_times, time=min(spec_times))
            results.append(info)
        return results
    finally:
        for _, conn, proc in workers:
            conn.close()
            proc.join(timeout=60)
            if proc.is_alive():
                proc.terminate()


def measure_in_process(model, specs, rounds, new_tokens, device):
    """Measures configurations one after the other in this process.

    The path for a CUDA device (which a forked child could not use): each
    configuration is prepared on ``model``, warmed up with one step
    (generation: 2 tokens), its peak-memory counter reset, then timed
    over ``rounds`` steps with the device synchronised before and after
    each; its modules are freed before the next one is built.

    Arguments
    ---------
    model : transformers.LlamaForCausalLM
        The frozen LLM (``build_model``), on ``device``.
    specs : list of dict
        See ``prepare`` (``device`` set).
    rounds : int
        Timed steps per configuration.
    new_tokens : int
        Tokens per timed generation.
    device : str
        The device the model is on. On a CPU the peak is the process's
        (never reset), so only the times are meaningful there.

    Returns
    -------
    list of dict
        As ``compare``: ``times``, ``time`` (minimum), ``peak_mb`` (CUDA:
        ``max_memory_allocated`` during the timed steps: frozen and
        trainable weights, gradients, optimizer state, activations,
        caches), ``hwm_reset``, ``trainable``, ``flops``.

    Example
    -------
    >>> shape = dict(hidden=8, layers=1, heads=2, kv_heads=1,
    ...              intermediate=16, vocab=10, batch=1, audio_dim=8)
    >>> specs = [dict(shape=shape, method=m, mode="train", n_audio=4,
    ...               n_text=3, new_tokens=2, threads=1, device="cpu",
    ...               optimizer=True) for m in METHODS]
    >>> out = measure_in_process(build_model(shape), specs, 2, 2, "cpu")
    >>> [len(r["times"]) for r in out], [r["trainable"] for r in out]
    ([2, 2, 2], [72, 72, 144])
    """
    import gc

    import torch

    results = []
    for spec in specs:
        step, info = prepare(spec, model)
        step(2 if spec["mode"] == "generate" else new_tokens)  # warm-up
        reset_peak_memory(device)
        times = []
        for _ in range(rounds):
            synchronize(device)
            start = time.perf_counter()
            step(new_tokens)
            synchronize(device)
            times.append(time.perf_counter() - start)
        info.update(
            times=times,
            time=min(times),
            peak_mb=peak_memory_mb(device),
            hwm_reset=True,
        )
        results.append(info)
        del step
        gc.collect()
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
    return results


def _parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode")
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--kv-heads", type=int, default=None)
    parser.add_argument("--intermediate", type=int, default=None)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--text", type=int, default=64)
    parser.add_argument("--audio", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument(
        "--repeats", type=int, default=2, help="timed rounds (min is kept)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per run (1: stable on a busy 2-core machine)",
    )
    parser.add_argument("--modes", nargs="+", default=["train", "generate"])
    parser.add_argument(
        "--device",
        default=None,
        help="cpu or cuda[:i] (default: cuda when available, else cpu)",
    )
    parser.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "bfloat16"],
        help="LLM weights (default: float32 on cpu, bfloat16 on cuda, "
        "with bf16 autocast)",
    )
    parser.add_argument(
        "--shapes",
        choices=sorted(SHAPES),
        default=None,
        help="LLM shapes of a published backbone (overrides --hidden etc.)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.hidden, args.layers, args.heads, args.vocab = 256, 2, 4, 2000
        args.batch, args.text, args.audio = 2, 16, [16, 64]
        args.new_tokens, args.repeats = 4, 1
    return args


def llm_shape(args):
    """The model and batch shapes of a parsed command line.

    Arguments
    ---------
    args : argparse.Namespace
        From ``_parse``.

    Returns
    -------
    dict
        ``hidden, layers, heads, kv_heads, intermediate, vocab, batch,
        audio_dim`` (and ``tied`` with ``--shapes``).

    Example
    -------
    >>> llm_shape(_parse(["--shapes", "llama-3.2-1b"]))["kv_heads"]
    8
    >>> llm_shape(_parse(["--quick"]))["intermediate"]
    704
    """
    shape = {
        "hidden": args.hidden,
        "layers": args.layers,
        "heads": args.heads,
        "kv_heads": args.kv_heads or args.heads,
        "intermediate": args.intermediate or (args.hidden * 11 // 4),
        "vocab": args.vocab,
        "batch": args.batch,
        "audio_dim": args.hidden,
    }
    if args.shapes:
        shape.update(SHAPES[args.shapes])
        shape["audio_dim"] = shape["hidden"]
    return shape


def _fmt_ratio(a, b):
    return f"{a / b:5.2f}" if b else "  n/a"


def main(argv=None):
    """Runs every configuration in a subprocess and prints the table.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv``).

    Returns
    -------
    dict
        ``{(mode, n_audio, method): result}``.

    Example
    -------
    >>> callable(main)
    True
    """
    global _MODEL
    import torch

    args = _parse(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    on_cuda = torch.device(device).type == "cuda"
    dtype = args.dtype or ("bfloat16" if on_cuda else "float32")
    shape = llm_shape(args)
    print(
        "PAL efficiency: random Llama "
        + ", ".join(f"{k}={v}" for k, v in shape.items())
        + f", text={args.text}, new_tokens={args.new_tokens}, "
        f"threads={args.threads}, rounds={args.repeats} (+1 warm-up)"
        + (f", device={device}, dtype={dtype}" if on_cuda else ""),
        flush=True,
    )
    # One thread in the parent: no OpenMP pool exists when the children are
    # forked (each child then sets its own thread count).
    torch.set_num_threads(1)
    _MODEL = build_model(shape, device=device, dtype=dtype)
    weights_mb = (
        torch.cuda.memory_allocated(device) / 2**20 if on_cuda else None
    )
    extra = {}
    if on_cuda:  # in this process, with an optimizer step, autocast
        extra = {"device": device, "optimizer": True}
    if dtype != "float32":
        extra["autocast"] = dtype
    results = {}
    for mode in args.modes:
        for n_audio in args.audio:
            specs = [
                {
                    "shape": shape,
                    "method": method,
                    "mode": mode,
                    "n_audio": n_audio,
                    "n_text": args.text,
                    "new_tokens": args.new_tokens,
                    "threads": args.threads,
                    **extra,
                }
                for method in METHODS
            ]
            if on_cuda:
                measured = measure_in_process(
                    _MODEL, specs, args.repeats, args.new_tokens, device
                )
            else:
                measured = compare(specs, args.repeats, args.new_tokens)
            for method, res in zip(METHODS, measured):
                results[(mode, n_audio, method)] = res
                runs = ", ".join(f"{t:.2f}" for t in res["times"])
                peak = (
                    f"peak={res['peak_mb']:8.1f}MB "
                    f"(frozen weights {weights_mb:.1f}MB) "
                    if on_cuda
                    else f"peak=+{res['peak_mb']:7.1f}MB "
                )
                print(
                    f"  {mode:8s} audio={n_audio:5d} {method:5s} "
                    f"time={res['time']:8.3f}s (runs: {runs}) "
                    + peak
                    + f"trainable={res['trainable']:,}",
                    flush=True,
                )
    print()
    header = (
        f"{'mode':8s} {'audio':>5s} | {'time PLITS/LAL':>14s} "
        f"{'FLOPs PLITS/LAL':>15s} {'mem LAL/PLITS':>13s} | "
        f"{'time PLITS/PAL':>14s} {'FLOPs PLITS/PAL':>15s} "
        f"{'mem PAL/PLITS':>13s}"
    )
    print(header)
    print("-" * len(header))
    for mode in args.modes:
        for n_audio in args.audio:
            p, lal, pal = (results[(mode, n_audio, m)] for m in METHODS)
            print(
                f"{mode:8s} {n_audio:5d} | "
                f"{_fmt_ratio(p['time'], lal['time']):>14s} "
                f"{_fmt_ratio(p['flops'], lal['flops']):>15s} "
                f"{_fmt_ratio(lal['peak_mb'], p['peak_mb']):>13s} | "
                f"{_fmt_ratio(p['time'], pal['time']):>14s} "
                f"{_fmt_ratio(p['flops'], pal['flops']):>15s} "
                f"{_fmt_ratio(pal['peak_mb'], p['peak_mb']):>13s}"
            )
    if not all(r["hwm_reset"] for r in results.values()):
        print("note: /proc/self/clear_refs unavailable; peaks use ru_maxrss")
    return results


if __name__ == "__main__":
    main()
