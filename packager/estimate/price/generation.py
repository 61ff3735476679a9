"""Generation priced on a target: decode is bounded by memory bandwidth, prefill by compute.

Every decode step reads the weights once for the whole batch and, for each
sequence of the batch, its KV cache so far (``2 x layers x kv_heads x head_dim``
values per token); it also does ``2 x params`` FLOPs per sequence. A step
therefore takes at least ``max(bytes read / bandwidth, FLOPs / peak FLOP/s)``:
with few sequences the bytes dominate (the memory-bandwidth bound), with many
the FLOPs. Prefill is ``2 x params x prompt tokens`` FLOPs, compute-bound.
Across ``devices`` GPUs (tensor parallel) weights, cache, bandwidth and FLOP/s
split evenly (the communication is not priced: an optimistic bound).

These are physical bounds, not predictions: a real engine reaches a share of
them (vLLM on a large model often 50-80 % of the bandwidth bound; a small model
on a CPU far less, as ``benchmarks/generate.py`` measures). ``efficiency``
scales the bound to a plan.

T4 (and P100) have no bf16: a bf16 model runs there as fp16 (vLLM casts it) or
at the fp32 rate; :meth:`packager.estimate.price.hardware.Hardware.peak_flops`
prices bf16 without support at fp32 speed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from packager.estimate.price.hardware import Hardware
from runtime.errors import SpecError

#: Bytes per value of each dtype a config may name.
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}
#: Share of the GPU memory a plan may fill (the rest: activations, the engine's own buffers, fragmentation).
MEMORY_USE = 0.9
#: The most samples per item a plan tries.
MAX_SAMPLES = 4096


@dataclass(frozen=True)
class ModelShape:
    """What pricing needs of a causal LM: its weights' bytes and parameters, and its KV cache per token."""

    weights_bytes: int
    params: int
    layers: int
    kv_heads: int
    head_dim: int
    context: int
    dtype: str = "float32"

    @property
    def kv_bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * DTYPE_BYTES.get(self.dtype, 4)

    @classmethod
    def from_folder(cls, folder: str | Path) -> ModelShape:
        """Read a save_pretrained folder's config.json and weight files' sizes.

        Raises:
            SpecError: no config.json, or it lacks the layer, head and width counts (each named).
        """
        folder = Path(folder)
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SpecError(f"{folder / 'config.json'} cannot be read as JSON ({exc})") from exc

        def first(*keys: str) -> int:
            for k in keys:
                if isinstance(config.get(k), int):
                    return int(config[k])
            raise SpecError(f"{folder / 'config.json'} has none of {', '.join(keys)}")
        layers = first("num_hidden_layers", "n_layer")
        hidden = first("hidden_size", "n_embd", "d_model")
        heads = first("num_attention_heads", "n_head")
        kv_heads = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or hidden // heads)
        context = first("max_position_embeddings", "n_positions", "n_ctx")
        dtype = str(config.get("torch_dtype") or config.get("dtype") or "float32")
        weights = sum(p.stat().st_size for p in folder.glob("*.safetensors")) or sum(
            p.stat().st_size for p in folder.glob("*.bin"))
        if not weights:
            raise SpecError(f"{folder} has no .safetensors (or .bin) weights to size the model by")
        return cls(weights, weights // DTYPE_BYTES.get(dtype, 4), layers, kv_heads, head_dim, context, dtype)


@dataclass(frozen=True)
class GenerationPrice:
    """The bounds of one model's generation on one target, and the plan they allow."""

    target: str
    devices: int
    weights_bytes: float  # at the run's dtype
    kv_bytes_per_token: float
    bandwidth: float  # bytes/s, every device together
    flops: float  # FLOP/s at the run's precision, every device together
    params: int

    def step_s(self, batch: int, context_tokens: float) -> float:
        """The least seconds of one decode step for ``batch`` sequences of ``context_tokens`` tokens so far."""
        read = self.weights_bytes + batch * context_tokens * self.kv_bytes_per_token
        return max(read / self.bandwidth, 2.0 * self.params * batch / self.flops)

    def prefill_s(self, tokens: float) -> float:
        return 2.0 * self.params * tokens / self.flops

    def decode_tokens_per_s(self, batch: int, context_tokens: float) -> float:
        """The bound on decode tokens/s: ``batch`` tokens per step."""
        return batch / self.step_s(batch, context_tokens)

    def item_s(self, samples: int, prompt_tokens: float, new_tokens: int, together: int = 1) -> float:
        """The least seconds for one item: ``samples`` sequences of each of ``together`` items (``batch_items``)
        prefilled and decoded together, the batch's time over its items."""
        mean_context = prompt_tokens + new_tokens / 2
        batch = samples * together
        return (self.prefill_s(batch * prompt_tokens) + new_tokens * self.step_s(batch, mean_context)) / together


@dataclass(frozen=True)
class GenerationPlan:
    price: GenerationPrice
    items: int
    limit_s: float
    samples_fit: int  # samples per item the time allows at the bound (0: not one)
    memory_needed: float  # bytes per device at the samples asked
    memory_per_device: float
    fits_memory: bool
    samples_asked: int
    item_s_asked: float  # least seconds per item at the samples asked
    bf16_note: str
    together: int = 1  # items decoded together (batch_items)

    def lines(self) -> list[str]:
        p = self.price
        gib = 1024 ** 3
        out = [f"{p.target}: weights {p.weights_bytes / gib:.2f} GiB, KV cache {p.kv_bytes_per_token / 1024:.1f} KiB/token; "
               f"over {p.devices} device(s): {p.bandwidth / 1e9:,.0f} GB/s, {p.flops / 1e12:,.1f} TFLOP/s",
               f"bound: decode at most {p.decode_tokens_per_s(1, 0):,.0f} tokens/s for one sequence "
               f"({p.decode_tokens_per_s(self.samples_asked * self.together, 0):,.0f} at batch "
               f"{self.samples_asked * self.together}); one item of {self.samples_asked} samples takes "
               f"{self.item_s_asked:.2f}s at least" + (f" ({self.together} items together)" if self.together > 1 else ""),
               f"time: {self.items} items in {self.limit_s:,.0f}s -> {self.limit_s / max(1, self.items):.1f}s per item; "
               + (f"{self.samples_fit:,} or more samples per item fit at the bound" if self.samples_fit >= MAX_SAMPLES
                  else f"up to {self.samples_fit} samples per item fit at the bound" if self.samples_fit
                  else "not one sample per item fits at the bound"),
               f"memory: {self.memory_needed / gib:.2f} GiB per device needed at {self.samples_asked * self.together} "
               f"sequences of the full context, {self.memory_per_device * MEMORY_USE / gib:.1f} GiB usable: "
               + ("fits" if self.fits_memory else "DOES NOT FIT")]
        return out + ([self.bf16_note] if self.bf16_note else [])


def price_generation(shape: ModelShape, hw: Hardware, *, devices: int = 0, precision: str = "") -> GenerationPrice:
    """The bounds of ``shape`` on ``hw`` over ``devices`` devices (0: all of them), at ``precision`` (the model's
    own dtype if empty: fp32, fp16 or bf16)."""
    n = devices or hw.devices
    if not 1 <= n <= hw.devices:
        raise SpecError(f"devices {devices}: {hw.key} has {hw.devices}")
    prec = precision or {"float16": "fp16", "bfloat16": "bf16"}.get(shape.dtype, "fp32")
    size = DTYPE_BYTES[prec] / DTYPE_BYTES.get(shape.dtype, 4)
    return GenerationPrice(target=hw.key, devices=n, weights_bytes=shape.weights_bytes * size,
                           kv_bytes_per_token=shape.kv_bytes_per_token * size, bandwidth=hw.bandwidth * n,
                           flops=hw.peak_flops(prec) * n, params=shape.params)


def plan_generation(shape: ModelShape, hw: Hardware, *, items: int, limit_s: float, samples: int,
                    prompt_tokens: float, new_tokens: int, devices: int = 0, precision: str = "",
                    efficiency: float = 1.0, together: int = 1) -> GenerationPlan:
    """How many samples per item fit ``limit_s`` for ``items`` items (at ``efficiency`` x the bound, ``together``
    items decoded in one batch), and whether the weights and the KV cache of ``samples`` full-context sequences of
    each of them fit the devices' memory."""
    price = price_generation(shape, hw, devices=devices, precision=precision)
    per_item = limit_s / max(1, items)
    fit = 0
    for b in range(1, MAX_SAMPLES + 1):
        if price.item_s(b, prompt_tokens, new_tokens, together) / efficiency > per_item:
            break
        fit = b
    context = min(shape.context or prompt_tokens + new_tokens, prompt_tokens + new_tokens)
    need = (price.weights_bytes + samples * together * context * price.kv_bytes_per_token) / price.devices
    note = ""
    prec = precision or {"float16": "fp16", "bfloat16": "bf16"}.get(shape.dtype, "fp32")
    if prec == "bf16" and not hw.bf16:
        note = (f"{hw.key} has no bf16: a bf16 model runs there as fp16 (vLLM casts it; check its range) or at the "
                "fp32 rate; priced at the fp32 rate")
    return GenerationPlan(price=price, items=items, limit_s=limit_s, samples_fit=fit, memory_needed=need,
                          memory_per_device=hw.memory_bytes, fits_memory=need <= hw.memory_bytes * MEMORY_USE,
                          samples_asked=samples,
                          item_s_asked=price.item_s(samples, prompt_tokens, new_tokens, together) / efficiency,
                          bf16_note=note, together=together)


__all__ = ["DTYPE_BYTES", "MAX_SAMPLES", "MEMORY_USE", "GenerationPlan", "GenerationPrice", "ModelShape", "plan_generation",
           "price_generation"]
