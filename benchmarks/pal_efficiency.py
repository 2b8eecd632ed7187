"""Step time and peak memory of PLITS, LAL and PAL, side by side.

For a mid-size random Llama (default: hidden 1024, 8 layers, 16 heads,
vocab 32000) and several audio lengths with 64 text tokens, this measures

* a **training step** (forward + backward; the audio projections train:
  a PLITS input projector, the LAL per-layer maps, or both for PAL), and
* **greedy generation** of ``--new-tokens`` tokens (KV cache, no early
  stop), and of one token (the prefill alone),

for three integrations:

* ``plits``: the projected audio tokens are prepended to the text and go
  through every layer;
* ``lal``: ``AttentionOnlyInjector`` on all layers (audio as keys/values
  only);
* ``pal``: each encoder's own tokens, as the PAL recipe builds them
  (``pal_token_counts``): Whisper's through PLITS, BEATs' through LAL,
  each as many as the fused stream PLITS and LAL get (so PAL has twice
  their audio tokens),

and two settings of the LLM (``--llm-finetune``): frozen (``none``), and
LoRA (rank 8 on every linear layer of attention and FFN, trained with the
rest: the paper updates the LLM). PLITS and LAL decode over the same
kind of cache, one that reserves room for the new tokens
(``kv_cache.reserved_cache``, as ``CausalLM.generate`` and LAL do);
``--plits-cache dynamic`` gives PLITS HF's default ``DynamicCache``
instead, which copies the whole cache at every step.

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
minimum over the rounds (the least disturbed step). The first table
prints, for LAL and PAL against PLITS, the speed-up (PLITS time / X
time), the FLOP ratio PLITS/X computed from the shapes (dense attention
over all query/key pairs, as SDPA with a mask computes it; backward of
frozen layers counted as input gradients only): the speed-up were time
proportional to FLOPs, their quotient (1: the FLOP advantage fully turned
into time), and the memory ratio X/PLITS. The second splits generation
into its prefill (speed-up, FLOP ratio, quotient) and the time of one
decoding step of each method: a step reads every weight and the whole KV
cache for one token (memory-bound), the same bytes for all three, which
is why generation stays below its FLOP ratio while its prefill does not.

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

    python benchmarks/pal_efficiency.py            # ~20 min on 2 cores
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
#: LoRA rank of the ``--llm-finetune lora`` setting (the PAL yamls').
LORA_RANK = 8
#: Linear layers LoRA adapts there (the PAL yamls' ``lora_target_modules``).
LORA_TARGETS = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)


def _layer_linears(hidden, heads, kv_heads, intermediate):
    """``{name: (in, out)}`` of one Llama layer's linear maps."""
    head_dim = hidden // heads
    q, kv = heads * head_dim, kv_heads * head_dim
    return {
        "q_proj": (hidden, q),
        "k_proj": (hidden, kv),
        "v_proj": (hidden, kv),
        "o_proj": (q, hidden),
        "gate_proj": (hidden, intermediate),
        "up_proj": (hidden, intermediate),
        "down_proj": (intermediate, hidden),
    }


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
    linears = _layer_linears(hidden, heads, kv_heads, intermediate)
    return sum(i * o for i, o in linears.values())


def layer_lora_params(hidden, heads, kv_heads, intermediate, rank):
    """LoRA weights of one Llama layer (``LORA_TARGETS``, rank ``rank``):
    ``rank * (in + out)`` per adapted linear map.

    Arguments
    ---------
    hidden, heads, kv_heads, intermediate : int
        As in ``layer_linear_params``.
    rank : int
        LoRA rank (0: none).

    Returns
    -------
    int
        Multiply-adds per token of the LoRA branches.

    Example
    -------
    >>> layer_lora_params(8, 2, 1, 16, rank=2)  # 2 * (16+12+12+16+3*24)
    256
    """
    linears = _layer_linears(hidden, heads, kv_heads, intermediate)
    return rank * sum(sum(linears[name]) for name in LORA_TARGETS)


