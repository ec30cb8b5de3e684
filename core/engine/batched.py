"""The supernet's fast path: a search cell's edges computed together, by the state they leave.

Every state of a cell (s0, s1, then each node once summed) is the input of all the edges that
leave it, towards the later nodes. So, per state and per op:

- a parameter-free op gives the same output on every such edge (a pool and its affine-free BN on
  batch statistics; the identity): it is computed once;
- an op with weights runs once for all of them, on the state repeated along the channels, as
  grouped convolutions whose weights are the edges' own, concatenated (an affine-free BN is per
  channel, so one call normalises every edge); on the smallest maps the pointwise conv and BN
  that end the sep and dil convs are one call for all of a state's ops; on the CPU's larger maps
  (``BATCH_MAX_ELEMENTS``) ops with weights run edge by edge instead;
- `none` adds exactly zero and is skipped, and so are the ops the mask has pruned;

then each edge's output, times its weight, goes into its node's sum. One ReLU, one polyphase
split per state; a few larger kernels instead of many small ones. The numbers are the plain
path's (``core.engine.supernet``; tests hold them to 1e-5).

BN here normalises with batch statistics and keeps no running statistics: nothing in a search
reads them (the architecture split is measured on batch statistics too), and keeping them would
cost a copy per edge and BN. A forward in eval mode takes the plain path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.engine.arena import WeightArena
from core.engine.depthwise import depthwise as _depthwise
from core.engine.depthwise import memory_format_of
from core.engine.discretize import edge_rows
from core.engine.ops import DilConv, FactorizedReduce, Identity, Pool, SepConv


@dataclass(frozen=True)
class OpGroup:
    """One op on the edges leaving one state: their positions among those edges."""
    k: int
    positions: tuple[int, ...]
    full: bool  # every edge leaving the state computes it


@dataclass(frozen=True)
class StatePlan:
    state: int                 # 0: s0, 1: s1, 2 + i: node i
    edges: tuple[int, ...]     # the alpha rows of the edges leaving it, by node
    nodes: tuple[int, ...]     # the node each one goes into
    start: int                 # where its edges begin in CellPlan.order
    groups: tuple[OpGroup, ...]


@dataclass
class CellPlan:
    """Which op runs on which edge, by source state; rebuilt only when the mask changes."""
    nodes: int
    order: tuple[int, ...]     # alpha rows sorted by source state, then node
    states: tuple[StatePlan, ...]
    _order_tensors: dict[torch.device, torch.Tensor] = field(default_factory=dict, repr=False)

    def order_on(self, device: torch.device) -> torch.Tensor:
        """``order`` as an index tensor, copied to each device once (no upload per forward)."""
        if device not in self._order_tensors:
            self._order_tensors[device] = torch.tensor(self.order, device=device)
        return self._order_tensors[device]


def build_plan(nodes: int, active: Sequence[Sequence[int]], skipped: Sequence[int]) -> CellPlan:
    """``active[edge]``: the op columns computed on it; ``skipped``: columns never computed
    (`none`). Edge numbering is DARTS's: node i's inputs are rows offset_i + j, j = its state."""
    offsets = [rows.start for rows in edge_rows(nodes)]
    order: list[int] = []
    states = []
    for j in range(nodes + 1):  # the last node feeds no edge
        into = [i for i in range(max(0, j - 1), nodes)]
        edges = tuple(offsets[i] + j for i in into)
        groups = []
        ks = sorted({k for e in edges for k in active[e]} - set(skipped))
        for k in ks:
            pos = tuple(p for p, e in enumerate(edges) if k in active[e])
            groups.append(OpGroup(k, pos, len(pos) == len(edges)))
        states.append(StatePlan(j, edges, tuple(into), len(order), tuple(groups)))
        order.extend(edges)
    return CellPlan(nodes, tuple(order), tuple(states))


class _Source:
    """One state and what the ops leaving it share, each made once when first asked for."""

    def __init__(self, h: torch.Tensor, memory_format: torch.memory_format, weight_grads: bool,
                 arena: WeightArena | None = None):
        self.h = h
        self.format = memory_format
        self.weight_grads = weight_grads
        self.arena = arena
        self._memo: dict[object, torch.Tensor] = {}

    def _get(self, key: object, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def formatted(self, t: torch.Tensor) -> torch.Tensor:
        return t if t.is_contiguous(memory_format=self.format) else t.contiguous(memory_format=self.format)

    def relu(self) -> torch.Tensor:
        return self._get("relu", lambda: F.relu(self.h))

    def phases(self) -> torch.Tensor:
        """The ReLU'd state's four 2x2 polyphase sub-images, (B, 4C, H/2, W/2), channel c*4+phase."""
        return self._get("phases", lambda: self.formatted(F.pixel_unshuffle(self.relu(), 2)))

    def even(self) -> torch.Tensor:
        """The ReLU'd state at even rows and columns (what a stride-2 dilation-2 conv reads)."""
        return self._get("even", lambda: self.formatted(self.relu()[:, :, ::2, ::2]))

    def odd(self) -> torch.Tensor:
        return self._get("odd", lambda: self.formatted(self.relu()[:, :, 1::2, 1::2]))

    def repeated(self, name: str, m: int) -> torch.Tensor:
        """``getattr(self, name)()`` repeated m times along the channels (one copy per edge)."""
        base = getattr(self, name)()
        if m == 1:
            return base
        return self._get((name, m), lambda: _repeat_channels(base, m))


