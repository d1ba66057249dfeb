"""Fig. 5's curvature for the paper's ReLU MLP, written out instead of differentiated.

The same numbers as ``curvature.tg_h2_dense`` (tests hold the two together to float64
round-off), for ``Linear -> ReLU -> Linear -> ReLU -> Linear`` with one output and the
mean-squared error. Automatic differentiation spends most of its time there moving
tangents of every parameter through every point; written out, the same matrices are a few
matrix products (the README has the timings of both).

Why it is short: with the ReLU masks fixed, the output of one point is trilinear in the
three layers,

    f = w^T D2 B a1~ + b3,   a1~ = [D1 A x~; 1],   x~ = [x; 1],   A = [W1 b1],  B = [W2 b2],

so its Hessian F has only cross-layer blocks and its third derivative is one constant
tensor. For the task loss L_i = mean_k (f_k - y_k)^2 over K points, with J_k = grad f_k:

    H_i    = 2/K sum_k  J_k J_k^T + r_k F_k
    T_i[v] = 2/K sum_k  (F_k v) J_k^T + J_k (F_k v)^T + (J_k . v) F_k + r_k D^3 f_k[v]

Every matrix of the form sum_k w_k F_k or sum_k w_k D^3 f_k[v] is one ``_Points.cross`` below.
Parameters are ordered here as (A, B, w, b3), each row-major; eigenvalues and Frobenius
norms do not depend on the order, and ``torch_order`` maps back to ``torch``'s flat order.
"""

from __future__ import annotations

import torch
from torch import nn

from . import curvature


def applies(model: nn.Module) -> bool:
    """Whether ``model`` is the MLP this module writes out (the paper's sinusoid network is)."""
    kinds = [type(m) for m in model] if isinstance(model, nn.Sequential) else []
    return (kinds == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
            and model[4].out_features == 1)


def tg_h2(model: nn.Module, params: dict, xs: torch.Tensor, ys: torch.Tensor, k: int = 2) -> dict:
    """``curvature.tg_h2_dense`` for this MLP: spectra and norms of T g, H^2, T g + H^2, batch and per task."""
    m = matrices(model, params, xs, ys)
    return {"batch": curvature.summary(m["Tg"], m["H"] @ m["H"], k),
            "per_task": curvature.summary(m["ETg"], m["EH2"], k)}


def matrices(model: nn.Module, params: dict, xs: torch.Tensor, ys: torch.Tensor) -> dict:
    """H, T g (batch gradient g), E[H_i^2] and E[T_i g_i] over the tasks of ``xs, ys`` (tasks x K x in),
    float64, in this module's parameter order."""
    if not applies(model):
        raise ValueError("curvature_mlp handles Linear-ReLU-Linear-ReLU-Linear with one output only")
    n, K = xs.shape[:2]
    net = _Points(params, xs.reshape(n * K, -1), ys.reshape(n * K))
    J, r = net.J, net.r
    task_J = J.reshape(n, K, -1)
    g_tasks = (2 / K) * (r.reshape(n, K, 1) * task_J).sum(1)
    g = g_tasks.mean(0)
    scale = 2 / (n * K)
    H = scale * (J.T @ J + net.dense(net.cross(r, net.a1)))

    def T_of(v):  # mean over tasks of T_i[v_i]; v is one direction per point
        P = net.F_times(v)
        cross = net.cross((J * v).sum(1), net.a1) + net.cross(r, net.a1_along(v), W2=net.part(v, "W2"),
                                                                w=net.part(v, "w"))
        PJ = P.T @ J
        return scale * (PJ + PJ.T + net.dense(cross))

    Tg = T_of(g.expand(n * K, -1))
    ETg = T_of(g_tasks.repeat_interleave(K, 0))
    EH2 = _mean_task_h_squared(net, n, K)
    return {"H": H, "Tg": Tg, "EH2": EH2, "ETg": ETg, "g": g}


