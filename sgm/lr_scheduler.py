"""Learning-rate multipliers per optimizer step, for torch.optim.lr_scheduler.LambdaLR (sgm layout)."""
import bisect
import itertools
from typing import List, Sequence, Union

Number = Union[int, float]


def _per_cycle(name: str, value: Union[Number, Sequence[Number]], n_cycles: int) -> List[float]:
    values = [value] * n_cycles if isinstance(value, (int, float)) else list(value)
    if len(values) != n_cycles:
        raise ValueError(f"{name} has {len(values)} entries but cycle_lengths has {n_cycles}; give one per cycle")
    return [float(v) for v in values]


class LambdaLinearScheduler:
    """Linear warm-up from f_start to f_max over `warm_up_steps`, then linear decay from f_max
    towards f_min over the rest of the cycle; repeated per cycle. The learning rate is
    base_learning_rate * schedule(step).

    warm_up_steps: warm-up length of each cycle (a list, one per cycle, or one number for all).
    f_min, f_max, f_start: multipliers at the end of a cycle, after warm-up, and at its start.
    cycle_lengths: steps per cycle (sgm configs use one very long cycle, e.g. [10000000000000],
    which makes this a warm-up followed by a constant rate). verbosity_interval: unused, accepted
    for sgm configs. After the last cycle the multiplier stays at that cycle's f_min.
    """

    def __init__(self, warm_up_steps, f_min, f_max, f_start, cycle_lengths, verbosity_interval: int = 0):
        self.cycle_lengths = [int(c) for c in cycle_lengths]
        if not self.cycle_lengths or any(c <= 0 for c in self.cycle_lengths):
            raise ValueError(f"cycle_lengths must be a non-empty list of positive step counts, got {cycle_lengths}")
        n = len(self.cycle_lengths)
        self.warm_up_steps = [int(w) for w in _per_cycle("warm_up_steps", warm_up_steps, n)]
        self.f_min = _per_cycle("f_min", f_min, n)
        self.f_max = _per_cycle("f_max", f_max, n)
        self.f_start = _per_cycle("f_start", f_start, n)
        self.cum_cycles = [0] + list(itertools.accumulate(self.cycle_lengths))
        self.verbosity_interval = verbosity_interval
        self.last_f = self.f_start[0]

    def schedule(self, n: int) -> float:
        """The multiplier at optimizer step n (0-based)."""
        cycle = bisect.bisect_right(self.cum_cycles, n) - 1
        if cycle >= len(self.cycle_lengths):
            self.last_f = self.f_min[-1]
            return self.last_f
        n = n - self.cum_cycles[cycle]
        warm, length = self.warm_up_steps[cycle], self.cycle_lengths[cycle]
        if n < warm:
            f = self.f_start[cycle] + (self.f_max[cycle] - self.f_start[cycle]) * n / warm
        else:
            f = self.f_min[cycle] + (self.f_max[cycle] - self.f_min[cycle]) * (length - n) / length
        self.last_f = f
        return f

    __call__ = schedule
