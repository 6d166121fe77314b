"""Gas of the one-step verifiers (contracts/verifiers/, docs/protocol.md 10.9) at real sizes.

Each verifier's ``step`` (IVerifier; called directly, without a game) is sent as a
transaction (``transact`` of the view function) on a fresh anvil (ape-foundry, Prague rules:
EIP-7623's calldata floor of 10 gas per zero byte and 40 per non-zero byte applies) with a
witness built by tests/verifier_witness.py from the independent reference, and its ``gas_used`` is reported next to the transaction's calldata
floor. The element is also checked against the reference. Sizes:

* MiniLM (all-MiniLM-L6-v2's shapes): width 384, FFN 1536, 12 heads of 32, 128 tokens, a
  30522-id int16 token table; softmax rows of 12 x 128;
* models/moby-llama (config.json): width 128, 4 query heads and 2 key/value heads of 32,
  SwiGLU 352, 128 positions, 256 byte ids;
* softmax rows of 512 keys, and argmax over one 8192-id int32 chunk of a 32000-id head
  (``pair`` and ``carry``: the middle chunks of 5.14's split head).

Target: every one step <= 1.5M gas. Run: ``python benchmarks/verifier_gas.py [--quick]``
(``--quick`` skips the MiniLM embedding, whose 30522-row table takes a minute to commit).
"""

import argparse
import math
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests")]

from ape import accounts, project  # noqa: E402

import verifier_witness as vw  # noqa: E402
from referee.agents.localchain import local_chain  # noqa: E402

TARGET = 1_500_000
I8, I32, I16 = 0, 1, 2


def exp_table():
    return [round(2**23 * math.exp(-d / 16)) for d in range(256)]


def rope_table(T, D):
    half = D // 2
    theta = [10000 ** (-2 * i / D) for i in range(half)]
    return [[round(2**14 * math.cos(t * th)) for th in theta] + [round(2**14 * math.sin(t * th)) for th in theta]
            for t in range(T)]