def torch_order(params: dict) -> torch.Tensor:
    """Index ``perm`` with ``M_torch = M[perm][:, perm]`` for ``M`` in this module's order."""
    h1, p0 = params["0.weight"].shape
    h2 = params["2.weight"].shape[0]
    d = h1 * (p0 + 1) + h2 * (h1 + 1) + h2 + 1
    A = torch.arange(h1 * (p0 + 1)).reshape(h1, p0 + 1)
    B = h1 * (p0 + 1) + torch.arange(h2 * (h1 + 1)).reshape(h2, h1 + 1)
    c = h1 * (p0 + 1) + h2 * (h1 + 1) + torch.arange(h2 + 1)
    perm = torch.cat([A[:, :p0].reshape(-1), A[:, p0], B[:, :h1].reshape(-1), B[:, h1], c])
    assert perm.numel() == d
    return perm


class _Points:
    """Forward quantities of every point (N of them), the Jacobian J (N x d), and the two
    structured products the formulas need: F_k v and sums of cross-layer matrices."""

    def __init__(self, params, x, y):
        p = {k: v.detach().double() for k, v in params.items()}
        self.W1, self.b1, self.W2, self.b2 = p["0.weight"], p["0.bias"], p["2.weight"], p["2.bias"]
        self.w, self.b3 = p["4.weight"].reshape(-1), p["4.bias"].reshape(())
        N = x.shape[0]
        ones = torch.ones(N, 1, dtype=torch.float64)
        self.x = torch.cat([x.double(), ones], 1)                       # x~ (N x p)
        u = self.x @ torch.cat([self.W1, self.b1[:, None]], 1).T
        self.D1 = (u > 0).double()                                      # ReLU'(0) = 0, as torch
        self.a1 = torch.cat([self.D1 * u, ones], 1)                     # a1~ (N x h1+1)
        z = self.a1 @ torch.cat([self.W2, self.b2[:, None]], 1).T
        self.D2 = (z > 0).double()
        a2 = torch.cat([self.D2 * z, ones], 1)
        self.r = a2 @ torch.cat([self.w, self.b3[None]]) - y.double()
        self.h1, self.h2, self.p = self.W1.shape[0], self.W2.shape[0], self.x.shape[1]
        self.sizes = {"A": self.h1 * self.p, "B": self.h2 * (self.h1 + 1)}
        beta = self.D2 * self.w                                         # df/dz
        gamma = self.D1 * (beta @ self.W2)                              # df/du
        self.J = torch.cat([_outer(gamma, self.x), _outer(beta, self.a1), a2], 1)
        self.d = self.J.shape[1]
        oB, oc = self.sizes["A"], self.sizes["A"] + self.sizes["B"]
        self.idx_R = torch.cat([torch.arange(oB), torch.arange(oc, self.d)])  # A, then w and b3
        self.idx_B = torch.arange(oB, oc)

    def part(self, v, name):
        """Block ``name`` of per-point directions v (N x d): A, B (as matrices), W2, w."""
        oA, oB = self.sizes["A"], self.sizes["A"] + self.sizes["B"]
        if name == "A":
            return v[:, :oA].reshape(-1, self.h1, self.p)
        if name == "B":
            return v[:, oA:oB].reshape(-1, self.h2, self.h1 + 1)
        if name == "W2":
            return self.part(v, "B")[:, :, :self.h1]
        return v[:, oB:oB + self.h2]                                    # "w"

    def a1_along(self, v):
        """d a1~ along A-direction v: [D1 (vA x~); 0]."""
        vAx = torch.einsum("npq,nq->np", self.part(v, "A"), self.x)
        return torch.cat([self.D1 * vAx, torch.zeros_like(vAx[:, :1])], 1)

    def F_times(self, v):
        """Rows F_k v_k (N x d): Hessian of each point's output times its direction."""
        vB, vW2, vw = self.part(v, "B"), self.part(v, "W2"), self.part(v, "w")
        da1 = self.a1_along(v)
        Fw = self.D2 * (torch.einsum("njm,nm->nj", vB, self.a1) + da1[:, :-1] @ self.W2.T)
        FB = _outer(self.D2 * vw, self.a1) + _outer(self.D2 * self.w, da1)
        FA = _outer(self.D1 * ((self.D2 * vw) @ self.W2 + torch.einsum("njp,nj->np", vW2, self.D2 * self.w)), self.x)
        return torch.cat([FA, FB, Fw, torch.zeros_like(Fw[:, :1])], 1)

    def cross(self, weight, a1, W2=None, w=None, groups: int | None = None):
        """Sum over points of weight_k times the symmetric cross-layer matrix with entries

            [w_j, B_jm] = D2_j a1_m,  [w_j, A_pq] = D2_j W2_jp D1_p x_q,  [B_jm, A_pq] = w_j D2_j [m=p] D1_p x_q

        (F_k itself for a1 = a1~, W2, w the network's; D^3 f_k[v] for a1 = d a1~[v], W2 = vW2, w = vw).
        It has no (B, B) block, so its columns ``idx_R`` (the A and output-layer ones, 121 of 1,761
        for the paper's MLP) hold all of it: this returns that slab, d x |R| (``dense`` expands it).
        ``groups`` splits the points into that many consecutive groups (tasks): one slab each
        (a leading axis).
        """
        W2 = self.W2 if W2 is None else W2
        w = self.w if w is None else w
        G, h1, h2, p = groups or 1, self.h1, self.h2, self.p
        g = lambda t: t.reshape(G, -1, *t.shape[1:])
        wD2 = g(weight[:, None] * self.D2)
        Q = torch.einsum("gkj,gkm->gjm", wD2, g(a1))
        base = torch.einsum("gkj,gkp,gkq->gkjpq", wD2, g(self.D1), g(self.x))
        R = torch.einsum("gkjpq,gkjp->gjpq", base, g(W2.expand(weight.shape[0], h2, h1))).reshape(G, h2, h1 * p)
        U = torch.einsum("gkjpq,gkj->gjpq", base, g(w.expand(weight.shape[0], h2)))
        oA, oB, oc = self.sizes["A"], self.sizes["A"] + self.sizes["B"], self.d - h2 - 1
        C = torch.zeros(G, self.d, oA + h2 + 1, dtype=torch.float64)
        C[:, :oA, oA:oA + h2] = R.transpose(1, 2)                              # [A_pq, w_j]
        C[:, oc:oc + h2, :oA] = R                                              # [w_j, A_pq]
        BA = C[:, oA:oB, :oA].unflatten(1, (h2, h1 + 1)).unflatten(3, (h1, p))[:, :, :h1]
        torch.diagonal(BA, dim1=2, dim2=3).copy_(U.transpose(2, 3))            # [B_jm, A_pq], m = p
        Bw = C[:, oA:oB, oA:oA + h2].unflatten(1, (h2, h1 + 1))
        torch.diagonal(Bw, dim1=1, dim2=3).copy_(Q.transpose(1, 2))            # [B_jm, w_j]
        return C if groups else C[0]

    def dense(self, C):
        """The d x d matrix whose columns R are the slab ``C`` (and rows R its transpose; (B, B) = 0)."""
        R, B = self.idx_R, self.idx_B
        M = torch.zeros(self.d, self.d, dtype=torch.float64)
        M[:, R] = C
        M[R[:, None], B[None, :]] = C[B].T
        return M