def count_flops(shape, n_plits, n_lal, n_text, mode, new_tokens=0, lora_rank=0):
    """FLOPs of one training step or one generation from the shapes.

    Counts matrix products only (2 FLOPs per multiply-add). Training:
    frozen linear maps cost forward + input gradient (2x), trainable maps
    forward + weight gradient (2x, the audio features need no gradient),
    LoRA branches forward + input and weight gradients (3x), attention
    forward + backward (3x). Logits only at the labelled text positions
    (all text tokens but the first). Generation: prefill with logits at
    the last position, then one token per step over the cache (LoRA
    branches unmerged). With LoRA, LAL's audio keys/values go through the
    adapted ``k_proj``/``v_proj`` too.

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
        Generated tokens (``generate``; 1 is the prefill alone).
    lora_rank : int
        LoRA rank on ``LORA_TARGETS`` (0: frozen LLM).

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
    >>> # LoRA (rank 2): 3 x (2 x 256 x 4 text tokens + 2 x 2 x 2 x (8 + 4)
    >>> # x 4 audio tokens through k_proj and v_proj)
    >>> count_flops(s, 0, 4, 4, "train", lora_rank=2) - count_flops(
    ...     s, 0, 4, 4, "train")
    7296.0
    """
    d, n_layers = shape["hidden"], shape["layers"]
    heads, kv = shape["heads"], shape["kv_heads"]
    head_dim = d // heads
    kv_dim = kv * head_dim
    batch, da, vocab = shape["batch"], shape["audio_dim"], shape["vocab"]
    per_token = 2 * layer_linear_params(d, heads, kv, shape["intermediate"])
    lora = 2 * layer_lora_params(d, heads, kv, shape["intermediate"], lora_rank)
    # LoRA on k_proj and v_proj of LAL's audio keys/values
    lora_kv = 2 * lora_rank * 2 * (d + kv_dim) if lora_rank else 0
    seq = n_plits + n_text  # tokens that go through the layers

    def attention(queries, keys):
        return 2 * 2 * heads * head_dim * queries * keys

    projector = 2 * da * d * n_plits  # PLITS input projector
    lal_maps = 2 * da * d * n_lal * n_layers if n_lal else 0
    lal_kv = 2 * 2 * d * kv_dim * n_lal * n_layers if n_lal else 0
    lal_lora = lora_kv * n_lal * n_layers
    if mode == "train":
        layers = n_layers * (
            2 * per_token * seq
            + 3 * lora * seq
            + 3 * attention(seq, n_lal + seq)
        )
        head = 2 * 2 * d * vocab * (n_text - 1)
        trainable = 2 * (projector + lal_maps)
        total = layers + head + trainable + 2 * lal_kv + 3 * lal_lora
        return float(batch * total)
    prefill = n_layers * (
        (per_token + lora) * seq + attention(seq, n_lal + seq)
    )
    prefill += 2 * d * vocab + projector + lal_maps + lal_kv + lal_lora
    decode = 0
    for step in range(1, new_tokens):
        keys = n_lal + seq + step
        decode += n_layers * (per_token + lora + attention(1, keys))
        decode += 2 * d * vocab
    return float(batch * (prefill + decode))