def cases(rng, quick):
    """(label, sizes, case, row, column): one step per row of the table."""
    t = lambda rows, cols, dtype=I8: vw.tensor(rng, rows, cols, dtype)  # noqa: E731
    base = {"input_a": 0, "input_b": 0}
    out = []

    def add(label, sizes, op, inputs, row, column):
        out.append((label, sizes, vw.make_case(label, {**base, **op}, inputs), row, column))

    # MiniLM: d = 384, FFN 1536, H = 12, d_h = 32, T = 128.
    d, ffn, H, dh, T = 384, 1536, 12, 32, 128
    add("MiniLM Q·Kᵀ", "matmul A, B [128, 384] int8, H 12, K 32",
        {"kind": 2, "flags": 0, "input_b": 1, "in_cols": d, "out_cols": H * T, "heads": H, "seq": T,
         "multiplier": 1 << 20, "shift": 30}, [(I8, t(T, d)), (I8, t(T, d))], T - 1, H * T - 1)
    add("MiniLM softmax", "softmax [128, 12·128] int8 → int16",
        {"kind": 6, "flags": 128, "in_cols": H * T, "out_cols": H * T, "heads": H, "seq": T,
         "exp_table": exp_table()}, [(I8, t(T, H * T))], T - 1, H * T - 1)
    add("MiniLM Vᵀ", "transpose [128, 384] int8, H 12 → [32, 1536]",
        {"kind": 3, "flags": 0, "in_cols": d, "out_cols": H * T, "heads": H}, [(I8, t(T, d))], dh - 1, H * T - 1)
    add("MiniLM P·V", "matmul A [128, 1536] int16, B [32, 1536] int8, K 128",
        {"kind": 2, "flags": 0, "input_b": 1, "in_cols": H * T, "out_cols": H * dh, "heads": H, "seq": T,
         "multiplier": 1 << 10, "shift": 30}, [(I16, t(T, H * T, I16)), (I8, t(dh, H * T))], T - 1, H * dh - 1)
    add("MiniLM residual", "add [128, 384] int16 + int16 → int16",
        {"kind": 4, "flags": 128, "input_b": 1, "in_cols": d, "out_cols": d, "multiplier_a": 1 << 20,
         "multiplier_b": 1 << 20, "shift": 21}, [(I16, t(T, d, I16)), (I16, t(T, d, I16))], T - 1, d - 1)
    add("MiniLM GELU", "lut [128, 1536] int8 → int16",
        {"kind": 5, "flags": 128, "in_cols": ffn, "out_cols": ffn, "table": t(1, 256, I16)[0]},
        [(I8, t(T, ffn))], T - 1, ffn - 1)
    gamma = [rng.randint(-(2**14), 2**14) for _ in range(d)]
    add("MiniLM LayerNorm", "norm [128, 384] int16 → int16",
        {"kind": 7, "flags": 128, "in_cols": d, "out_cols": d, "multiplier": 1 << 10, "shift": 20,
         "gamma": gamma, "beta": [rng.randint(-(2**20), 2**20) for _ in range(d)]},
        [(I16, t(T, d, I16))], T - 1, d - 1)
    if not quick:
        pool = [t(1, d, I16)[0] for _ in range(16)]
        add("MiniLM embed", "embed 30522 × 384 int16 tables, 128 ids",
            {"kind": 8, "flags": 128, "in_cols": T, "out_cols": d,
             "token_table": [pool[i % 16] for i in range(30522)], "position_table": t(T, d, I16),
             "multiplier_a": 1 << 20, "multiplier_b": 1 << 20, "shift": 21},
            [(I32, [[rng.randrange(30522) for _ in range(T)]])], T - 1, d - 1)
    # moby-llama: d = 128, H = 4, H_b = 2, d_h = 32, ffn 352, T = 128, V = 256.
    d, H, Hb, dh, ffn, T, V = 128, 4, 2, 32, 352, 128, 256
    add("Llama embed", "embed 256 × 128 int16 tables (zero positions)",
        {"kind": 8, "flags": 128, "in_cols": T, "out_cols": d, "token_table": t(V, d, I16),
         "position_table": [[0] * d for _ in range(T)], "multiplier_a": 1, "multiplier_b": 1, "shift": 1},
        [(I32, [[rng.randrange(V) for _ in range(T)]])], T - 1, d - 1)
    add("Llama RMSNorm", "norm rms [128, 128] int16 → int16",
        {"kind": 7, "flags": 129, "in_cols": d, "out_cols": d, "multiplier": 1 << 10, "shift": 20,
         "gamma": gamma[:d], "beta": [0] * d}, [(I16, t(T, d, I16))], T - 1, d - 1)
    add("Llama rope Q", "rope [128, 128] int8, H 4, D 32",
        {"kind": 10, "flags": 0, "in_cols": d, "out_cols": d, "heads": H, "multiplier": 1, "shift": 14,
         "table": rope_table(T, dh)}, [(I8, t(T, d))], T - 1, d - 1)
    add("Llama Q·Kᵀ", "matmul grouped causal [128, 128]·[128, 64], H 4, H_b 2, K 32",
        {"kind": 2, "flags": 3, "input_b": 1, "in_cols": d, "out_cols": H * T, "heads": H, "seq": T,
         "multiplier": 1 << 20, "shift": 30, "kv_heads": Hb}, [(I8, t(T, d)), (I8, t(T, Hb * dh))], T - 1, H * T - 1)
    add("Llama softmax", "softmax causal [128, 4·128] int8 → int16",
        {"kind": 6, "flags": 129, "in_cols": H * T, "out_cols": H * T, "heads": H, "seq": T,
         "exp_table": exp_table()}, [(I8, t(T, H * T))], T - 1, H * T - 1)
    add("Llama P·V", "matmul grouped [128, 512] int16 · [32, 256] int8, K 128",
        {"kind": 2, "flags": 2, "input_b": 1, "in_cols": H * T, "out_cols": H * dh, "heads": H, "seq": T,
         "multiplier": 1 << 10, "shift": 30, "kv_heads": Hb}, [(I16, t(T, H * T, I16)), (I8, t(dh, Hb * T))],
        T - 1, H * dh - 1)
    add("Llama SiLU", "lut [128, 352] int8 → int16",
        {"kind": 5, "flags": 128, "in_cols": ffn, "out_cols": ffn, "table": t(1, 256, I16)[0]},
        [(I8, t(T, ffn))], T - 1, ffn - 1)
    add("Llama SwiGLU product", "mul [128, 352] int16 · int16 → int16",
        {"kind": 11, "flags": 128, "input_b": 1, "in_cols": ffn, "out_cols": ffn, "multiplier": 1, "shift": 15},
        [(I16, t(T, ffn, I16)), (I16, t(T, ffn, I16))], T - 1, ffn - 1)
    add("Llama head argmax", "argmax [128, 256] int32",
        {"kind": 9, "flags": 0, "in_cols": V, "out_cols": 1}, [(I32, t(T, V, I32))], T - 1, 0)
    # Long rows.
    add("softmax of 512 keys", "softmax causal [512, 512] int8 → int16, H 1",
        {"kind": 6, "flags": 129, "in_cols": 512, "out_cols": 512, "heads": 1, "seq": 512,
         "exp_table": exp_table()}, [(I8, t(512, 512))], 511, 511)
    rows = 16
    add("argmax chunk of 32000", "argmax pair+carry [16, 8192] int32",
        {"kind": 9, "flags": 3, "input_b": 1, "in_cols": 8192, "out_cols": 2, "offset": 8192},
        [(I32, t(rows, 8192, I32)), (I32, [[-(2**31), 0] for _ in range(rows)])], rows - 1, 1)
    # Its worst case: ascending logits put a new maximum in every word, so no word is skipped.
    add("argmax chunk, ascending", "argmax pair+carry [16, 8192] int32, every word scanned",
        {"kind": 9, "flags": 3, "input_b": 1, "in_cols": 8192, "out_cols": 2, "offset": 8192},
        [(I32, [[1_000_000 + 37 * c for c in range(8192)] for _ in range(rows)]),
         (I32, [[-(2**31), 0] for _ in range(rows)])], rows - 1, 1)
    return out


