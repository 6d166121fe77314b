"""The commitment of a tensor-parallel run, split across ranks: the same roots, each rank hashing
only the rows it holds.

A slot's root needs full rows (section 3: a leaf is the keccak of one packed row), but a split
run leaves some slots as column shards (a rank's heads, its FFN share). So each slot is first
exchanged by rows: one ``all_to_all_single`` of bytes after which rank r holds full rows
[r0, r1) of it (a replicated slot needs no exchange; the rank slices its own rows). Rank r then
hashes those rows (``commitments.row_leaf_bytes``: the same leaves as section 3) into the roots
of its subtrees, and one ``all_gather`` of those 32-byte roots, for every slot at once, lets
every rank build the levels above: the rows root, the tensor root (section 3's header) and the
state roots S_0..S_N, identical to ``executor.trace_commitment``.

Row ranges are aligned to powers of two so that a rank's rows are whole subtrees. A slot of
R rows has a tree of depth D = depth_for(R); its rows are cut at height h = D - L, L =
min(ceil(log2(ranks)), D), into C = 2^L chunks of 2^h rows (the last ones may be short or
empty: padding), and rank r holds chunks [floor(r C / ranks), floor((r+1) C / ranks)). With a
power-of-two rank count and R >= ranks each rank holds one chunk; with fewer rows than ranks
the first C ranks hold one each and the others none. ``Layout`` is that arithmetic; the trace
store uses it to find the rank that holds a row.

The exchange assumes what a tensor-parallel plan produces: every rank's block of a slot is
either the whole slot (replicated) or the blocks tile the slot without overlap (column shards
of all rows, row shards of all columns, or both). Collectives run on the group's device (CUDA
for nccl, CPU for gloo); hashing always runs on the CPU (the native batch keccak).
"""

import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from . import commitments as cm
from .hashing import WORD
from .merkle import MerkleTree, depth_for, zero_hash

TORCH_DTYPES = {code: dtype for dtype, code in cm.DTYPES.items()}


@dataclass(frozen=True)
class Layout:
    """Where the rows of one slot of ``rows`` rows lie across ``ranks`` ranks."""

    rows: int
    ranks: int

    @property
    def depth(self) -> int:
        return depth_for(self.rows)

    @property
    def split(self) -> int:
        """L: the levels above the chunks (C = 2^L chunks)."""
        return min((self.ranks - 1).bit_length(), self.depth)

    @property
    def chunk_height(self) -> int:
        return self.depth - self.split

    @property
    def chunks(self) -> int:
        return 1 << self.split

    def _start(self, rank: int) -> int:
        # Fewer chunks than ranks (a slot of few rows): one chunk to each of the first ranks.
        return min(rank, self.chunks) if self.chunks <= self.ranks else rank * self.chunks // self.ranks

    def chunks_of(self, rank: int) -> range:
        return range(self._start(rank), self._start(rank + 1))

    def chunk_rows(self, chunk: int) -> tuple[int, int]:
        """Rows [a, b) of a chunk, clipped to the slot (empty for a chunk of padding)."""
        size = 1 << self.chunk_height
        return min(chunk * size, self.rows), min((chunk + 1) * size, self.rows)

    def rows_of(self, rank: int) -> tuple[int, int]:
        """Rows [r0, r1) rank ``rank`` holds (r0 == r1: none); in rank order, they tile the slot."""
        chunks = self.chunks_of(rank)
        start = self.chunk_rows(chunks.start)[0]
        return start, (self.chunk_rows(chunks.stop - 1)[1] if chunks else start)

    def chunk_of(self, row: int) -> int:
        if not 0 <= row < self.rows:
            raise IndexError(f"row {row} is outside a slot of {self.rows} rows")
        return row >> self.chunk_height

    def owner(self, row: int) -> int:
        """The rank holding ``row``: the first rank whose chunk range ends past the row's chunk."""
        chunk = self.chunk_of(row)
        return next(r for r in range(self.ranks) if self.chunks_of(r).stop > chunk)


def chunk_roots(layout: Layout, rank: int, rows: torch.Tensor) -> list[bytes]:
    """The subtree root of each chunk rank ``rank`` holds, from its full rows [r0, r1) (one
    ``row_leaf_bytes`` call for all of them)."""
    r0, r1 = layout.rows_of(rank)
    if rows.shape[0] != r1 - r0:
        raise ValueError(f"rank {rank} holds rows [{r0}, {r1}) of a {layout.rows}-row slot, got {rows.shape[0]} rows")
    leaves = cm.row_leaf_bytes(rows) if r1 > r0 else b""
    roots = []
    for chunk in layout.chunks_of(rank):
        a, b = layout.chunk_rows(chunk)
        if a == b:
            roots.append(zero_hash(layout.chunk_height))
        else:
            roots.append(MerkleTree(leaves[(a - r0) * WORD:(b - r0) * WORD], layout.chunk_height).root)
    return roots


