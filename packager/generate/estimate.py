"""``ninefit estimate`` of a generative bundle: the bounds of its model on the target
(:mod:`packager.estimate.price.generation`), how many samples per item fit the limit for the declared items, whether
the weights and the KV cache fit the GPU memory (one GPU, or split over every GPU of the target), and how far the
CPU run measured when packaging was from this CPU's own bandwidth bound."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from packager.estimate.price.generation import ModelShape, plan_generation, price_generation
from packager.estimate.price.hardware import get_target
from runtime.manifest import Manifest

#: The profile packaging writes beside the manifest (packager.generate.package.PROFILE_NAME).
PROFILE = "generate_profile.json"


def estimate_generation(bundle: str | Path, *, target: str, items: int, limit_s: float) -> dict[str, Any]:
    """The estimate as a dict: ``lines`` to print, and the figures (samples that fit, memory verdicts, the bound)."""
    bundle = Path(bundle)
    m = Manifest.load(bundle)
    g = m.generate
    if g is None:
        raise ValueError(f"{bundle} is not a generative bundle")
    shape = ModelShape.from_folder(bundle / g.folder)
    profile_path = bundle / PROFILE
    profile = json.loads(profile_path.read_text(encoding="utf-8")) if profile_path.is_file() else {}
    prompt = float(profile.get("prompt_tokens", {}).get("mean", 0.0)) or 256.0
    hw = get_target(target)
    plans = [plan_generation(shape, hw, items=items, limit_s=limit_s, samples=g.samples, prompt_tokens=prompt,
                             new_tokens=g.max_new_tokens, devices=n, together=g.batch_items)
             for n in sorted({1, hw.devices})]
    lines = [f"{g.name}: {items} items, {g.samples} samples of up to {g.max_new_tokens} new tokens each after a "
             f"{prompt:.0f}-token prompt (mean of the public prompts)"
             + (f", {g.batch_items} items decoded together" if g.batch_items > 1 else "")
             + f", limit {limit_s:,.0f}s on {hw.name}"]
    for plan in plans:
        lines += [f"  {line}" for line in plan.lines()]
    lines.append("  (physical bounds: a real engine reaches a share of them; vLLM on a GPU is unverified here)")
    local = _local_gap(shape, profile, prompt)
    if local:
        lines.append(local["line"])
    return {"lines": lines, "samples_fit": {p.price.devices: p.samples_fit for p in plans},
            "fits_memory": {p.price.devices: p.fits_memory for p in plans}, "local": local}


def _local_gap(shape: ModelShape, profile: dict[str, Any], prompt: float) -> dict[str, Any]:
    """The decode rate packaging measured here against this CPU's bandwidth bound for the model."""
    rates = profile.get("costs", {}).get("decode_tokens_per_s", {})
    if not rates:
        return {}
    batch, rate = max(((int(b), float(r)) for b, r in rates.items()), key=lambda br: br[1])
    local = get_target("local")
    bound = price_generation(shape, local).decode_tokens_per_s(batch, prompt)
    return {"batch": batch, "measured": rate, "bound": bound,
            "line": f"  measured when packaging ({profile.get('host', {}).get('cpu_model', 'this CPU')}): {rate:,.0f} "
                    f"decode tokens/s at batch {batch}; this CPU's bound ({local.bandwidth / 1e9:.0f} GB/s, "
                    f"estimated) is {bound:,.0f}: {rate / bound:.2%} of it (a tiny model on a CPU is bound by the "
                    "per-token overhead of the framework, not by memory)"}


__all__ = ["PROFILE", "estimate_generation"]
