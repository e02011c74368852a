"""The benchmark's Markdown table: one row per mode."""
import os
from typing import List, Sequence

__all__ = ['TABLE_HEADER', 'md_row', 'roofline_line']

TABLE_HEADER = (
    '| config | B | shape | mode | A ms | B ms | B / A | A MB | B MB |\n'
    '|---|---|---|---|---|---|---|---|---|')


def md_row(config: str, b_label: str, shape: Sequence[int], mode: str,
           entry: dict) -> str:
    """One Markdown table row of a mode's results (``-`` where absent)."""

    def cell(name, key, fmt):
        return format(entry[name][key], fmt) if (
            name in entry and key in entry[name]) else '-'

    ratio = format(entry['ratio_b_over_a'],
                   '.2f') if 'ratio_b_over_a' in entry else '-'
    return (f'| {os.path.basename(config)} | {b_label} | '
            f'{"x".join(map(str, shape))} | {mode} | '
            f'{cell("A", "median_ms", ".1f")} | '
            f'{cell("B", "median_ms", ".1f")} | {ratio} | '
            f'{cell("A", "peak_mb", ".0f")} | {cell("B", "peak_mb", ".0f")} |')


def roofline_line(entry: dict) -> List[str]:
    """Lines saying each model's eval GFLOP/s and share of the GEMM roof."""
    roof = entry.get('roof')
    if not roof:
        return []
    lines = [f'fp32 GEMM roof ({roof["size"]}^3 torch.mm, same threads, '
             f'same rounds): {roof["gflops_per_s"]:.1f} GFLOP/s median, '
             f'{roof["best_gflops_per_s"]:.1f} best round']
    for name in ('A', 'B'):
        if name in entry and 'gflops_per_s' in entry[name]:
            got = entry[name]
            lines.append(
                f'eval {name}: {got["gflop"]:.2f} GFLOP (2 x conv + linear '
                f'MACs) at {got["gflops_per_s"]:.1f} GFLOP/s = '
                f'{got["roof_fraction"]:.0%} of the roof (medians; best '
                f'rounds: {got["best_roof_fraction"]:.0%})')
    return lines