def _mean_task_h_squared(net: _Points, n: int, K: int) -> torch.Tensor:
    """E[H_i^2] without the n dense d x d products (1 TFLOP for the paper's MLP).

    H_i = 2/K (J_i^T J_i + S_i), S_i = sum_k r_k F_k with slab C_i = S_i[:, R]; since S_i has no
    (B, B) block, S_i^2 = C_i C_i^T + (C_i[B]^T C_i[B] on R x R) and J_i S_i = J_i[:, R] C_i^T
    + (J_i[:, B] C_i[B] in columns R).
    """
    d, R, B = net.d, net.idx_R, net.idx_B
    C = net.cross(net.r, net.a1, groups=n)                                   # n x d x |R|
    J = net.J.reshape(n, K, d)
    Z = torch.bmm(J[:, :, R], C.transpose(1, 2))
    Z[:, :, R] += torch.bmm(J[:, :, B], C[:, B])                              # J_i S_i
    Y = torch.bmm(torch.bmm(J, J.transpose(1, 2)), J) + Z                     # J_i (J_i^T J_i + S_i)
    Jf, Yf, Zf = (t.reshape(-1, d) for t in (J, Y, Z))
    Cf = C.transpose(0, 1).reshape(d, -1)
    acc = Jf.T @ Yf + Zf.T @ Jf + Cf @ Cf.T
    CB = C[:, B]
    acc[R[:, None], R[None, :]] += torch.einsum("nbr,nbs->rs", CB, CB)
    return acc * (2 / K) ** 2 / n


def _outer(a, b):
    return (a[:, :, None] * b[:, None, :]).reshape(a.shape[0], -1)
