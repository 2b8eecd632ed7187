"""Frozen audio encoders: Whisper (HF), BEATs (SpeechBrain) and their fusion.

Every encoder maps a batch of 16 kHz waveforms ``(batch, samples)`` with
SpeechBrain relative lengths to ``(feats, mask)``: features
``(batch, frames, dim)`` and a boolean mask ``(batch, frames)`` that is True
on valid frames. Features on padded frames are set to zero, and padding of
one utterance never changes the features of another.

``WhisperEncoder`` runs the HF Whisper encoder's own submodules (two
convolutions, the positional table, the layers, the final LayerNorm) on
only as many frames as the longest clip of the batch needs, with a padding
attention mask, instead of always paying for 30 s of input. Its log-mel
front end is computed in torch, batched, from the checkpoint's
``WhisperFeatureExtractor`` parameters and mel filters. Clips longer than
Whisper's window (30 s) are cut into consecutive windows, encoded in one
batched pass, and their features concatenated along time, as SALMONN
does. BEATs has no window (relative positions; tested on 75 s).

``BEATsEncoder`` wraps ``speechbrain.lobes.models.beats.BEATs`` and returns
the padding mask BEATs itself uses. ``FusedEncoder`` applies a LayerNorm per
stream, aligns streams in time and concatenates them along features.

Authors
 * audiollm-lobes developers, 2026
"""

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from audiollm_lobes.masks import lengths_to_mask


def _check_wav(wav, wav_lens, owner):
    """Validates a waveform batch and returns ``(wav, lengths in samples)``.

    Arguments
    ---------
    wav : torch.Tensor
        ``(batch, samples)``.
    wav_lens : torch.Tensor or None
        Relative lengths ``(batch,)`` in ``(0, 1]``; None means all 1.
    owner : str
        Name used in error messages.

    Returns
    -------
    tuple
        ``(wav, lengths)`` with ``lengths`` a long tensor of samples.
    """
    if not torch.is_tensor(wav) or wav.dim() != 2:
        shape = tuple(wav.shape) if torch.is_tensor(wav) else type(wav)
        raise ValueError(
            f"{owner}: wav must be a tensor of shape (batch, samples), "
            f"got {shape}"
        )
    if wav.shape[1] == 0:
        raise ValueError(f"{owner}: wav holds no samples")
    batch, samples = wav.shape
    if wav_lens is None:
        wav_lens = torch.ones(batch, device=wav.device)
    if not torch.is_tensor(wav_lens) or wav_lens.shape != (batch,):
        shape = tuple(wav_lens.shape) if torch.is_tensor(wav_lens) else None
        raise ValueError(
            f"{owner}: wav_lens must be relative lengths of shape ({batch},), "
            f"got {shape}"
        )
    if bool((wav_lens <= 0).any()) or bool((wav_lens > 1 + 1e-6).any()):
        raise ValueError(
            f"{owner}: wav_lens must be relative lengths in (0, 1], got "
            f"{wav_lens.tolist()}"
        )
    lengths = torch.round(wav_lens.float() * samples).long().clamp(1, samples)
    return wav, lengths.to(wav.device)