def floor_gas(data: bytes) -> int:
    """EIP-7623's floor: 21000 + 10 per zero byte + 40 per non-zero byte of calldata."""
    zeros = data.count(0)
    return 21000 + 10 * zeros + 40 * (len(data) - zeros)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the MiniLM embedding")
    args = parser.parse_args()
    rng = random.Random(19)
    built = cases(rng, args.quick)
    with local_chain():
        sender = accounts.test_accounts[0]
        deployed = {kind: sender.deploy(getattr(project, f"{name}Verifier")) for kind, name in vw.NAMES.items()}
        print("| step | sizes | witness bytes | `gas_used` | calldata floor |")
        print("| --- | --- | ---: | ---: | ---: |")
        worst = 0
        for label, sizes, case, r, c in built:
            verifier = deployed[case["op"]["kind"]]
            call = vw.step_call(case, r, c)
            got = verifier.step(*call)
            want = case["output"]["values"][r][c]
            if got != want:
                raise SystemExit(f"{label}: the verifier gave {got}, the reference {want}")
            receipt = verifier.step.transact(*call, sender=sender)
            floor = floor_gas(bytes(receipt.transaction.data))
            worst = max(worst, receipt.gas_used)
            print(f"| {label} | {sizes} | {len(call[-1]):,} | {receipt.gas_used:,} | {floor:,} |", flush=True)
        print(f"\nlargest: {worst:,} gas; target {TARGET:,}: {'met' if worst <= TARGET else 'MISSED'}")


if __name__ == "__main__":
    main()
