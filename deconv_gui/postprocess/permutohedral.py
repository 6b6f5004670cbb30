"""The permutohedral lattice (Adams, Baek & Davis, 2010) exactly as Krähenbühl's densecrf builds it, and
the filter that applies several such Gaussian kernels at once.

A Gaussian filter over N points with d-dimensional features ``f`` (already divided by their standard
deviations) is approximated by three linear maps:

    splat  (M × N): each point spreads its value over the d+1 vertices of the lattice simplex enclosing it,
                    with barycentric weights;
    blur   (M × M): along each of the d+1 lattice directions in turn, ``v ← v + ½(v[back] + v[forward])``
                    (a missing neighbour counts as 0);
    slice  (N × M): ``alpha ·`` splatᵀ, with ``alpha = 1 / (1 + 2^-d)``.

:func:`build_lattice` reproduces ``Permutohedral::init`` of densecrf 2.0 (the code inside pydensecrf2; its
SSE path): float32 elevation with the scale factors ``sqrt(2/3)(d+1) / sqrt((i+1)(i+2))``, rounding to the
nearest remainder-0 point (ties to even), ranking with the same tie-breaking, the same barycentric weights,
the same vertex keys and even the same vertex numbering (order of first appearance, densecrf's hash
insertion order). It is numpy, built once per image. :class:`LatticeFilter` turns lattices into sparse
products run by torch's ``embedding_bag`` on the CPU or CUDA, once per mean-field step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

Normalization = Literal["symmetric", "none"]
_INDEX_BITS_MAX = 63


@dataclass(frozen=True)
class PermutohedralLattice:
    """The sparse structure of one lattice over N points with d-dimensional features (numpy, read-only).

    Attributes:
        dim: feature dimension d; every point lies in a simplex of d+1 vertices.
        num_points: N.
        num_vertices: M, the lattice vertices that received at least one splat.
        vertex: ``(N, d+1) int32`` vertex index of each simplex corner of each point (row = point).
        weight: ``(N, d+1) float32`` barycentric weight of each corner (a row sums to 1).
        splat_order: ``(N·(d+1),) int32`` flat indices into ``vertex``/``weight`` sorted by vertex, so that
            ``splat_order[vertex_ptr[m]:vertex_ptr[m+1]]`` are the corners that land on vertex m
            (CSR rows of the splat matrix; the point is ``flat // (d+1)``).
        vertex_ptr: ``(M+1,) int64`` CSR row pointers into ``splat_order``.
        neighbours: ``(d+1, 2, M) int32``: for lattice direction j, the vertex one step back (``[j, 0]``)
            and one step forward (``[j, 1]``), ``-1`` where that vertex does not exist.
    """

    dim: int
    num_points: int
    num_vertices: int
    vertex: np.ndarray
    weight: np.ndarray
    splat_order: np.ndarray
    vertex_ptr: np.ndarray
    neighbours: np.ndarray

    @property
    def alpha(self) -> float:
        """densecrf's slice scaling constant ``1 / (1 + 2^-d)`` (float32 as in the C++)."""
        return float(np.float32(1.0) / (np.float32(1.0) + np.float32(2.0) ** np.float32(-self.dim)))

    def filter(self, values: np.ndarray) -> np.ndarray:
        """Splat → blur → slice of ``(N, K) float32`` values with plain numpy, ``(N, K) float32``.

        The straightforward reference for tests (slow). Equals densecrf's ``Permutohedral::compute`` up to
        float rounding.
        """
        values = np.asarray(values, np.float32)
        if values.ndim != 2 or values.shape[0] != self.num_points:
            raise ValueError(f"values must be (N={self.num_points}, K), got {values.shape}")
        m, k = self.num_vertices, values.shape[1]
        grid = np.zeros((m + 1, k), np.float32)  # row m stays 0: index -1 reads it as the missing neighbour
        for column in range(k):
            grid[:m, column] = np.bincount(self.vertex.ravel(), (self.weight * values[:, column, None]).ravel(), m)
        for direction in range(self.dim + 1):
            before, after = self.neighbours[direction]
            blurred = np.zeros_like(grid)
            blurred[:m] = grid[:m] + np.float32(0.5) * (grid[before] + grid[after])
            grid = blurred
        out = np.zeros((self.num_points, k), np.float32)
        for corner in range(self.dim + 1):
            out += (self.weight[:, corner, None] * np.float32(self.alpha)) * grid[self.vertex[:, corner]]
        return out


def _elevate(features: np.ndarray) -> np.ndarray:
    """``(N, d) float32`` features → ``(d+1, N) float32`` points on the hyperplane Σ = 0 (densecrf's E·f)."""
    n, d = features.shape
    inv_std_dev = np.float32(np.sqrt(2.0 / 3.0) * (d + 1))
    scale = [np.float32(1.0 / np.sqrt((i + 2) * (i + 1)) * np.float64(inv_std_dev)) for i in range(d)]
    elevated = np.empty((d + 1, n), np.float32)
    running = np.zeros(n, np.float32)
    for j in range(d, 0, -1):
        scaled = features[:, j - 1] * scale[j - 1]
        elevated[j] = running - np.float32(j) * scaled
        running += scaled
    elevated[0] = running
    return elevated


def _rank_descending(delta: np.ndarray) -> np.ndarray:
    """``(d+1, N)`` → ``(d+1, N) int16``: position of each coordinate in descending order, ties to the lower
    index first (densecrf's pairwise ``di < dj`` counting)."""
    dp1, n = delta.shape
    rank = np.zeros((dp1, n), np.int16)
    for i in range(dp1 - 1):
        for j in range(i + 1, dp1):
            less = delta[i] < delta[j]
            rank[i] += less
            rank[j] += ~less
    return rank


def build_lattice(features: np.ndarray) -> PermutohedralLattice:
    """Build the lattice for ``(N, d) float32`` features (each already divided by its standard deviation).

    Raises ValueError for an empty or non-2-D feature array.
    """
    features = np.ascontiguousarray(features, np.float32)
    if features.ndim != 2 or features.shape[0] == 0 or features.shape[1] == 0:
        raise ValueError(f"features must be a non-empty (N, d) array, got shape {features.shape}")
    n, d = features.shape
    dp1 = d + 1
    down = np.float32(1.0 / dp1)

    elevated = _elevate(features)  # (d+1, N)
    nearest = np.rint(elevated * down)  # ties to even, like SSE rounding
    rem0 = nearest * np.float32(dp1)
    rank = _rank_descending(elevated - rem0) + nearest.sum(0).astype(np.int16)
    # A point off the plane Σ = 0 shifts every rank; wrap ranks into [0, d] and move rem0 along.
    wrap = (rank < 0).astype(np.int16) - (rank >= dp1)
    rank += wrap * np.int16(dp1)
    rem0 += wrap * np.float32(dp1)

    # Barycentric weights: coordinate i with rank ρ adds v_i to slot d-ρ and subtracts it from slot d-ρ+1.
    v = (elevated - rem0) * down  # (d+1, N)
    by_slot = np.empty((dp1, n), np.float32)
    np.put_along_axis(by_slot, d - rank, v, axis=0)
    weight = np.empty((dp1, n), np.float32)
    weight[1:] = by_slot[1:] - by_slot[:-1]
    weight[0] = by_slot[0] + (np.float32(1.0) + (np.float32(0.0) - by_slot[d]))

    # Vertex keys. Remainder-r vertex: key_i = rem0_i + r - (d+1)·[rank_i > d - r] for i < d (key_d is implied
    # by Σ = 0). Every key coordinate is ≡ r mod (d+1), so store q_i = (key_i - r)/(d+1) and r separately.
    q0 = (rem0[:d].astype(np.int64)) // dp1  # (d, N), exact: rem0 is a multiple of d+1
    q_lo = q0.min(1) - 2  # margins: corners go to q0 - 1, blur neighbours one further
    q_span = q0.max(1) + 2 - q_lo
    strides = np.ones(d, np.int64)
    for i in range(d - 2, -1, -1):
        strides[i] = strides[i + 1] * q_span[i + 1]
    q_range = int(strides[0] * q_span[0])
    if np.log2(float(q_range) * dp1) >= _INDEX_BITS_MAX:
        raise ValueError("lattice key space too large for int64 keys (features span too many standard deviations)")
    base = ((q0 - q_lo[:, None]) * strides[:, None]).sum(0)  # (N,)
    stride_at_rank = np.zeros((dp1, n), np.int64)  # stride of the coordinate holding rank ρ (0 for coordinate d)
    np.put_along_axis(stride_at_rank, rank[:d], np.broadcast_to(strides[:, None], (d, n)), axis=0)
    # For remainder r the coordinates with rank ≥ d-r+1 drop by one step: cumulative from the top rank.
    dropped = np.zeros((dp1, n), np.int64)
    np.cumsum(stride_at_rank[::-1][:-1], axis=0, out=dropped[1:])
    remainder = np.arange(dp1, dtype=np.int64)[None, :]
    keys = remainder * q_range + (base[:, None] - dropped.T)  # (N, d+1): point-major, like vertex/weight

    vertex, splat_order, vertex_ptr, unique_keys, vertex_of_key = _number_vertices(keys.ravel())
    neighbours = _blur_neighbours(unique_keys, vertex_of_key, q_range, strides, d)
    arrays = {"vertex": vertex.reshape(n, dp1), "weight": np.ascontiguousarray(weight.T),
              "splat_order": splat_order, "vertex_ptr": vertex_ptr, "neighbours": neighbours}
    for array in arrays.values():
        array.setflags(write=False)  # lattices may be cached and shared
    return PermutohedralLattice(dim=d, num_points=n, num_vertices=int(unique_keys.size), **arrays)


def _number_vertices(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Non-negative ``(K,) int64`` keys → vertices numbered in order of first appearance in ``keys``.

    Returns (vertex per key ``(K,)``, key positions grouped by vertex ``(K,)``, CSR pointers ``(M+1,)``,
    sorted unique keys ``(M,)``, vertex number of each sorted unique key ``(M,)``). First-appearance order
    (densecrf's hash-insertion order) keeps vertices touched by nearby pixels close in memory.
    """
    count = keys.size
    index_bits = max(1, int(count - 1).bit_length())
    if int(keys.max()).bit_length() + index_bits <= _INDEX_BITS_MAX:
        # One plain sort of (key, position) packed into an int64 is several times faster than an argsort.
        packed = keys << index_bits
        packed |= np.arange(count, dtype=np.int64)
        packed.sort()
        order = (packed & ((1 << index_bits) - 1)).astype(np.int32)
        packed >>= index_bits
        sorted_keys = packed
    else:
        order = np.argsort(keys, kind="stable").astype(np.int32)
        sorted_keys = keys[order]
    starts = np.empty(count, bool)
    starts[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=starts[1:])
    start_positions = np.flatnonzero(starts)
    group_sizes = np.diff(np.append(start_positions, count))
    # Within a run of equal keys positions ascend, so the run's first element is the key's first appearance.
    first_seen = order[start_positions]
    is_first = np.zeros(count, bool)
    is_first[first_seen] = True
    vertex_of_sorted = np.cumsum(is_first, dtype=np.int32)[first_seen] - np.int32(1)  # sorted-key rank → vertex
    vertex = np.empty(count, np.int32)
    vertex[order] = np.repeat(vertex_of_sorted, group_sizes)
    # Regroup the sorted positions so that vertex 0's come first, then vertex 1's, ...
    m = start_positions.size
    sizes_by_vertex = np.empty(m, np.int64)
    sizes_by_vertex[vertex_of_sorted] = group_sizes
    vertex_ptr = np.zeros(m + 1, np.int64)
    np.cumsum(sizes_by_vertex, out=vertex_ptr[1:])
    shift = (vertex_ptr[vertex_of_sorted] - start_positions).astype(np.int32)
    destination = np.repeat(shift, group_sizes)
    destination += np.arange(count, dtype=np.int32)
    grouped = np.empty(count, np.int32)
    grouped[destination] = order
    return vertex, grouped, vertex_ptr, sorted_keys[start_positions], vertex_of_sorted


def _blur_neighbours(unique_keys: np.ndarray, vertex_of_key: np.ndarray, q_range: int, strides: np.ndarray,
                     d: int) -> np.ndarray:
    """Sorted unique keys ``(M,)`` and their vertex numbers → ``(d+1, 2, M) int32`` neighbour vertex along each
    direction, -1 if absent: ``[j, 0]`` one step back, ``[j, 1]`` one step forward.

    densecrf's neighbours of key k along direction j: ``n1 = k - 1`` except ``n1_j = k_j + d``; ``n2 = k + 1``
    except ``n2_j = k_j - d`` (for j = d only the ±1 part, coordinate d being implied). n1 and n2 are
    inverse steps, so only n2 is searched and n1 is its inverse. In (r, q) form ``k + 1`` is ``(r + 1, q)``
    or, for r = d, ``(0, q + 1)``; ``k_j - d`` takes one step off q_j. Keys are sorted by remainder first,
    so each remainder is a contiguous sorted block and a shifted block stays sorted: one ``searchsorted`` per
    (direction, remainder).
    """
    dp1 = d + 1
    m = unique_keys.size
    remainder = unique_keys // q_range
    q_packed = unique_keys - remainder * q_range
    block = np.searchsorted(remainder, np.arange(dp1 + 1))
    all_steps = int(strides.sum())
    neighbours = np.full((dp1, 2, m), -1, np.int32)
    for j in range(dp1):
        step_j = int(strides[j]) if j < d else 0
        for r in range(dp1):
            lo, hi = block[r], block[r + 1]
            target_r = (r + 1) % dp1
            t_lo, t_hi = block[target_r], block[target_r + 1]
            if lo == hi or t_lo == t_hi:
                continue
            target = q_packed[t_lo:t_hi]
            query = q_packed[lo:hi] + (-step_j + (all_steps if r == d else 0))
            position = np.searchsorted(target, query)
            np.minimum(position, target.size - 1, out=position)
            found = np.flatnonzero(target[position] == query)
            source = vertex_of_key[lo + found]
            destination = vertex_of_key[t_lo + position[found]]
            neighbours[j, 1, source] = destination
            neighbours[j, 0, destination] = source
    return neighbours


@dataclass(frozen=True)
class _SparseRows:
    """An R × K sparse matrix kept as ``embedding_bag`` arguments (CSR without the sorted-columns rule):
    row r of ``self @ dense`` is ``Σ weights[e] · dense[columns[e]]`` over ``e in offsets[r]:offsets[r+1]``.

    ``embedding_bag`` (FBGEMM kernels on the CPU) is 2-4× faster than torch's sparse-CSR matmul here.
    """

    offsets: torch.Tensor  # (R+1,) int32
    columns: torch.Tensor  # (nnz,) int32
    weights: torch.Tensor  # (nnz,) float32

    @classmethod
    def build(cls, offsets: np.ndarray, columns: np.ndarray, weights: np.ndarray | torch.Tensor,
              device: torch.device) -> _SparseRows:
        if isinstance(weights, np.ndarray):
            weights = torch.from_numpy(np.ascontiguousarray(weights, np.float32))
        return cls(
            offsets=torch.from_numpy(np.ascontiguousarray(offsets, np.int32)).to(device),
            columns=torch.from_numpy(np.ascontiguousarray(columns, np.int32)).to(device),
            weights=weights.to(device),
        )

    @classmethod
    def regular(cls, columns: np.ndarray, weights: tuple[float, ...], device: torch.device) -> _SparseRows:
        """``(R, k)`` columns, every row weighted by the same ``k`` weights, plus one empty row at the end."""
        rows, k = columns.shape
        offsets = np.append(np.arange(0, k * (rows + 1), k), k * rows)
        return cls.build(offsets, columns.ravel(), torch.tensor(weights, dtype=torch.float32).repeat(rows), device)

    def __matmul__(self, dense: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.embedding_bag(
            self.columns, dense, self.offsets, mode="sum", per_sample_weights=self.weights,
            include_last_offset=True,
        )


_BLUR_WEIGHTS = (0.5, 1.0, 0.5)
_FUSED_BLUR_WEIGHTS = (0.5, 1.0, 0.5, 0.25, 0.5, 0.25, 0.25, 0.5, 0.25)


class LatticeFilter:
    """``Q (N, K) → Σ_k w_k K̃_k Q`` for several lattices over the same N points (torch, CPU or CUDA).

    K̃_k is lattice k's splat → blur → slice, normalised as densecrf's ``NormalizationType``:
    ``"symmetric"`` is ``D K D`` with ``D = diag(1/sqrt(K·1 + 1e-20))`` (``NORMALIZE_SYMMETRIC``), ``"none"``
    the raw lattice sums (``NO_NORMALIZATION``). The self term (point i with itself) is included, as in
    densecrf.

    The lattices share one vertex numbering (lattice k's vertices follow lattice k-1's) plus one all-zero
    row M at the end, so a call is one splat ``(M+1) × N`` (normalisation folded into its values),
    ⌈(d+1)/2⌉ blur products ``(M+1) × (M+1)`` — two lattice directions each, a missing neighbour, and every
    direction past a lattice's own d+1, reading the zero row — and one slice ``N × (M+1)`` (normalisation,
    alpha and the weight folded in).
    """

    def __init__(self, kernels: list[tuple[PermutohedralLattice, float]], normalization: Normalization,
                 device: torch.device) -> None:
        if not kernels or len({lattice.num_points for lattice, _ in kernels}) != 1:
            raise ValueError("LatticeFilter needs at least one lattice, all over the same points")
        n = kernels[0][0].num_points
        base = np.cumsum([0] + [lattice.num_vertices for lattice, _ in kernels])
        m = int(base[-1])
        corners = np.cumsum([0] + [lattice.dim + 1 for lattice, _ in kernels])
        self.num_points, self.num_vertices = n, m

        directions = [_combined_neighbours(kernels, base, j) for j in range(int(np.diff(corners).max()))]
        slice_columns = np.concatenate([lattice.vertex + np.int32(b)  # (N, Σ(d+1))
                                        for (lattice, _), b in zip(kernels, base[:-1], strict=True)], 1)
        slice_weights = np.concatenate([lattice.weight for lattice, _ in kernels], 1)
        pixels = [lattice.splat_order // (lattice.dim + 1) for lattice, _ in kernels]
        splat_weights = [lattice.weight.ravel()[lattice.splat_order] for lattice, _ in kernels]
        if normalization == "symmetric":
            norms = _symmetric_normalisers(kernels, directions, splat_weights, base)
            splat_weights = [w * norm[pixel] for w, norm, pixel in zip(splat_weights, norms, pixels, strict=True)]
        elif normalization == "none":
            norms = [np.ones(n, np.float32) for _ in kernels]
        else:
            raise ValueError(f"normalization must be 'symmetric' or 'none', got {normalization!r}")
        for (lattice, weight), norm, lo, hi in zip(kernels, norms, corners[:-1], corners[1:], strict=True):
            slice_weights[:, lo:hi] *= norm[:, None] * np.float32(lattice.alpha * weight)

        splat_offsets = [np.zeros(1, np.int64)]
        for lattice, _ in kernels:
            splat_offsets.append(lattice.vertex_ptr[1:] + splat_offsets[-1][-1])
        splat_offsets.append(splat_offsets[-1][-1:])  # the zero row: an empty bag
        self.splat = _SparseRows.build(np.concatenate(splat_offsets), np.concatenate(pixels),
                                       np.concatenate(splat_weights), device)
        self.blur = [
            _SparseRows.regular(_fused_blur_columns(directions[j], directions[j + 1]), _FUSED_BLUR_WEIGHTS, device)
            for j in range(0, len(directions) - 1, 2)
        ]
        if len(directions) % 2:
            back, forward = directions[-1]
            columns = np.stack([back[:m], np.arange(m, dtype=np.int32), forward[:m]], 1)
            self.blur.append(_SparseRows.regular(columns, _BLUR_WEIGHTS, device))
        per_row = slice_columns.shape[1]
        self.slice = _SparseRows.build(np.arange(0, per_row * (n + 1), per_row), slice_columns.ravel(),
                                       slice_weights.ravel(), device)

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        """``(N, K) float32`` → ``(N, K) float32`` on the filter's device."""
        grid = self.splat @ q
        for step in self.blur:
            grid = step @ grid
        return self.slice @ grid


def _combined_neighbours(kernels: list[tuple[PermutohedralLattice, float]], base: np.ndarray,
                         direction: int) -> tuple[np.ndarray, np.ndarray]:
    """Back and forward neighbour, ``(M+1,) int32`` each, of every vertex of all lattices along ``direction``.

    A missing neighbour, every neighbour past a lattice's own d+1 directions, and both neighbours of the zero
    row M are M itself.
    """
    m = int(base[-1])
    back = np.full(m + 1, m, np.int32)
    forward = np.full(m + 1, m, np.int32)
    for (lattice, _), b in zip(kernels, base[:-1], strict=True):
        if direction <= lattice.dim:
            for out, neighbour in zip((back, forward), lattice.neighbours[direction], strict=True):
                out[b:b + lattice.num_vertices] = np.where(neighbour >= 0, neighbour + np.int32(b), np.int32(m))
    return back, forward


def _fused_blur_columns(first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray]
                        ) -> np.ndarray:
    """``(M, 9) int32`` columns of two blur steps fused (``second ∘ first``, weights
    :data:`_FUSED_BLUR_WEIGHTS`): row v reads ``first``'s rows (back, self, forward) at v and at both of
    ``second``'s neighbours of v. One 9-entry product is ~25 % faster than two 3-entry ones."""
    back, forward = first
    m = back.size - 1
    back2, forward2 = second[0][:m], second[1][:m]
    columns = np.empty((m, 9), np.int32)
    for k, values in enumerate((back[:m], np.arange(m, dtype=np.int32), forward[:m],
                                np.take(back, back2), back2, np.take(forward, back2),
                                np.take(back, forward2), forward2, np.take(forward, forward2))):
        columns[:, k] = values
    return columns


def _symmetric_normalisers(kernels: list[tuple[PermutohedralLattice, float]],
                           directions: list[tuple[np.ndarray, np.ndarray]], splat_weights: list[np.ndarray],
                           base: np.ndarray) -> list[np.ndarray]:
    """densecrf's ``norm_ = 1/sqrt(K·1 + 1e-20)`` per lattice, ``(N,) float32`` each (numpy, one column)."""
    m = int(base[-1])
    grid = np.zeros(m + 1, np.float32)
    for (lattice, _), weights, b in zip(kernels, splat_weights, base[:-1], strict=True):
        grid[b:b + lattice.num_vertices] = np.add.reduceat(weights, lattice.vertex_ptr[:-1])
    for back, forward in directions:
        grid = grid + np.float32(0.5) * (np.take(grid, back) + np.take(grid, forward))
        grid[m] = 0.0
    norms = []
    for (lattice, _), b in zip(kernels, base[:-1], strict=True):
        corner_values = np.take(grid[b:b + lattice.num_vertices], lattice.vertex) * lattice.weight
        mass = corner_values @ np.full(lattice.dim + 1, lattice.alpha, np.float32)  # row sums, via BLAS
        norms.append((np.float32(1.0) / np.sqrt(mass + np.float32(1e-20))).astype(np.float32))
    return norms