class WhisperEncoder(nn.Module):
    """The encoder of a HF Whisper checkpoint, without 30 s of padding.

    Loads ``WhisperModel.from_pretrained(source)`` (keeping only its
    encoder) and the checkpoint's ``WhisperFeatureExtractor``. Log-mel
    features are computed in torch with the extractor's mel filters and
    STFT parameters, exactly as the extractor does for a clip zero-padded
    to 30 s (per-utterance ``max - 8`` floor, ``(x + 4) / 4`` scaling).

    With ``crop=True`` the encoder runs on ``ceil(ceil(samples / hop) / 2)``
    frames of the longest clip only: the convolutions see the same log-mel
    frames (including those just past the clip) as in the 30 s version, the
    positional table is cropped to the frames used, and every layer gets an
    attention mask that hides each clip's padding. Hence a clip's features
    do not depend on what else is in the batch. With ``crop=False`` the
    input is padded to ``chunk_length`` seconds (30 s) and every frame
    attends to the padding, as in the original model.

    Long audio: a clip longer than ``window_samples`` (30 s) is cut into
    consecutive windows of that length (the last one shorter), each window
    is encoded as a clip of its own (all windows of the batch in one
    pass) and the valid frames of its windows are concatenated in order,
    so a 75 s clip gives 1500 + 1500 + 750 frames, exactly the features
    of encoding ``wav[0:30 s]``, ``wav[30:60 s]`` and ``wav[60:75 s]``
    separately and concatenating them (SALMONN's scheme). Windows do not
    see each other. The length is bounded only by memory; manifest
    validation bounds it with ``max_audio_seconds``.

    Arguments
    ---------
    source : str or Path
        A hub id or a local folder holding a Whisper checkpoint and its
        ``preprocessor_config.json``.
    freeze : bool
        Freeze the weights, keep the encoder in eval mode and run under
        ``torch.no_grad()``.
    crop : bool
        Run on the needed frames only (True) or on 30 s of input (False).
    output_layer : int, optional
        Which hidden state to return, indexed as HF's ``hidden_states``:
        ``0`` is the input of the first layer, ``k`` the output of layer
        ``k`` and the last one (default, None) the output of the final
        LayerNorm. Negative values count from the end. Layers after the
        chosen one are not run.
    local_files_only : bool, optional
        Passed to ``from_pretrained``; default True when ``source`` is an
        existing folder, else False.
    **kwargs
        Further keyword arguments for ``WhisperModel.from_pretrained``
        (e.g. ``dtype``, ``attn_implementation``).

    Example
    -------
    >>> import tempfile
    >>> from audiollm_lobes.toyworld.toy_whisper import make_toy_whisper
    >>> folder = make_toy_whisper(tempfile.mkdtemp(), d_model=32, layers=1)
    >>> encoder = WhisperEncoder(folder)
    >>> feats, mask = encoder(torch.randn(2, 16000), torch.tensor([1.0, 0.5]))
    >>> feats.shape, mask.sum(dim=1).tolist()
    (torch.Size([2, 50, 32]), [50, 25])
    >>> encoder.frame_rate, encoder.output_dim
    (50.0, 32)
    """

    def __init__(
        self,
        source,
        freeze=True,
        crop=True,
        output_layer=None,
        local_files_only=None,
        **kwargs,
    ):
        super().__init__()
        from transformers import WhisperFeatureExtractor, WhisperModel

        source = str(source)
        if local_files_only is None:
            local_files_only = Path(source).is_dir()
        if local_files_only and not Path(source).is_dir():
            raise FileNotFoundError(
                f"WhisperEncoder: source {source!r} is not a folder "
                "(local_files_only=True needs a local checkpoint folder)"
            )
        model = WhisperModel.from_pretrained(
            source, local_files_only=local_files_only, **kwargs
        )
        self.encoder = model.get_encoder()
        del model
        extractor = WhisperFeatureExtractor.from_pretrained(
            source, local_files_only=local_files_only
        )
        config = self.encoder.config
        if extractor.feature_size != config.num_mel_bins:
            raise ValueError(
                f"WhisperEncoder: {source}: the feature extractor makes "
                f"{extractor.feature_size} mel bins but the encoder expects "
                f"num_mel_bins={config.num_mel_bins}"
            )
        self.sample_rate = int(extractor.sampling_rate)
        self.n_fft = int(extractor.n_fft)
        self.hop_length = int(extractor.hop_length)
        self.n_samples = int(extractor.n_samples)
        self.register_buffer(
            "mel_filters",
            torch.as_tensor(extractor.mel_filters, dtype=torch.float32).T,
            persistent=False,
        )
        self.register_buffer(
            "window", torch.hann_window(self.n_fft), persistent=False
        )
        self.crop = crop
        self.freeze = freeze
        self.stride = (
            self.encoder.conv1.stride[0] * self.encoder.conv2.stride[0]
        )
        num_layers = len(self.encoder.layers)
        if output_layer is None:
            output_layer = num_layers
        if not -(num_layers + 1) <= output_layer <= num_layers:
            raise ValueError(
                f"WhisperEncoder: output_layer={output_layer} is out of range "
                f"for {num_layers} layers (expected -{num_layers + 1}.."
                f"{num_layers} or None)"
            )
        self.output_layer = output_layer % (num_layers + 1)
        if freeze:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    @property
    def frame_rate(self):
        """Output frames per second (50.0 for Whisper)."""
        return self.sample_rate / (self.hop_length * self.stride)

    @property
    def output_dim(self):
        """Feature size of the output (``d_model``)."""
        return self.encoder.config.d_model

    @property
    def max_frames(self):
        """Most output frames the positional table allows (1500)."""
        return self.encoder.embed_positions.num_embeddings

    @property
    def window_samples(self):
        """Longest clip encoded in one pass (480000 samples, 30 s).

        The smaller of the extractor's ``n_samples`` and the samples the
        positional table covers; longer clips are encoded window by window.
        """
        covered = self.max_frames * self.stride * self.hop_length
        return min(self.n_samples, covered)

    def train(self, mode=True):
        """Sets train mode, keeping a frozen encoder in eval mode.

        Arguments
        ---------
        mode : bool
            Train (True) or eval (False).

        Returns
        -------
        WhisperEncoder
            ``self``.
        """
        super().train(mode)
        if self.freeze:
            self.encoder.eval()
        return self

    def output_lengths(self, lengths):
        """Numbers of valid output frames for clips of ``lengths`` samples.

        A clip of ``n`` samples has ``ceil(n / hop)`` log-mel frames and
        ``ceil(mel_frames / stride)`` encoder frames.

        Arguments
        ---------
        lengths : torch.Tensor
            Lengths in samples ``(batch,)``.

        Returns
        -------
        tuple of torch.Tensor
            ``(mel_frames, encoder_frames)``, each ``(batch,)`` long.
        """
        mel = torch.div(
            lengths + self.hop_length - 1,
            self.hop_length,
            rounding_mode="floor",
        )
        enc = torch.div(
            mel + self.stride - 1, self.stride, rounding_mode="floor"
        )
        return mel, enc

    def log_mel(self, wav, lengths, num_frames):
        """Whisper log-mel features of zero-padded clips, batched in torch.

        Samples past each clip's length are set to zero first, so the
        result equals the feature extractor's output for the clip padded
        with zeros, whatever the batch holds.

        Arguments
        ---------
        wav : torch.Tensor
            Waveforms ``(batch, samples)``.
        lengths : torch.Tensor
            Clip lengths in samples ``(batch,)``.
        num_frames : int
            Number of log-mel frames to return. Frames past the end of the
            signal are computed on zeros.

        Returns
        -------
        torch.Tensor
            Log-mel features ``(batch, n_mels, num_frames)`` (float32).

        Example
        -------
        >>> import tempfile
        >>> from audiollm_lobes.toyworld.toy_whisper import make_toy_whisper
        >>> enc = WhisperEncoder(make_toy_whisper(tempfile.mkdtemp(),
        ...                                       d_model=32, layers=1))
        >>> enc.log_mel(torch.randn(1, 800), torch.tensor([800]), 7).shape
        torch.Size([1, 80, 7])
        """
        wav = wav.float()
        valid = lengths_to_mask(lengths, wav.shape[1])
        wav = wav * valid
        # Enough zeros that every returned frame, and every frame that
        # touches the audio, is computed on zeros rather than reflections.
        total = max(wav.shape[1], num_frames * self.hop_length) + self.n_fft
        wav = F.pad(wav, (0, total - wav.shape[1]))
        stft = torch.stft(
            wav,
            self.n_fft,
            self.hop_length,
            window=self.window,
            center=True,
            return_complex=True,
        )
        power = torch.view_as_real(stft).pow(2).sum(-1)
        mel = torch.matmul(self.mel_filters, power)
        log_spec = torch.clamp(mel, min=1e-10).log10()
        # The floor uses every frame that touches the clip (and zeros),
        # as the extractor's max over a 30 s zero-padded input does.
        chunk_frames = self.n_samples // self.hop_length
        peak = log_spec[:, :, :chunk_frames].amax(dim=(1, 2), keepdim=True)
        log_spec = torch.maximum(log_spec, peak - 8.0)
        log_spec = (log_spec + 4.0) / 4.0
        return log_spec[:, :, :num_frames]

    def forward(self, wav, wav_lens=None):
        """Encodes a batch of 16 kHz waveforms.

        Arguments
        ---------
        wav : torch.Tensor
            Waveforms ``(batch, samples)``.
        wav_lens : torch.Tensor, optional
            SpeechBrain relative lengths ``(batch,)``; default all 1.

        Returns
        -------
        feats : torch.Tensor
            ``(batch, frames, output_dim)``, zero on padded frames; clips
            longer than ``window_samples`` are encoded window by window
            and their frames concatenated.
        mask : torch.Tensor
            ``(batch, frames)`` bool, True on valid frames.
        """
        wav, lengths = _check_wav(wav, wav_lens, "WhisperEncoder")
        if self.freeze:
            with torch.no_grad():
                return self._encode(wav, lengths)
        return self._encode(wav, lengths)

    def _encode(self, wav, lengths):
        """Encodes clips of any length (windows past ``window_samples``)."""
        window = self.window_samples
        if int(lengths.max()) <= window:
            return self._encode_window(wav, lengths)
        # Cut every clip into consecutive windows; all windows of the batch
        # form one batch of clips (each <= window), encoded in one pass.
        batch = wav.shape[0]
        n_windows = int(lengths.max() + window - 1) // window
        wav = F.pad(wav, (0, n_windows * window - wav.shape[1]))
        starts = torch.arange(n_windows, device=wav.device) * window
        win_lens = (lengths[:, None] - starts[None, :]).clamp(0, window)
        used = win_lens > 0  # (batch, n_windows)
        rows = wav.reshape(batch, n_windows, window)[used]
        feats, mask = self._encode_window(rows, win_lens[used])
        # Concatenate each clip's windows along time: the valid frames of
        # window w of a clip start after those of its windows 0..w-1.
        _, win_frames = self.output_lengths(win_lens)  # 0 for unused
        offsets = (win_frames.cumsum(dim=1) - win_frames)[used]
        clip_of_row = torch.arange(batch, device=wav.device)
        clip_of_row = clip_of_row[:, None].expand(-1, n_windows)[used]
        total = win_frames.sum(dim=1)
        out = feats.new_zeros(batch, int(total.max()), feats.shape[-1])
        frame = torch.arange(mask.shape[1], device=wav.device)
        row, col = mask.nonzero(as_tuple=True)
        out[clip_of_row[row], offsets[row] + frame[col]] = feats[row, col]
        return out, lengths_to_mask(total, out.shape[1])

    def _encode_window(self, wav, lengths):
        """Encodes clips of at most ``window_samples`` samples."""
        _, out_lens = self.output_lengths(lengths)
        if self.crop:
            frames = int(out_lens.max())
            # Output frame j reads log-mel frames up to stride * j + 2.
            mel = self.log_mel(wav, lengths, self.stride * frames + 2)
        else:
            frames = self.max_frames
            mel = self.log_mel(wav, lengths, self.n_samples // self.hop_length)
        mask = lengths_to_mask(out_lens, frames)
        enc = self.encoder
        mel = mel.to(enc.conv1.weight.dtype)
        hidden = F.gelu(enc.conv1(mel))
        hidden = F.gelu(enc.conv2(hidden))
        hidden = hidden.transpose(1, 2)[:, :frames]
        hidden = hidden + enc.embed_positions.weight[:frames]
        hidden = F.dropout(hidden, p=enc.dropout, training=enc.training)
        if self.crop:
            attn_mask = torch.zeros(
                mask.shape[0],
                1,
                1,
                frames,
                dtype=hidden.dtype,
                device=hidden.device,
            )
            attn_mask = attn_mask.masked_fill(
                ~mask[:, None, None, :], torch.finfo(hidden.dtype).min
            )
        else:
            attn_mask = None
        num_layers = len(enc.layers)
        for layer in enc.layers[: self.output_layer]:
            if enc.training and enc.layerdrop > 0.0:
                if float(torch.rand([])) < enc.layerdrop:
                    continue
            hidden = layer(hidden, attn_mask)
        if self.output_layer == num_layers:
            hidden = enc.layer_norm(hidden)
        hidden = hidden * mask.unsqueeze(-1).to(hidden.dtype)
        return hidden, mask


class BEATsEncoder(nn.Module):
    """SpeechBrain's BEATs, returning features and their padding mask.

    BEATs cuts its 128-bin filterbank into 16 x 16 patches, so each
    160 ms of audio gives 8 frequency patches; the tokens are flattened
    time-major (all 8 patches of a time block, then the next block), i.e.
    50 tokens per second. A time block of patches is valid only if all its
    filterbank frames lie inside the clip (SpeechBrain's batched
    ``extract_features`` keeps a partly padded last block, whose padding
    then changes the clip's other tokens), so every clip of a padded batch
    gets exactly the features it gets alone.

    Arguments
    ---------
    ckp_path : str or Path
        A checkpoint file ``{"cfg": dict, "model": state_dict}``.
    freeze : bool
        Freeze the weights, keep eval mode, run under ``torch.no_grad()``.
    fbank_mean : float
        Filterbank normalisation mean (BEATs' default).
    fbank_std : float
        Filterbank normalisation std (BEATs' default).

    Example
    -------
    >>> import tempfile, os
    >>> from audiollm_lobes.toyworld.toy_beats import make_toy_beats
    >>> path = make_toy_beats(os.path.join(tempfile.mkdtemp(), "b.pt"),
    ...                       embed_dim=32, encoder_embed_dim=32, layers=1)
    >>> encoder = BEATsEncoder(path)
    >>> feats, mask = encoder(torch.randn(2, 16000), torch.tensor([1.0, 0.5]))
    >>> feats.shape, mask.sum(dim=1).tolist()
    (torch.Size([2, 48, 32]), [48, 24])
    """

    def __init__(
        self, ckp_path, freeze=True, fbank_mean=15.41663, fbank_std=6.55582
    ):
        super().__init__()
        from speechbrain.lobes.models.beats import BEATs

        ckp_path = Path(ckp_path)
        if not ckp_path.is_file():
            raise FileNotFoundError(
                f"BEATsEncoder: checkpoint file {str(ckp_path)!r} not found "
                "(expected a torch.save'd {'cfg': ..., 'model': ...} file)"
            )
        self.model = BEATs(ckp_path=str(ckp_path), freeze=freeze)
        self.freeze = freeze
        self.fbank_mean = fbank_mean
        self.fbank_std = fbank_std
        if freeze:
            self.model.requires_grad_(False)
            self.model.eval()

    @property
    def frame_rate(self):
        """Tokens per second (50.0: 8 patches per 16 frames of 10 ms)."""
        patch = self.model.cfg.input_patch_size
        return (128 // patch) * 100.0 / patch

    @property
    def output_dim(self):
        """Feature size of the output (``encoder_embed_dim``)."""
        return self.model.cfg.encoder_embed_dim

    def train(self, mode=True):
        """Sets train mode, keeping a frozen BEATs in eval mode.

        Arguments
        ---------
        mode : bool
            Train (True) or eval (False).

        Returns
        -------
        BEATsEncoder
            ``self``.
        """
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    def forward(self, wav, wav_lens=None):
        """Encodes a batch of 16 kHz waveforms.

        Arguments
        ---------
        wav : torch.Tensor
            Waveforms ``(batch, samples)``.
        wav_lens : torch.Tensor, optional
            SpeechBrain relative lengths ``(batch,)``; default all 1.

        Returns
        -------
        feats : torch.Tensor
            ``(batch, tokens, output_dim)``, zero on padded tokens.
        mask : torch.Tensor
            ``(batch, tokens)`` bool, True on valid tokens.
        """
        wav, _ = _check_wav(wav, wav_lens, "BEATsEncoder")
        patch = self.model.cfg.input_patch_size
        min_samples = 400 + 160 * (patch - 1)
        if wav.shape[1] < min_samples:
            raise ValueError(
                f"BEATsEncoder: wav has {wav.shape[1]} samples; BEATs needs "
                f"at least {min_samples} ({patch} filterbank frames)"
            )
        if wav_lens is None:
            wav_lens = torch.ones(wav.shape[0], device=wav.device)
        wav_lens = wav_lens.float()
        if self.freeze:
            with torch.no_grad():
                feats, mask = self._encode(wav.float(), wav_lens)
        else:
            feats, mask = self._encode(wav.float(), wav_lens)
        feats = feats * mask.unsqueeze(-1).to(feats.dtype)
        return feats, mask

    def _encode(self, wav, wav_lens):
        """BEATs' ``extract_features`` with a padding mask per whole patch.

        SpeechBrain's BEATs marks a token as padding only when *all* its
        samples are padding, so the last, partly padded patch of a clip in
        a padded batch stays a valid token (holding filterbank frames of
        the padding) and, through the positional convolution and the
        attention, changes every token of the clip: a clip's features then
        depend on the batch it was encoded in. Here a time block of patches
        is valid only if all its filterbank frames lie inside the clip,
        exactly the blocks the clip gives when encoded alone, so the
        features of a clip do not depend on its batch.
        """
        model = self.model
        fbank = model.preprocess(wav, self.fbank_mean, self.fbank_std)
        samples = torch.round(wav_lens * wav.shape[1]).long()
        # Kaldi fbank frames with snip_edges: 25 ms windows every 10 ms.
        n_fbank = torch.clamp(
            1 + (samples - 400).div(160, rounding_mode="floor"), min=0
        )
        patch = model.cfg.input_patch_size
        features = model.patch_embedding(fbank.unsqueeze(1))
        batch, channels, n_blocks, n_freq = features.shape
        # time-major: the n_freq patches of one time block are consecutive
        features = features.reshape(batch, channels, -1).transpose(1, 2)
        features = model.layer_norm(features)
        blocks = torch.arange(n_blocks, device=wav.device)
        valid = blocks[None, :] < (n_fbank // patch)[:, None]
        valid = valid.repeat_interleave(n_freq, dim=1)
        if model.post_extract_proj is not None:
            features = model.post_extract_proj(features)
        features = model.dropout_input(features)
        x, _ = model.encoder(features, padding_mask=~valid)
        return x, valid


class FusedEncoder(nn.Module):
    """Several encoders, each LayerNorm-ed, aligned in time and concatenated.

    Each stream gets its own trainable ``LayerNorm`` (the encoders stay as
    they are, frozen or not), its padded frames are zeroed, and then:

    * ``align="pad"``: shorter streams are zero-padded at the end to the
      longest one (as SALMONN pads BEATs to Whisper's length);
    * ``align="resample"``: every stream is linearly interpolated in time
      to the first encoder's frame count; its mask is resampled by nearest
      neighbour. Near the end of a clip interpolation mixes the last
      valid frames with zeros.

    A fused frame is valid when it is valid in *any* stream after
    alignment (streams shorter than others contribute zeros there), so no
    stream's information is dropped.

    Arguments
    ---------
    encoders : dict
        ``name -> encoder``; each encoder maps ``(wav, wav_lens)`` to
        ``(feats, mask)`` and has ``output_dim`` and ``frame_rate``.
        The first one sets the frame rate (and, for ``"resample"``, the
        frame count).
    align : str
        ``"pad"`` or ``"resample"``.

    Example
    -------
    >>> class Toy(nn.Module):
    ...     def __init__(self, dim, hop):
    ...         super().__init__()
    ...         self.output_dim, self.frame_rate, self.hop = dim, 50.0, hop
    ...     def forward(self, wav, wav_lens):
    ...         n = wav.shape[1] // self.hop
    ...         lens = torch.round(wav_lens * n).long()
    ...         mask = torch.arange(n)[None] < lens[:, None]
    ...         return torch.randn(wav.shape[0], n, self.output_dim), mask
    >>> fused = FusedEncoder({"a": Toy(4, 320), "b": Toy(3, 400)})
    >>> feats, mask = fused(torch.randn(2, 3200), torch.tensor([1.0, 0.5]))
    >>> feats.shape, mask.sum(dim=1).tolist(), fused.output_dim
    (torch.Size([2, 10, 7]), [10, 5], 7)
    """

    def __init__(self, encoders, align="pad"):
        super().__init__()
        if not encoders:
            raise ValueError("FusedEncoder: encoders must name at least one")
        if align not in ("pad", "resample"):
            raise ValueError(
                f"FusedEncoder: align must be 'pad' or 'resample', got "
                f"{align!r}"
            )
        for name, enc in encoders.items():
            if "." in name or not name:
                raise ValueError(
                    f"FusedEncoder: encoder name {name!r} must be non-empty "
                    "and hold no '.'"
                )
            for attr in ("output_dim", "frame_rate"):
                if not hasattr(enc, attr):
                    raise ValueError(
                        f"FusedEncoder: encoder {name!r} has no {attr!r}"
                    )
        self.encoders = nn.ModuleDict(encoders)
        self.norms = nn.ModuleDict(
            {
                name: nn.LayerNorm(enc.output_dim)
                for name, enc in encoders.items()
            }
        )
        self.align = align
        rates = {name: float(enc.frame_rate) for name, enc in encoders.items()}
        if align == "pad" and len(set(rates.values())) > 1:
            warnings.warn(
                f"FusedEncoder: align='pad' with different frame rates "
                f"{rates}; consider align='resample'"
            )

    @property
    def output_dim(self):
        """Sum of the streams' feature sizes."""
        return sum(enc.output_dim for enc in self.encoders.values())

    @property
    def frame_rate(self):
        """Frame rate of the fused output (the first encoder's)."""
        return float(next(iter(self.encoders.values())).frame_rate)

    @property
    def stream_dims(self):
        """``name -> output_dim`` of each stream, in concatenation order."""
        return {name: enc.output_dim for name, enc in self.encoders.items()}

    def forward(self, wav, wav_lens=None, return_streams=False):
        """Runs every encoder and fuses their outputs.

        Arguments
        ---------
        wav : torch.Tensor
            Waveforms ``(batch, samples)``.
        wav_lens : torch.Tensor, optional
            SpeechBrain relative lengths ``(batch,)``; default all 1.
        return_streams : bool
            Also return each stream after its LayerNorm (before alignment).

        Returns
        -------
        feats : torch.Tensor
            ``(batch, frames, output_dim)``, zero on invalid frames.
        mask : torch.Tensor
            ``(batch, frames)`` bool.
        streams : dict
            Only with ``return_streams``: ``name -> (feats, mask)`` with
            feats ``(batch, frames_s, dim_s)`` normalised and zero on the
            stream's padding.
        """
        if wav_lens is None:
            wav_lens = torch.ones(wav.shape[0], device=wav.device)
        streams = {}
        for name, enc in self.encoders.items():
            feats, mask = enc(wav, wav_lens)
            feats = self.norms[name](feats)
            feats = feats * mask.unsqueeze(-1).to(feats.dtype)
            streams[name] = (feats, mask)
        fused, mask = self.fuse(streams)
        if return_streams:
            return fused, mask, streams
        return fused, mask

    def fuse(self, streams):
        """Aligns and concatenates already-normalised streams.

        Arguments
        ---------
        streams : dict
            ``name -> (feats (batch, frames_s, dim_s), mask (batch,
            frames_s))`` in concatenation order.

        Returns
        -------
        tuple
            ``(feats (batch, frames, sum_dim), mask (batch, frames))``.
        """
        return align_streams(streams, self.align)


def align_streams(streams, align="pad"):
    """Aligns feature streams in time and concatenates them.

    Arguments
    ---------
    streams : dict
        ``name -> (feats (batch, frames_s, dim_s), mask (batch, frames_s))``
        in concatenation order; feats should be zero on invalid frames.
    align : str
        ``"pad"``: zero-pad every stream to the longest; ``"resample"``:
        interpolate every stream linearly to the first one's frame count
        (masks by nearest neighbour).

    Returns
    -------
    feats : torch.Tensor
        ``(batch, frames, sum_dim)``.
    mask : torch.Tensor
        ``(batch, frames)`` bool: valid where any stream is valid.

    Example
    -------
    >>> a = (torch.ones(1, 3, 2), torch.tensor([[True, True, True]]))
    >>> b = (torch.ones(1, 2, 1), torch.tensor([[True, True]]))
    >>> feats, mask = align_streams({"a": a, "b": b})
    >>> feats[0].tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]
    >>> mask.tolist()
    [[True, True, True]]
    """
    if align not in ("pad", "resample"):
        raise ValueError(
            f"align_streams: align must be 'pad' or 'resample', got {align!r}"
        )
    items = list(streams.values())
    if align == "pad":
        frames = max(feats.shape[1] for feats, _ in items)
    else:
        frames = items[0][0].shape[1]
    out_feats, out_mask = [], None
    for feats, mask in items:
        length = feats.shape[1]
        if length != frames and align == "pad":
            feats = F.pad(feats, (0, 0, 0, frames - length))
            mask = F.pad(mask, (0, frames - length), value=False)
        elif length != frames:
            feats = F.interpolate(
                feats.transpose(1, 2),
                size=frames,
                mode="linear",
                align_corners=False,
            ).transpose(1, 2)
            mask = (
                F.interpolate(
                    mask[:, None].float(), size=frames, mode="nearest"
                )[:, 0]
                > 0.5
            )
            feats = feats * mask.unsqueeze(-1).to(feats.dtype)
        out_feats.append(feats)
        out_mask = mask if out_mask is None else out_mask | mask
    return torch.cat(out_feats, dim=-1), out_mask