def top_tree(layout: Layout, roots: list[bytes]) -> MerkleTree:
    """The top L levels of a slot's row tree, over all C chunk roots (in chunk order)."""
    if len(roots) != layout.chunks:
        raise ValueError(f"{layout.chunks} chunk roots expected, got {len(roots)}")
    return MerkleTree(roots, layout.split)


def rows_root(layout: Layout, roots: list[bytes]) -> bytes:
    return top_tree(layout, roots).root


@dataclass(frozen=True)
class SlotHeader:
    """A slot's shape and dtype (section 3's header less its rows root)."""

    rows: int
    cols: int
    dtype: int

    def root(self, rows_root_: bytes) -> bytes:
        return cm.header_root(self.rows, self.cols, rows_root_, self.dtype)


@dataclass
class RankCommit:
    """What one rank ends with: its full rows of every slot, every slot's chunk roots (all ranks'),
    the slot and state roots, and what the exchange and hashing cost it."""

    rank: int
    ranks: int
    headers: list[SlotHeader]
    rows: list[torch.Tensor]             # slot j: this rank's rows [r0, r1), CPU
    chunk_roots: list[list[bytes]]       # slot j: every chunk's root, in chunk order
    slot_roots: list[bytes]
    state_roots: list[bytes]
    bytes_sent: int = 0
    bytes_received: int = 0
    exchange_seconds: float = 0.0
    hash_seconds: float = 0.0

    def layout(self, slot: int) -> Layout:
        return Layout(self.headers[slot].rows, self.ranks)

    @property
    def trace_root(self) -> bytes:
        return self.state_roots[-1]


def _finish(ranks: int, headers: list[SlotHeader], roots: list[list[bytes]]) -> tuple[list[bytes], list[bytes]]:
    """Slot roots and state roots from every slot's chunk roots (every rank computes them)."""
    slot_roots = [h.root(rows_root(Layout(h.rows, ranks), r)) for h, r in zip(headers, roots)]
    return slot_roots, cm.state_roots(slot_roots)


def commit_local(slots: list[torch.Tensor], ranks: int) -> list[RankCommit]:
    """Every rank's commitment of a trace, simulated in one process (no exchange: each rank's
    rows sliced from the full slots). For tests and for writing a split store from one trace."""
    headers = [SlotHeader(s.shape[0], s.shape[1], cm.dtype_code(s)) for s in slots]
    per_rank = []
    for rank in range(ranks):
        mine = []
        for s, h in zip(slots, headers):
            r0, r1 = Layout(h.rows, ranks).rows_of(rank)
            mine.append(s[r0:r1].cpu().contiguous())
        per_rank.append(mine)
    roots = [[b for rank in range(ranks) for b in chunk_roots(Layout(h.rows, ranks), rank, per_rank[rank][j])]
             for j, h in enumerate(headers)]
    slot_roots, states = _finish(ranks, headers, roots)
    return [RankCommit(rank, ranks, headers, per_rank[rank], roots, slot_roots, states) for rank in range(ranks)]


@dataclass
class Shard:
    """One rank's block of a slot: ``data`` sits at (row0, col0) of a (rows, cols) slot."""

    data: torch.Tensor
    rows: int
    cols: int
    row0: int = 0
    col0: int = 0

    @classmethod
    def full(cls, data: torch.Tensor) -> "Shard":
        """A replicated slot (or the single-process one)."""
        return cls(data, data.shape[0], data.shape[1])

    @classmethod
    def columns(cls, data: torch.Tensor, col0: int, cols: int) -> "Shard":
        """Columns [col0, col0 + data.shape[1]) of every row."""
        return cls(data, data.shape[0], cols, 0, col0)

    def extent(self) -> list[int]:
        return [self.rows, self.cols, self.row0, self.col0, self.data.shape[0], self.data.shape[1],
                cm.dtype_code(self.data)]


