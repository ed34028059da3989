"""Hand traces of the Opytimizer 2.1.4 update rules for heft-search's tests.

A plain NumPy reimplementation, written from the rules documented in
crates/heft-search/src/algorithms/*.rs, of PSO, RPSO, GA, DE, BA and FA on
a 4-variable sphere in [-1, 1]^4, with every random draw taken from a fixed
generator and recorded. It prints Rust constants: the draws, in the order
the algorithm makes them, and the population and best fitness after every
scored batch. tests/traces.rs replays the draws through a scripted random
source and compares.

Run: python3 tools/search_traces.py > crates/heft-search/tests/traces/data.rs
"""

import numpy as np

LB, UB, D = -1.0, 1.0, 4


def sphere(x):
    return float(np.sum(x * x))


class Script:
    """Draws from a seeded generator and records each draw for the Rust test."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.draws = []

    def u(self):
        v = float(np.round(self.rng.uniform(), 6))
        self.draws.append(f"U({v!r})")
        return v

    def n(self):
        v = float(np.round(self.rng.normal(), 6))
        self.draws.append(f"N({v!r})")
        return v

    def below(self, k):
        v = int(self.rng.integers(0, k))
        self.draws.append(f"B({v})")
        return v


class Trace:
    def __init__(self, name, seed, p):
        self.name, self.s, self.p = name, Script(seed), p
        self.steps = []
        self.pos = np.array([[LB + self.s.u() * (UB - LB) for _ in range(D)] for _ in range(p)])
        self.best = np.zeros(D)
        self.best_fit = np.inf

    def offer(self, x, f):
        if f < self.best_fit:
            self.best, self.best_fit = x.copy(), f

    def record(self):
        self.steps.append((self.pos.copy(), self.best_fit))

    def emit(self):
        up = self.name.upper()
        print(f"pub const {up}_DRAWS: &[Draw] = &[{', '.join(self.s.draws)}];")
        print(f"pub const {up}_STEPS: &[(&[f64], f64)] = &[")
        for pos, best in self.steps:
            vals = ", ".join(repr(float(v)) for v in pos.ravel())
            print(f"    (&[{vals}], {float(best)!r}),")
        print("];")


def pso(relativistic):
    t = Trace("rpso" if relativistic else "pso", 11 if relativistic else 10, 3)
    s, p = t.s, t.p
    mass = np.array([[s.u() for _ in range(D)] for _ in range(p)]) if relativistic else None
    vel = np.ones((p, D)) if relativistic else np.zeros((p, D))
    pbest, pfit = t.pos.copy(), np.full(p, np.inf)

    def evaluate():
        for i in range(p):
            f = sphere(t.pos[i])
            if f < pfit[i]:
                pfit[i], pbest[i] = f, t.pos[i].copy()
            t.offer(pbest[i], pfit[i])
        t.record()

    evaluate()
    for _ in range(2):
        g = t.best.copy()
        vmax = np.max(vel)
        gamma = 1.0 / np.sqrt(1.0 - vmax**2 / 3e5**2)
        for i in range(p):
            r1, r2 = s.u(), s.u()
            inertia = mass[i] * gamma if relativistic else 0.7
            vel[i] = inertia * vel[i] + 1.7 * r1 * (pbest[i] - t.pos[i]) + 1.7 * r2 * (g - t.pos[i])
            t.pos[i] = np.clip(t.pos[i] + vel[i], LB, UB)
        evaluate()
    t.emit()


def ga():
    t = Trace("ga", 12, 3)
    s, p = t.s, t.p
    fit = np.array([sphere(x) for x in t.pos])
    for i in range(p):
        t.offer(t.pos[i], fit[i])
    t.record()
    k = int(p * 0.75)
    k += k % 2
    for _ in range(2):
        f = fit + 1e-32
        inv = np.max(f) - f + 1e-32
        probs = inv / inv.sum()
        # NumPy 1.x choice(p, k, p=probs, replace=False), with recorded draws.
        found = []
        pr = probs.copy()
        while len(found) < k:
            x = np.array([s.u() for _ in range(k - len(found))])
            if found:
                pr[found] = 0
            cdf = np.cumsum(pr)
            cdf /= cdf[-1]
            new = cdf.searchsorted(x, side="right")
            _, idx = np.unique(new, return_index=True)
            found.extend(int(v) for v in new[np.sort(idx)])
        children = []
        for a, b in zip(found[0::2], found[1::2]):
            ca, cb = t.pos[a].copy(), t.pos[b].copy()
            if s.u() < 0.5:
                beta = s.u()
                ca = beta * t.pos[a] + (1 - beta) * t.pos[b]
                cb = beta * t.pos[b] + (1 - beta) * t.pos[a]
            for j in range(D):
                if s.u() < 0.25:
                    ca[j] *= s.n()
                if s.u() < 0.25:
                    cb[j] *= s.n()
            children += [np.clip(ca, LB, UB), np.clip(cb, LB, UB)]
        child_fit = [sphere(c) for c in children]
        merged = sorted(
            [(fit[i], t.pos[i]) for i in range(p)] + list(zip(child_fit, children)),
            key=lambda e: e[0],
        )[:p]
        t.pos = np.array([m[1] for m in merged])
        t.record()
        fit = np.array([sphere(x) for x in t.pos])
        for i in range(p):
            t.offer(t.pos[i], fit[i])
        t.record()
    t.emit()


def de():
    t = Trace("de", 13, 4)
    s, p = t.s, t.p
    fit = np.array([sphere(x) for x in t.pos])
    for i in range(p):
        t.offer(t.pos[i], fit[i])
    t.record()
    for _ in range(2):
        for i in range(p):
            others = [j for j in range(p) if j != i]
            for kk in range(3):
                pick = kk + s.below(len(others) - kk)
                others[kk], others[pick] = others[pick], others[kk]
            a, b, c = others[:3]
            forced = s.below(D)
            trial = t.pos[i].copy()
            for j in range(D):
                if s.u() < 0.9 or j == forced:
                    trial[j] = t.pos[a][j] + 0.7 * (t.pos[b][j] - t.pos[c][j])
            trial = np.clip(trial, LB, UB)
            ft = sphere(trial)
            if ft < fit[i]:
                t.pos[i], fit[i] = trial, ft
            t.record()
        fit = np.array([sphere(x) for x in t.pos])
        for i in range(p):
            t.offer(t.pos[i], fit[i])
        t.record()
    t.emit()


def ba():
    t = Trace("ba", 14, 3)
    s, p = t.s, t.p
    for _ in range(p):
        s.u()  # initial frequencies, never used
    loud = np.array([0.5 * s.u() for _ in range(p)])
    pulse = np.array([0.5 * s.u() for _ in range(p)])
    vel = np.zeros((p, D))
    fit = np.array([sphere(x) for x in t.pos])
    for i in range(p):
        t.offer(t.pos[i], fit[i])
    t.record()
    for it in range(2):
        g, gfit = t.best.copy(), t.best_fit
        for i in range(p):
            f = 0.0 + (0.0 - 2.0) * s.u()
            vel[i] = vel[i] + (t.pos[i] - g) * f
            t.pos[i] = t.pos[i] + vel[i]
            pr, e = s.u(), s.n()
            if pr > pulse[i]:
                t.pos[i] = g + 0.001 * e * np.mean(loud)
            t.pos[i] = np.clip(t.pos[i], LB, UB)
            fit[i] = sphere(t.pos[i])
            if pr < loud[i] and fit[i] < gfit:
                g, gfit = t.pos[i].copy(), fit[i]
                pulse[i] = 0.5 * (1 - np.exp(-0.9 * it))
                loud[i] = 0.5 * 0.9
            t.record()
        fit = np.array([sphere(x) for x in t.pos])
        for i in range(p):
            t.offer(t.pos[i], fit[i])
        t.record()
    t.emit()


def fa():
    t = Trace("fa", 15, 3)
    s, p = t.s, t.p
    alpha = 0.5
    fit = np.array([sphere(x) for x in t.pos])
    for i in range(p):
        t.offer(t.pos[i], fit[i])
    t.record()
    for _ in range(2):
        delta = 1 - (1e-3 / 0.9) ** (1 / 15)
        alpha *= 1 - delta
        snap = t.pos.copy()
        for i in range(p):
            for k in range(p):
                if fit[i] > fit[k]:
                    r = np.linalg.norm(t.pos[i] - snap[k]) ** 2
                    beta = 0.2 * np.exp(-1.0 * r)
                    t.pos[i] = beta * (snap[k] + t.pos[i]) + alpha * (s.u() - 0.5)
        t.pos = np.clip(t.pos, LB, UB)
        fit = np.array([sphere(x) for x in t.pos])
        for i in range(p):
            t.offer(t.pos[i], fit[i])
        t.record()
    t.emit()


if __name__ == "__main__":
    print("// Generated by tools/search_traces.py; do not edit by hand.")
    print("use super::{B, N, U};")
    print("use heft_search::rng::Draw;")
    pso(False)
    pso(True)
    ga()
    de()
    ba()
    fa()
