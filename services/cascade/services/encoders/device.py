"""Where models run: CUDA in half precision when present, else CPU in fp32."""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["resolve_device"]


def resolve_device(requested: Literal["auto", "cpu", "cuda"]) -> tuple[torch.device, torch.dtype]:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.device("cuda"), dtype
    return torch.device("cpu"), torch.float32
