"""Progress line and run summary of the feature extractor."""
import sys
import time
from dataclasses import dataclass
from typing import Optional, TextIO

__all__ = ['Progress', 'Summary']


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


@dataclass
class Summary:
    """Counts of one run (of one rank, or summed over ranks)."""
    done: int = 0
    skipped: int = 0
    failed: int = 0
    windows: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        rate = self.seconds if self.seconds > 0 else float('inf')
        return (f'done {self.done}, skipped {self.skipped} (already '
                f'extracted), failed {self.failed}; {self.windows} windows '
                f'in {self.seconds:.1f} s: {self.windows / rate:.2f} '
                f'windows/s, {self.done / rate:.3f} videos/s')


class Progress:
    """A one-line bar: videos, videos/s, windows/s, ETA.

    Rates count extracted videos only (skipped ones cost nothing), so the
    ETA is the remaining videos at the extraction rate. On a terminal the
    line is redrawn in place; otherwise a line is printed every
    ``log_interval`` seconds.

    Args:
        total (int): Videos to go through (skipped ones included).
        enabled (bool): Print anything (rank 0 only). Defaults to True.
        stream (TextIO, optional): Defaults to ``sys.stderr``.
        log_interval (float): Seconds between non-terminal lines.
            Defaults to 30.
    """

    def __init__(self,
                 total: int,
                 enabled: bool = True,
                 stream: Optional[TextIO] = None,
                 log_interval: float = 30.0) -> None:
        self.total = total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = 0.5 if self.tty else log_interval
        self.start = time.perf_counter()
        self.last = -float('inf')
        self.seen = self.extracted = self.windows = 0

    def update(self, videos: int = 0, skipped: int = 0,
               windows: int = 0) -> None:
        """Count finished (or failed) and skipped videos, and windows."""
        self.seen += videos + skipped
        self.extracted += videos
        self.windows += windows
        now = time.perf_counter()
        if now - self.last >= self.interval or self.seen == self.total:
            self.last = now
            self._draw(now)

    def line(self, now: Optional[float] = None) -> str:
        """The current progress text."""
        elapsed = max((now or time.perf_counter()) - self.start, 1e-9)
        vps = self.extracted / elapsed
        left = self.total - self.seen
        eta = _clock(left / vps) if vps > 0 else ('?' if left else
                                                   _clock(0))
        return (f'[{self.seen}/{self.total}] {vps:.2f} videos/s, '
                f'{self.windows / elapsed:.1f} windows/s, ETA {eta}')

    def _draw(self, now: float) -> None:
        if not self.enabled:
            return
        end = '' if self.tty else '\n'
        self.stream.write(('\r' if self.tty else '') + self.line(now) + end)
        self.stream.flush()

    def write(self, message: str) -> None:
        """Print a message line without breaking the bar."""
        if self.tty and self.enabled:
            self.stream.write('\r\033[K')
        self.stream.write(message + '\n')
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.enabled and self.tty:
            self.stream.write('\n')
            self.stream.flush()