def _repeat_channels(x: torch.Tensor, m: int) -> torch.Tensor:
    """x repeated m times along the channels, in x's layout (``repeat`` would return the default
    layout, and a channels-last copy of it would be a second copy)."""
    if x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last):
        return x.repeat(1, m, 1, 1)
    return x.permute(0, 2, 3, 1).repeat(1, 1, 1, m).permute(0, 3, 1, 2)


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Affine-free BN on batch statistics; ``scale`` (one per channel: the edges' weights of the
    op) multiplies its output in the same kernel, and BN's backward gives its gradient."""
    return F.batch_norm(x, None, None, weight=scale, training=True, eps=bn.eps)


def _cat(weights: list[torch.Tensor], src: _Source) -> torch.Tensor:
    """The edges' weights side by side (a view of the weight arena where they lie so in it);
    detached when no weight gradient is wanted (an architecture step), which also keeps the
    autograd graph small."""
    if src.arena is not None:
        run = src.arena.run(weights, detach=not src.weight_grads)
        if run is not None:
            return run
    if not src.weight_grads:
        weights = [w.detach() for w in weights]
    return weights[0] if len(weights) == 1 else torch.cat(weights)


class _Batched:
    """One op on the edges leaving one state, prepared once per plan: its geometry and each
    edge's parameters (the Parameter objects; the optimizer updates them in place)."""

    shared = False  # True: one output serves every edge (no parameters)
    scales = False  # True: ends in a BN that can apply the edges' weights (``scale``)

    def __init__(self, mods: list[nn.Module]):
        self.m = len(mods)

    def __call__(self, src: _Source, scale: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def weight_lists(self) -> list[list[torch.Tensor]]:
        """The per-edge weight lists it concatenates, a pointwise tail's last."""
        return []


class _PointwiseTail(_Batched):
    """An op that ends in a pointwise conv and an affine-free BN: ``head`` computes what comes
    before them, so the ops of one state can share a single grouped conv and BN for their tails
    (``_merged_tails``)."""

    tail_pw: list[torch.Tensor]
    tail_bn: nn.BatchNorm2d
    scales = True

    w: list[list[torch.Tensor]]

    def head(self, src: _Source) -> torch.Tensor:
        raise NotImplementedError

    def weight_lists(self) -> list[list[torch.Tensor]]:
        return [*self.w, self.tail_pw]

    def __call__(self, src: _Source, scale: torch.Tensor | None = None) -> torch.Tensor:
        return _bn(F.conv2d(self.head(src), _cat(self.tail_pw, src), groups=self.m), self.tail_bn,
                   scale)


class _SepConv(_PointwiseTail):
    def __init__(self, mods: list[SepConv]):
        super().__init__(mods)
        ops = [mod.op for mod in mods]
        self.w = [[o[i].weight for o in ops] for i in (1, 2, 5)]
        self.tail_pw, self.tail_bn = [o[6].weight for o in ops], ops[0][7]
        self.stride, self.pad = ops[0][1].stride[0], ops[0][1].padding[0]
        self.bn1 = ops[0][3]

    def head(self, src: _Source) -> torch.Tensor:
        m, (dw1, pw1, dw2) = self.m, (_cat(w, src) for w in self.w)
        y = _depthwise(src.repeated("relu", m), dw1, stride=self.stride, padding=self.pad)
        y = F.relu(_bn(F.conv2d(y, pw1, groups=m), self.bn1))
        return _depthwise(y, dw2, padding=self.pad)


class _DilConv(_PointwiseTail):
    """A dilation-2 depthwise conv with padding p = k-1 is rewritten without dilation on CPU:
    at stride 1 the four 2x2 polyphase sub-images are independent undilated convs with padding
    p/2 (pixel_unshuffle, one grouped conv, pixel_shuffle); at stride 2 only the even sub-image
    is read. cuDNN runs dilated depthwise convs natively, so other devices keep the direct conv."""

    def __init__(self, mods: list[DilConv]):
        super().__init__(mods)
        dw = mods[0].op[1]
        self.w = [[mod.op[1].weight for mod in mods]]
        self.tail_pw, self.tail_bn = [mod.op[2].weight for mod in mods], mods[0].op[3]
        self.k, self.stride, self.pad, self.dil = (dw.kernel_size[0], dw.stride[0], dw.padding[0],
                                                   dw.dilation[0])
        self.square = (dw.kernel_size == (self.k, self.k) and dw.padding == (self.pad, self.pad)
                       and dw.stride == (self.stride, self.stride) and dw.dilation == (self.dil, self.dil))

    def head(self, src: _Source) -> torch.Tensor:
        m, k = self.m, self.k
        dw = _cat(self.w[0], src)
        H, W = src.h.shape[-2:]
        rewritable = (src.h.device.type == "cpu" and self.square and self.dil == 2
                      and self.pad == k - 1 and H % 2 == 0 and W % 2 == 0)
        if rewritable and self.stride == 1:
            y = _depthwise(src.repeated("phases", m), dw.repeat_interleave(4, 0), padding=(k - 1) // 2)
            return src.formatted(F.pixel_shuffle(y, 2))
        if rewritable and self.stride == 2:
            return _depthwise(src.repeated("even", m), dw, padding=(k - 1) // 2)
        return _depthwise(src.repeated("relu", m), dw, stride=self.stride, padding=self.pad,
                          dilation=self.dil)


class _FactorizedReduce(_Batched):
    """Two 1x1 stride-2 convs, on the even and on the odd pixels, each edge's halves side by
    side. Odd sizes run each edge's module (it pads)."""

    scales = True

    def __init__(self, mods: list[FactorizedReduce]):
        super().__init__(mods)
        self.mods = mods
        self.w = [[mod.conv_1.weight for mod in mods], [mod.conv_2.weight for mod in mods]]
        self.half, self.bn = mods[0].conv_1.out_channels, mods[0].bn

    def weight_lists(self) -> list[list[torch.Tensor]]:
        return self.w

    def __call__(self, src: _Source, scale: torch.Tensor | None = None) -> torch.Tensor:
        H, W = src.h.shape[-2:]
        if H % 2 or W % 2:
            y = torch.cat([mod(src.h) for mod in self.mods], 1)
            return y if scale is None else y * scale.view(1, -1, 1, 1)
        a = F.conv2d(src.even(), _cat(self.w[0], src))
        b = F.conv2d(src.odd(), _cat(self.w[1], src))
        # split, not slicing: a slice's gradient is a zero-filled tensor in the default layout
        z = torch.cat([t for pair in zip(a.split(self.half, 1), b.split(self.half, 1)) for t in pair], 1)
        return _bn(src.formatted(z), self.bn, scale)


class _Pool(_Batched):
    shared = True

    def __init__(self, mods: list[Pool]):
        super().__init__(mods)
        self.mod = mods[0]  # no parameters: every edge's output is this one

    def __call__(self, src: _Source, scale: torch.Tensor | None = None) -> torch.Tensor:
        y = self.mod.pool(src.h)
        return _bn(y, self.mod.bn) if self.mod.bn is not None else y


class _Identity(_Batched):
    shared = True

    def __call__(self, src: _Source, scale: torch.Tensor | None = None) -> torch.Tensor:
        return src.h


class _EdgeByEdge(_Batched):
    """An op class without a batched form: each edge's module on the state."""

    def __init__(self, mods: list[nn.Module]):
        super().__init__(mods)
        self.mods = mods

    def __call__(self, src: _Source, scale: torch.Tensor | None = None) -> torch.Tensor:
        return torch.cat([mod(src.h) for mod in self.mods], 1)


# The batched form of each op class; an op class without one runs edge by edge.
BATCHED: dict[type, type[_Batched]] = {
    SepConv: _SepConv,
    DilConv: _DilConv,
    FactorizedReduce: _FactorizedReduce,
    Pool: _Pool,
    Identity: _Identity,
}


@dataclass
class _Step:
    group: OpGroup
    op: _Batched
    merged: bool = False  # its tail can run in the state's shared pointwise conv and BN
    merged_pw: list[torch.Tensor] | None = None  # on the first merged step: every tail's weights


def _merged_tails(steps: list[_Step], src: _Source, wv: Sequence[torch.Tensor], m: int,
                  C: int) -> torch.Tensor | None:
    """The ops of a state that end in a pointwise conv and BN, on every edge leaving it, with
    their tails in one grouped conv and one BN (same numbers: both act per edge and channel),
    which also applies the weights; returns their weighted sum, (B, m*C, H, W). wv[k]: (m*C,),
    op k's weight per channel."""
    tails = [st for st in steps if st.merged]
    if not tails:
        return None
    y = src.formatted(torch.cat([st.op.head(src) for st in tails], 1))
    pw = _cat(tails[0].merged_pw, src)
    scale = torch.cat([wv[st.group.k] for st in tails])
    z = _bn(F.conv2d(y, pw, groups=m * len(tails)), tails[0].op.tail_bn, scale)
    out = None
    for part in z.split(m * C, 1):  # (a sum over a new dim would lose the layout)
        out = part if out is None else out + part
    return out


def _prepare(cell: nn.Module, plan: CellPlan) -> list[tuple[list[_Step], list[_Step]]]:
    """Per state of the plan, its ops ready to run, twice: batched over the edges, and edge by
    edge (each op with weights once per edge; parameter-free ones still once for all).
    Parameter-free (shared) ops come last, so they can be added into the sum the others start."""
    steps = []
    for sp in plan.states:
        together, apart = [], []
        for g in sp.groups:
            mods = [cell._ops[sp.edges[p]]._ops[g.k] for p in g.positions]
            kind = BATCHED.get(type(mods[0]), _EdgeByEdge)
            together.append(_Step(g, kind(mods)))
            if kind.shared:
                apart.append(together[-1])
            else:
                apart += [_Step(OpGroup(g.k, (p,), False), kind([mod]))
                          for p, mod in zip(g.positions, mods)]
        tails = [st for st in together if st.group.full and isinstance(st.op, _PointwiseTail)]
        if len(tails) > 1 and len({st.op.tail_bn.eps for st in tails}) == 1:
            for st in tails:
                st.merged = True
            tails[0].merged_pw = [w for st in tails for w in st.op.tail_pw]
        steps.append((sorted(together, key=lambda st: st.op.shared),
                      sorted(apart, key=lambda st: st.op.shared)))
    return steps


# On the CPU, the edges leaving a state run batched while each one's input holds at most this
# many numbers: there the kernels' fixed costs dominate and one grouped call beats several; on
# larger maps oneDNN's grouped pointwise convolutions run slower than separate ones (the demo's
# maps are below it, the paper's above; docs/performance.md). Other devices always batch.
BATCH_MAX_ELEMENTS = 2 ** 17
# Batched ops' pointwise tails share one conv and BN per state on maps this small or smaller:
# there the calls saved outweigh the copy that joins the ops' outputs.
MERGE_MAX_ELEMENTS = 2 ** 15


def forward_cell(cell: nn.Module, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                 plan: CellPlan, weight_grads: bool = True) -> torch.Tensor:
    """The cell's output from its preprocessed inputs. weights: (edges, ops), activated.
    ``weight_grads=False``: the ops' weights get no gradient (an architecture step)."""
    if getattr(cell, "_prepared_for", None) is not plan:
        cell._prepared, cell._prepared_for = _prepare(cell, plan), plan
    fmt = memory_format_of(s1)
    C = cell._C
    # Row k, columns start*C .. (start+m)*C: op k's weight on each edge leaving a state,
    # repeated over its channels, in the layout of the batched outputs. Split by state, then by
    # op, in two calls per state: their backward is one join each, where slicing out each
    # (op, state) would fill and copy a zero tensor the size of all of them per slice.
    per_channel = weights.index_select(0, plan.order_on(weights.device)).t().repeat_interleave(C, dim=1)
    blocks = per_channel.split([len(sp.edges) * C for sp in plan.states], dim=1)
    states = [s0, s1]
    acc: list[torch.Tensor | None] = [None] * plan.nodes
    for sp, block, (batched, apart) in zip(plan.states, blocks, cell._prepared):
        rows = block.unbind(0)
        src = _Source(states[sp.state], fmt, weight_grads, cell._arena)
        m = len(sp.edges)
        h = src.h
        steps = batched if h.device.type != "cpu" or h.numel() <= BATCH_MAX_ELEMENTS else apart
        merge = h.numel() <= MERGE_MAX_ELEMENTS
        # (B, m*C, H, W): the sum over the ops computed on every edge
        together = _merged_tails(steps, src, rows, m, C) \
            if merge else None
        for st in steps:
            if st.merged and merge:
                continue
            g = st.group
            if g.full and st.op.scales:  # the op's BN applies the weights
                y = st.op(src, rows[g.k])
                together = y if together is None else together + y
                continue
            y = st.op(src)
            if g.full:
                wv = rows[g.k]
                if not st.op.shared:
                    wv = wv.view(1, m * C, 1, 1)
                    together = y * wv if together is None else torch.addcmul(together, y, wv)
                    continue
                if together is not None:  # one output for all: broadcast over the m edges
                    together = _add_shared(together, y, wv, m, C)
                    continue
            parts = [y] * len(g.positions) if st.op.shared else y.split(C, 1)
            for p, part in zip(g.positions, parts):
                i, w = sp.nodes[p], weights[sp.edges[p], g.k]
                acc[i] = part * w if acc[i] is None else torch.addcmul(acc[i], part, w)
        if together is not None:
            for i, part in zip(sp.nodes, together.split(C, 1)):
                acc[i] = part if acc[i] is None else acc[i] + part
        nxt = sp.state - 1  # node i's last input is state i + 1: its sum is complete
        if 0 <= nxt < plan.nodes:
            states.append(_finish(cell, nxt, acc[nxt], states[0]))
    return torch.cat(states[-plan.nodes:], dim=1)


def _add_shared(together: torch.Tensor, y: torch.Tensor, wv: torch.Tensor, m: int,
                C: int) -> torch.Tensor:
    """together + y on each of the m edges times its weights: together (B, m*C, H, W), y (B, C,
    H, W), wv (m*C,). Broadcast in the tensors' own layout, so that y's gradient (a sum over the
    edges) comes out in it too: a BN backward given a default-layout gradient for a
    channels-last input runs two to four times slower."""
    B, _, H, W = together.shape
    if memory_format_of(together) == torch.channels_last and memory_format_of(y) == torch.channels_last:
        out = torch.addcmul(together.permute(0, 2, 3, 1).view(B, H, W, m, C),
                            y.permute(0, 2, 3, 1).unsqueeze(3), wv.view(m, C))
        return out.view(B, H, W, m * C).permute(0, 3, 1, 2)
    return torch.addcmul(together.view(B, m, C, H, W), y.unsqueeze(1),
                         wv.view(1, m, C, 1, 1)).view(B, m * C, H, W)


def arena_order(cells: Sequence[nn.Module], plans: dict[str, CellPlan]) -> list[nn.Parameter]:
    """The cells' op weights in the order that makes what the fast path concatenates contiguous
    (per state: each op's lists, then the tails that share one conv, side by side), then any
    that the plans leave out (pruned ops)."""
    order: list[nn.Parameter] = []
    for cell in cells:
        plan = plans[cell.cell_type]
        if getattr(cell, "_prepared_for", None) is not plan:
            cell._prepared, cell._prepared_for = _prepare(cell, plan), plan
        for together, _ in cell._prepared:
            tails = []
            for st in together:
                lists = st.op.weight_lists()
                if st.merged:
                    lists, tails = lists[:-1], tails + [lists[-1]]
                order += [w for ws in lists for w in ws]
            order += [w for ws in tails for w in ws]
    seen = {id(p) for p in order}
    for cell in cells:
        order += [p for p in cell._ops.parameters() if id(p) not in seen]
    return order


def _finish(cell: nn.Module, i: int, acc: torch.Tensor | None, s0: torch.Tensor) -> torch.Tensor:
    if acc is None:  # every op of every incoming edge pruned
        acc = cell._zeros_like_edge(s0, 0)
    return cell._finish_node(i, acc)
