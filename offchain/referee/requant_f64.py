"""Requantization in float64 without a floor: the fast path of every kernel that requantizes.

``rq(acc, m, s) = clamp((acc * m + 2^(s-1)) >> s, -128, 127)`` equals
``u - 128`` where ``u = trunc(clamp((acc * m + 2^(s-1) + 128 * 2^s) * 2^-s, 0, 255))``:
adding 128 moves every value the clamp keeps to [0, 256), where truncation is the floor, so
one float -> uint8 conversion does floor and clamp together, and ``u XOR 0x80`` read as int8
is ``u - 128`` (flipping the top bit adds or subtracts 128 modulo 256). On two 2-core CPUs
measured here, int64 shifts and float64 floors cost 10-20x a conversion pass.

Exactness: ``acc * (m * 2^-s)`` is the integer ``acc * m`` scaled by a power of two, and
``offset = (b * m + 2^(s-1) + 128 * 2^s) * 2^-s`` likewise; float64 holds both, and their
sum, exactly while ``|acc * m| + |b * m| + 2^(s-1) + 2^(s+7) < 2^53`` (``fits``). Kernels
check that bound per op (or per channel) from the op's worst case and fall back to the
int64 path where it fails, so no input can make them inexact.

The 16-bit requantization (``bits=16``, protocol 5.0's ``rq16``) is the same with 2^15 in place
of 128: ``u = trunc(clamp((acc * m + 2^(s-1) + 2^15 * 2^s) * 2^-s, 0, 65535))`` converted to
int32, minus 2^15, is ``rq16``; exact while ``|acc * m| + |b * m| + 2^(s-1) + 2^(s+15) < 2^53``.
"""

import torch

FLOAT64_EXACT = 1 << 53


def fits(worst_acc: int, multiplier: int, shift: int, bits: int = 8) -> bool:
    """Whether |acc| <= worst_acc (bias included) keeps the float64 requantization to ``bits`` exact."""
    return worst_acc * multiplier + (1 << (shift - 1)) + (1 << (shift + bits - 1)) < FLOAT64_EXACT


def scale_offset(multiplier: torch.Tensor, shift: torch.Tensor, bias: torch.Tensor | None = None,
                 device: torch.device | None = None, bits: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel float64 (m * 2^-s, (b * m + 2^(s-1) + 2^(bits-1) * 2^s) * 2^-s), each exact."""
    m = multiplier.to(torch.float64)
    pow2 = torch.pow(2.0, -shift.to(torch.float64))  # exact powers of two (s <= 62)
    b = torch.zeros_like(m) if bias is None else bias.to(torch.float64)
    # b * m < 2^62 is exact only when the bound holds (fits); then every term is below 2^53.
    top = float(1 << (bits - 1))
    offset = (b * m + torch.pow(2.0, shift.to(torch.float64) - 1) + top * torch.pow(2.0, shift.to(torch.float64)))
    return (m * pow2).to(device), (offset * pow2).to(device)


def requant_(acc: torch.Tensor, scale, offset, relu: bool = False, bits: int = 8) -> torch.Tensor:
    """int8 (or int16) rq of a float64 tensor of exact integers, in place; scale/offset from
    scale_offset with the same ``bits``."""
    if bits == 16:
        v = acc.mul_(scale).add_(offset).clamp_(32768.0 if relu else 0.0, 65535.0)
        return v.to(torch.int32).sub_(1 << 15).to(torch.int16)
    v = acc.mul_(scale).add_(offset).clamp_(128.0 if relu else 0.0, 255.0)
    return v.to(torch.uint8).bitwise_xor_(0x80).view(torch.int8)


def requant_scalar_(acc: torch.Tensor, multiplier: int, shift: int, bits: int = 8) -> torch.Tensor:
    """requant_ with one (m, s) for the whole tensor (no bias)."""
    scale = multiplier * 2.0 ** -shift
    offset = (2.0 ** (shift - 1) + 2.0 ** (bits - 1) * 2.0 ** shift) * 2.0 ** -shift
    return requant_(acc, scale, offset, bits=bits)