def _device(group) -> torch.device:
    """Where the group's collectives take tensors: CUDA for nccl, the CPU otherwise."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _bytes_of(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.uint8).reshape(-1)


def _overlap(a0: int, a1: int, b0: int, b1: int) -> tuple[int, int]:
    lo, hi = max(a0, b0), min(a1, b1)
    return lo, max(lo, hi)


@dataclass
class _Route:
    """One sharded slot's part of the exchange, as seen by one rank: the bytes it sends each rank,
    and where each received (or own) block lands in its rows."""

    out: torch.Tensor                     # this rank's full rows [r0, r1), filled by ``land``
    send: dict[int, torch.Tensor]         # rank -> bytes
    recv: list[tuple[int, int, int, tuple, int]]  # (source, a, b, block key, bytes)
    own: torch.Tensor                     # this rank's block (the pieces it copies itself)
    out_row0: int = 0                     # r0


def _route(shard: Shard, extents: list[list[int]], rank: int, ranks: int, device) -> _Route:
    """Who sends what of one slot. Ranks holding the same block (a KV group shared by several
    ranks' query heads) are one provider: a rank holding a block uses its own copy, any other
    gets it from the lowest rank holding it. The distinct blocks must tile the slot."""
    layout = Layout(shard.rows, ranks)
    code = extents[rank][6]
    holders: dict[tuple, list[int]] = {}
    for q, e in enumerate(extents):
        holders.setdefault(tuple(e[2:6]), []).append(q)
    if sum(k[2] * k[3] for k in holders) != shard.rows * shard.cols:
        raise ValueError(f"the ranks' blocks of a {shard.rows}x{shard.cols} slot do not tile it: {sorted(holders)}")

    def source(key: tuple, q: int) -> int:
        return q if q in holders[key] else holders[key][0]

    data, mine_key = shard.data.to(device), tuple(extents[rank][2:6])
    mine0, mine1 = layout.rows_of(rank)
    send = {}
    for q in range(ranks):
        if q != rank and source(mine_key, q) == rank:
            a, b = _overlap(shard.row0, shard.row0 + data.shape[0], *layout.rows_of(q))
            if b > a:
                send[q] = _bytes_of(data[a - shard.row0:b - shard.row0])
    recv = []
    for key in holders:
        row0, _, nrows, ncols = key
        a, b = _overlap(row0, row0 + nrows, mine0, mine1)
        if b > a:
            recv.append((source(key, rank), a, b, key, (b - a) * ncols * cm.WIDTHS[code]))
    out = torch.empty((mine1 - mine0, shard.cols), dtype=TORCH_DTYPES[code], device=device)
    return _Route(out, send, recv, data, mine0)


def _exchange(routes: list[_Route], rank: int, ranks: int, group, device) -> tuple[int, int]:
    """Every sharded slot's rows in one ``all_to_all_single`` of bytes (per rank pair, the slots'
    pieces in slot order); returns the bytes this rank sent and received (own pieces are copied,
    not counted)."""
    send = [piece for q in range(ranks) for r in routes for piece in ([r.send[q]] if q in r.send else [])]
    send_sizes = [sum(r.send[q].numel() for r in routes if q in r.send) for q in range(ranks)]
    recv_sizes = [sum(size for r in routes for src, *_, size in r.recv if src == q != rank) for q in range(ranks)]
    buffer = torch.empty(sum(recv_sizes), dtype=torch.uint8, device=device)
    # Every rank takes part, even one with nothing to move: a collective needs the whole group.
    dist.all_to_all_single(buffer, torch.cat(send) if send else torch.empty(0, dtype=torch.uint8, device=device),
                           recv_sizes, send_sizes, group=group)
    offsets = [sum(recv_sizes[:q]) for q in range(ranks)]
    for r in routes:
        mine0 = r.out_row0
        for src, a, b, (row0, col0, _, ncols), size in r.recv:
            if src == rank:
                block = r.own[a - row0:b - row0]
            else:
                block = buffer[offsets[src]:offsets[src] + size]
                if offsets[src] % r.out.element_size():  # an int8 piece before it: realign to view
                    block = block.clone()
                block = block.view(r.out.dtype).view(b - a, ncols)
                offsets[src] += size
            r.out[a - mine0:b - mine0, col0:col0 + ncols] = block
    return sum(send_sizes), sum(recv_sizes)


def commit_distributed(shards: list[Shard], group=None) -> RankCommit:
    """This rank's part of the commitment of a split trace (slot 0 .. N, one ``Shard`` each);
    every rank of ``group`` calls it with its own shards. Three collectives in all: an
    all_gather of the shard extents, one all_to_all of every sharded slot's rows, an all_gather
    of the chunk roots."""
    rank, ranks = dist.get_rank(group), dist.get_world_size(group)
    device = _device(group)
    mine = torch.tensor([s.extent() for s in shards], dtype=torch.int64, device=device)
    gathered = [torch.empty_like(mine) for _ in range(ranks)]
    dist.all_gather(gathered, mine, group=group)
    extents = [g.cpu().tolist() for g in gathered]  # extents[q][j]: rank q's block of slot j
    headers = [SlotHeader(s.rows, s.cols, cm.dtype_code(s.data)) for s in shards]
    started = time.perf_counter()
    held, routes = [], []
    for j, shard in enumerate(shards):
        r0, r1 = Layout(shard.rows, ranks).rows_of(rank)
        if all(e[j][2:6] == [0, 0, *e[j][:2]] for e in extents):  # replicated: this rank's rows are here
            held.append(shard.data[r0:r1])
        else:
            routes.append(_route(shard, [e[j] for e in extents], rank, ranks, device))
            held.append(routes[-1].out)
    sent, received = _exchange(routes, rank, ranks, group, device)
    from .parallel_runtime import fault_point  # the tests' hook (here, not at import: no cycle to mind)
    fault_point(rank, "commit")
    rows = [h.cpu().contiguous() for h in held]
    hashed = time.perf_counter()
    roots_mine = [chunk_roots(Layout(h.rows, ranks), rank, r) for h, r in zip(headers, rows)]
    done = time.perf_counter()
    roots = _gather_roots(headers, roots_mine, rank, ranks, group, device)
    slot_roots, states = _finish(ranks, headers, roots)
    return RankCommit(rank, ranks, headers, rows, roots, slot_roots, states, sent, received, hashed - started,
                      done - hashed)


def _gather_roots(headers: list[SlotHeader], mine: list[list[bytes]], rank: int, ranks: int, group,
                  device) -> list[list[bytes]]:
    """Every slot's chunk roots in chunk order: one all_gather of each rank's roots (padded to
    the largest count: every rank knows every rank's count from the layouts)."""
    counts = [sum(len(Layout(h.rows, ranks).chunks_of(q)) for h in headers) for q in range(ranks)]
    width = max(counts) * WORD
    flat = b"".join(b"".join(r) for r in mine)
    buffer = torch.zeros(max(width, 1), dtype=torch.uint8)
    if flat:
        buffer[:len(flat)] = torch.frombuffer(bytearray(flat), dtype=torch.uint8)
    gathered = [torch.empty_like(buffer, device=device) for _ in range(ranks)]
    dist.all_gather(gathered, buffer.to(device), group=group)
    data = [bytes(g.cpu().numpy()) for g in gathered]
    offsets = [0] * ranks
    roots = []
    for h in headers:
        layout, slot = Layout(h.rows, ranks), []
        for q in range(ranks):
            n = len(layout.chunks_of(q))
            slot += [data[q][offsets[q] + i * WORD:offsets[q] + (i + 1) * WORD] for i in range(n)]
            offsets[q] += n * WORD
        roots.append(slot)
    return roots


# --- Shards: a tensor-parallel rank's slots, or a single-process trace cut for tests ----------

def shards_of(result) -> list[Shard]:
    """A rank's slots from the tensor-parallel runtime (``parallel_runtime.RankResult``: the
    plan's FULL slots whole, its COLS slots as the rank's column block) as ``Shard``s; then
    ``commit_distributed(shards_of(result))`` commits them."""
    plan, out = result.plan, []
    for j in range(len(plan.split)):
        _, tensor = result.shard(j)
        lo, _ = plan.block(j, result.rank)
        out.append(Shard.columns(tensor, lo, plan.cols[j]))
    return out


def commit_result(result, group=None) -> RankCommit:
    """``parallel_runtime.run_rank``'s ``finish`` for the split commitment (every rank commits
    what it holds): ``run_rank(..., finish=functools.partial(commit_result, group=group))``."""
    return commit_distributed(shards_of(result), group)


def commit_and_output(result, group=None) -> tuple[RankCommit, torch.Tensor]:
    """``commit_result`` and the output slot whole, on the CPU (a plan never splits the output:
    every rank holds it), for the rank that prints the run (``trace.SplitTrace.of_commit``)."""
    if result.plan.split[-1] != "full":
        raise ValueError("the plan split the output slot")
    return commit_result(result, group), result.shards[-1].cpu()