def pal_token_counts(n_audio, window_frames=17):
    """Tokens of each encoder under PAL, for the clip that gives PLITS and
    LAL ``n_audio`` tokens.

    As the PAL recipe builds them: PLITS and LAL run one window Q-Former
    (``window_frames`` frames per token) over the fused Whisper + BEATs
    features (``FusedEncoder``, BEATs padded to Whisper's frames), PAL one
    per encoder, Whisper's tokens through PLITS and BEATs' through LAL.
    The frame counts are those of the encoders: Whisper ``ceil(ceil(n /
    160) / 2)`` frames for ``n`` samples at 16 kHz
    (``WhisperEncoder.output_lengths``), BEATs 8 patches per 16 Kaldi
    filterbank frames, ``1 + (n - 400) // 160`` of them
    (``BEATsEncoder``); windows as ``WindowQFormer.num_windows``. The clip
    is ``n_audio * window_frames`` Whisper frames long.

    Arguments
    ---------
    n_audio : int
        Fused tokens (PLITS, LAL).
    window_frames : int
        Frames per Q-Former window (the toy yamls' 17, 1/3 s).

    Returns
    -------
    tuple of int
        ``(whisper_tokens, beats_tokens)``: PAL's PLITS and LAL tokens.

    Example
    -------
    >>> pal_token_counts(64), pal_token_counts(1024)
    ((64, 64), (1024, 1024))
    """
    samples = n_audio * window_frames * 320

    def ceil_div(a, b):
        return -(-a // b)

    def windows(frames):
        return 1 + ceil_div(max(frames - window_frames, 0), window_frames)

    whisper = ceil_div(ceil_div(samples, 160), 2)
    beats = 8 * ((1 + (samples - 400) // 160) // 16)
    fused = windows(max(whisper, beats))
    if fused != n_audio:
        raise AssertionError(f"{fused} fused tokens, expected {n_audio}")
    return windows(whisper), windows(beats)


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


def _add_lora(model):
    """LoRA (``LORA_RANK`` on ``LORA_TARGETS``, no dropout) injected into
    the frozen model in place, once; returns its ``CausalLM`` wrapper."""
    from audiollm_lobes.llm import CausalLM
    from audiollm_lobes.lora import LoRAAdapter

    llm = CausalLM.from_model(model, freeze=False)
    if not getattr(model, "peft_config", None):
        LoRAAdapter(
            llm,
            r=LORA_RANK,
            alpha=4 * LORA_RANK,
            dropout=0.0,
            target_modules=list(LORA_TARGETS),
        )
    return llm


def prepare(spec, model):
    """Builds the inputs and trainable modules of one configuration.

    Arguments
    ---------
    spec : dict
        ``shape, method, mode, n_audio, n_text, new_tokens, threads``;
        optional ``pal_tokens`` (PAL's ``(plits, lal)`` tokens, default
        ``pal_token_counts(n_audio)``), ``finetune`` (``"none"``, the
        default, or ``"lora"``: LoRA on the LLM, trained with the rest),
        ``plits_cache`` (``"reserved"``, the default: PLITS decodes over
        ``kv_cache.reserved_cache`` as ``CausalLM.generate`` and LAL do;
        ``"dynamic"``: over HF's default ``DynamicCache``), ``device``
        (default ``"cpu"``; the model's), ``autocast`` (a dtype name: run
        the steps under ``torch.autocast``) and ``optimizer`` (training
        steps also take an AdamW step).
    model : transformers.LlamaForCausalLM
        The frozen LLM (with ``finetune="lora"``, LoRA layers are injected
        into it in place, once).

    Returns
    -------
    step : callable
        ``step(new_tokens)`` runs one training step (forward + backward)
        or one greedy generation of ``new_tokens`` tokens.
    info : dict
        ``trainable`` (parameter count), ``flops`` (of one step with
        ``spec["new_tokens"]``) and, for generation, ``prefill_flops``
        (of a generation of one token).

    Example
    -------
    >>> shape = dict(hidden=8, layers=1, heads=2, kv_heads=1,
    ...              intermediate=16, vocab=10, batch=1, audio_dim=8)
    >>> spec = dict(shape=shape, method="pal", mode="train", n_audio=4,
    ...             n_text=3, new_tokens=2, threads=1, pal_tokens=(2, 2))
    >>> step, info = prepare(spec, build_model(shape))
    >>> step(2); info["trainable"]
    144
    >>> lora = dict(spec, finetune="lora")  # + 8 * 128 LoRA weights
    >>> step, info = prepare(lora, build_model(shape))
    >>> step(2); info["trainable"]
    1168
    """
    import torch
    import transformers

    from audiollm_lobes.injection import AttentionOnlyInjector
    from audiollm_lobes.kv_cache import cache_keyword, reserved_cache
    from audiollm_lobes.llm import CausalLM

    torch.set_num_threads(spec["threads"])
    shape = spec["shape"]
    method, mode = spec["method"], spec["mode"]
    finetune = spec.get("finetune", "none")
    device = torch.device(spec.get("device", "cpu"))
    batch, n_audio, n_text = shape["batch"], spec["n_audio"], spec["n_text"]
    if method == "pal":
        n_plits, n_lal = spec.get("pal_tokens") or pal_token_counts(n_audio)
    else:
        n_plits, n_lal = {"plits": (n_audio, 0), "lal": (0, n_audio)}[method]
    d, da = shape["hidden"], shape["audio_dim"]
    torch.manual_seed(1)
    audio = torch.randn(batch, n_plits + n_lal, da).to(device)
    ids = torch.randint(3, shape["vocab"], (batch, n_text)).to(device)
    embed = model.get_input_embeddings()
    with torch.no_grad():
        text = embed(ids)
    if finetune == "lora":
        llm = _add_lora(model)
    else:
        llm = CausalLM.from_model(model)
    projector = torch.nn.Linear(da, d).to(device) if n_plits else None
    injector = None
    if n_lal:
        injector = AttentionOnlyInjector(
            llm, da, lal_layers="all", llm_finetune=finetune
        )
        injector.to(device)
    plits_audio, lal_audio = audio[:, :n_plits], audio[:, n_plits:]
    lal_mask = torch.ones(batch, n_lal, dtype=torch.bool, device=device)
    labels = ids.clone()
    labels[:, 0] = -100
    trainables = list(
        {
            id(p): p
            for m in (projector, injector, llm)
            if m is not None
            for p in m.parameters()
            if p.requires_grad
        }.values()
    )
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
        for p in trainables:
            p.grad = None

    keyword = cache_keyword(model)

    def plits_cache(length):
        if spec.get("plits_cache", "reserved") == "dynamic":
            return transformers.DynamicCache(config=model.config)
        return reserved_cache(model.config, length)

    @torch.no_grad()
    def generate_step(new_tokens):
        embeds, mask, _ = inputs()
        if injector is not None:
            return injector.generate(
                lal_audio, lal_mask, embeds, mask, new_tokens, eos_ids=[]
            )
        cache = plits_cache(embeds.shape[1] + new_tokens)
        out = model(
            inputs_embeds=embeds,
            use_cache=True,
            logits_to_keep=1,
            **{keyword: cache},
        )
        tokens = [out.logits[:, -1].argmax(-1)]
        for _ in range(new_tokens - 1):
            out = model(
                input_ids=tokens[-1][:, None],
                use_cache=True,
                **{keyword: cache},
            )
            tokens.append(out.logits[:, -1].argmax(-1))
        return torch.stack(tokens, 1)

    trainable = sum(p.numel() for p in trainables)
    rank = LORA_RANK if finetune == "lora" else 0
    flops = count_flops(
        shape, n_plits, n_lal, n_text, mode, spec["new_tokens"], rank
    )
    info = {"trainable": trainable, "flops": flops}
    if mode == "generate":
        info["prefill_flops"] = count_flops(
            shape, n_plits, n_lal, n_text, mode, 1, rank
        )
    step = train_step if mode == "train" else generate_step
    if autocast:
        plain_step = step

        def step(new_tokens):
            dtype = getattr(torch, autocast)
            with torch.autocast(device.type, dtype=dtype):
                return plain_step(new_tokens)

    return step, info


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
    computes at a time. A generation round also times a generation of a
    single token (the prefill: the prompt over the audio, then its
    logits), right after the full one.

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
        step), ``peak_mb``, ``hwm_reset``, ``trainable``, ``flops``;
        for generation also ``prefill_times``, ``prefill`` (minimum) and
        ``prefill_flops``.

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
        prefill = [[] for _ in workers]
        for r in range(rounds + 1):
            order = list(range(len(workers)))
            order = order[r % len(order) :] + order[: r % len(order)]
            for i in order:
                spec, conn, _ = workers[i]
                conn.send(("step", new_tokens if r else 2))
                elapsed = _expect(conn, spec, "time")
                if r:  # round 0 is the warm-up
                    times[i].append(elapsed)
                if r and spec["mode"] == "generate":
                    conn.send(("step", 1))
                    prefill[i].append(_expect(conn, spec, "time"))
        results = []
        for (spec, conn, _), spec_times, first in zip(workers, times, prefill):
            conn.send(("stop", None))
            info = _expect(conn, spec, "done")
            info.update(times=spec_times, time=min(spec_times))
            if first:
                info.update(prefill_times=first, prefill=min(first))
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
        caches), ``hwm_reset``, ``trainable``, ``flops`` (generation:
        ``prefill_times``, ``prefill``, ``prefill_flops`` too).

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
        times, prefill = [], []
        for _ in range(rounds):
            for tokens, out in ((new_tokens, times), (1, prefill)):
                if tokens == 1 and spec["mode"] != "generate":
                    continue
                synchronize(device)
                start = time.perf_counter()
                step(tokens)
                synchronize(device)
                out.append(time.perf_counter() - start)
        info.update(
            times=times,
            time=min(times),
            peak_mb=peak_memory_mb(device),
            hwm_reset=True,
        )
        if prefill:
            info.update(prefill_times=prefill, prefill=min(prefill))
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
    parser.add_argument(
        "--llm-finetune",
        nargs="+",
        choices=["none", "lora"],
        default=["none", "lora"],
        help="settings to measure: frozen LLM, LoRA on the LLM (rank "
        f"{LORA_RANK} on {', '.join(LORA_TARGETS)})",
    )
    parser.add_argument(
        "--plits-cache",
        choices=["dynamic", "reserved"],
        default="reserved",
        help="PLITS decoding cache: the reserved one CausalLM.generate and "
        "LAL decode with, or HF's default DynamicCache",
    )
    parser.add_argument(
        "--window-frames",
        type=int,
        default=17,
        help="encoder frames per Q-Former token (PAL's tokens per encoder)",
    )
    args = parser.parse_args(argv)
    # frozen first: in-process runs add LoRA to the shared model once
    args.llm_finetune = [
        f for f in ("none", "lora") if f in set(args.llm_finetune)
    ]
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


def ceiling_rows(results, finetunes, modes, audios):
    """The summary table: for LAL and PAL against PLITS, the speed-up
    (PLITS time / X time), the FLOP ratio (PLITS FLOPs / X FLOPs, the
    ceiling of the speed-up were time proportional to FLOPs), their
    quotient (1: the FLOP advantage fully turned into time) and the
    memory ratio (X peak / PLITS peak).

    Arguments
    ---------
    results : dict
        ``{(finetune, mode, n_audio, method): result}``.
    finetunes, modes, audios : list
        What was measured.

    Returns
    -------
    list of str
        Header, rule and one line per (finetune, mode, audio).

    Example
    -------
    >>> r = {("none", "train", 64, m): {"time": t, "flops": f, "peak_mb": 1}
    ...      for m, t, f in (("plits", 4, 8), ("lal", 1, 2), ("pal", 2, 4))}
    >>> ceiling_rows(r, ["none"], ["train"], [64])[2].split()
    ['none', 'train', '64', '|', '4.00', '4.00', '1.00', '1.00', '|', \
'2.00', '2.00', '1.00', '1.00']
    """
    header = f"{'LLM':5s} {'mode':8s} {'audio':>5s} | " + " | ".join(
        f"{'PLITS/' + x + ' time':>15s} {'FLOPs':>6s} {'time/FLOPs':>10s} "
        f"{x + '/PLITS mem':>14s}"
        for x in ("LAL", "PAL")
    )
    lines = [header, "-" * len(header)]
    for finetune in finetunes:
        for mode in modes:
            for n_audio in audios:
                p, lal, pal = (
                    results[(finetune, mode, n_audio, m)] for m in METHODS
                )
                cells = []
                for x in (lal, pal):
                    speed = p["time"] / x["time"]
                    ceiling = p["flops"] / x["flops"]
                    cells.append(
                        f"{speed:15.2f} {ceiling:6.2f} "
                        f"{speed / ceiling:10.2f} "
                        f"{_fmt_ratio(x['peak_mb'], p['peak_mb']):>14s}"
                    )
                lines.append(
                    f"{finetune:5s} {mode:8s} {n_audio:5d} | "
                    + " | ".join(cells)
                )
    return lines


def generation_rows(results, finetunes, audios, new_tokens):
    """Generation split into its prefill (prompt over the audio, first
    logits: compute-bound, where LAL saves FLOPs) and its decoding steps
    (one token over the cache: reading every weight and the whole KV
    cache, the same bytes for all three methods).

    Arguments
    ---------
    results : dict
        ``{(finetune, "generate", n_audio, method): result}`` with
        ``prefill`` and ``prefill_flops``.
    finetunes, audios : list
        What was measured.
    new_tokens : int
        Tokens per timed generation.

    Returns
    -------
    list of str
        Header, rule and one line per (finetune, audio).

    Example
    -------
    >>> r = {("none", "generate", 64, m): {"time": t, "prefill": p,
    ...      "prefill_flops": f} for m, t, p, f in (
    ...      ("plits", 5.0, 4.0, 8), ("lal", 2.0, 1.0, 2),
    ...      ("pal", 3.0, 2.0, 4))}
    >>> generation_rows(r, ["none"], [64], 11)[2].split()[3:]
    ['4.00', '4.00', '1.00', '|', '100.0', '100.0', '100.0']
    """
    header = (
        f"{'LLM':5s} {'audio':>5s} | {'prefill PLITS/LAL':>17s} "
        f"{'FLOPs':>6s} {'time/FLOPs':>10s} | "
        f"{'ms per decoding step: PLITS':>27s} {'LAL':>6s} {'PAL':>6s}"
    )
    lines = [header, "-" * len(header)]
    for finetune in finetunes:
        for n_audio in audios:
            rows = [
                results[(finetune, "generate", n_audio, m)] for m in METHODS
            ]
            if any("prefill" not in r for r in rows):
                continue
            p, lal, _ = rows
            speed = p["prefill"] / lal["prefill"]
            ceiling = p["prefill_flops"] / lal["prefill_flops"]
            steps = [
                1000.0 * (r["time"] - r["prefill"]) / max(new_tokens - 1, 1)
                for r in rows
            ]
            lines.append(
                f"{finetune:5s} {n_audio:5d} | {speed:17.2f} "
                f"{ceiling:6.2f} {speed / ceiling:10.2f} | "
                f"{steps[0]:27.1f} {steps[1]:6.1f} {steps[2]:6.1f}"
            )
    return lines


def main(argv=None):
    """Runs every configuration in a subprocess and prints the tables.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv``).

    Returns
    -------
    dict
        ``{(finetune, mode, n_audio, method): result}``.

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
    pal_tokens = {
        n: pal_token_counts(n, args.window_frames) for n in args.audio
    }
    print(
        "PAL efficiency: random Llama "
        + ", ".join(f"{k}={v}" for k, v in shape.items())
        + f", text={args.text}, new_tokens={args.new_tokens}, "
        f"threads={args.threads}, rounds={args.repeats} (+1 warm-up), "
        f"PLITS decoding cache={args.plits_cache}"
        + (f", device={device}, dtype={dtype}" if on_cuda else ""),
        flush=True,
    )
    print(
        "audio tokens: PLITS and LAL one fused stream; PAL per encoder "
        "(Whisper -> PLITS, BEATs -> LAL): "
        + ", ".join(
            f"{n} -> {w} + {b}" for n, (w, b) in sorted(pal_tokens.items())
        ),
        flush=True,
    )
    # One thread in the parent: no OpenMP pool exists when the children are
    # forked (each child then sets its own thread count).
    torch.set_num_threads(1)
    _MODEL = build_model(shape, device=device, dtype=dtype)
    weights_mb = (
        torch.cuda.memory_allocated(device) / 2**20 if on_cuda else None
    )
    extra = {"plits_cache": args.plits_cache}
    if on_cuda:  # in this process, with an optimizer step, autocast
        extra.update(device=device, optimizer=True)
    if dtype != "float32":
        extra["autocast"] = dtype
    results = {}
    for finetune in args.llm_finetune:
        for mode in args.modes:
            for n_audio in args.audio:
                specs = [
                    {
                        "shape": shape,
                        "method": method,
                        "mode": mode,
                        "n_audio": n_audio,
                        "pal_tokens": pal_tokens[n_audio],
                        "n_text": args.text,
                        "new_tokens": args.new_tokens,
                        "threads": args.threads,
                        "finetune": finetune,
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
                    results[(finetune, mode, n_audio, method)] = res
                    runs = ", ".join(f"{t:.2f}" for t in res["times"])
                    peak = (
                        f"peak={res['peak_mb']:8.1f}MB "
                        f"(frozen weights {weights_mb:.1f}MB) "
                        if on_cuda
                        else f"peak=+{res['peak_mb']:7.1f}MB "
                    )
                    first = (
                        f"prefill={res['prefill']:.3f}s "
                        if "prefill" in res
                        else ""
                    )
                    print(
                        f"  LLM {finetune:4s} {mode:8s} audio={n_audio:5d} "
                        f"{method:5s} time={res['time']:8.3f}s (runs: "
                        f"{runs}) {first}"
                        + peak
                        + f"trainable={res['trainable']:,}",
                        flush=True,
                    )
    print()
    print(
        "\n".join(
            ceiling_rows(results, args.llm_finetune, args.modes, args.audio)
        )
    )
    if "generate" in args.modes:
        print()
        print(
            "\n".join(
                generation_rows(
                    results, args.llm_finetune, args.audio, args.new_tokens
                )
            )
        )
    if not all(r["hwm_reset"] for r in results.values()):
        print("note: /proc/self/clear_refs unavailable; peaks use ru_maxrss")
    return results


if __name__ == "__main__":
    main()
