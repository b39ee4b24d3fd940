"""Progress bars for long work, one rule for every stage.

An interactive notebook gets tqdm's live widget. A notebook executed headless (``emotune run`` sets
``EMOTUNE_HEADLESS``) gets a text bar that redraws every few seconds: a widget there would be saved
as its first frame, a bar stuck at 0%, while the text bar's last redraw is what the saved output
shows; under ``emotune run`` each redraw is also appended to a progress file that the runner echoes
to the console (training steps, loss, ETA and evaluation requests, live). A console gets the text
bar too. ``TQDM_DISABLE=1`` (CI, the committed notebooks) turns bars off everywhere.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .config import headless, progress_disabled, progress_file


class _CopiedToFile:
    """The notebook's stderr, with every write also appended to the console's progress file."""

    def __init__(self, path):
        self.path = path

    def write(self, text: str) -> int:
        sys.stderr.write(text)
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(text)
        except OSError:
            pass  # the console copy is a courtesy; the notebook's own output is what counts
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()


def progress_bar(total: int, desc: str, unit: str, *, enabled: bool = True, initial: int = 0):
    """A tqdm bar suited to where the code runs (see the module docstring)."""
    disable = not enabled or progress_disabled()
    if headless():
        from tqdm import tqdm

        copy = progress_file()
        return tqdm(
            total=total,
            desc=desc,
            unit=unit,
            initial=initial,
            disable=disable,
            mininterval=5.0,
            file=_CopiedToFile(copy) if copy else sys.stderr,
        )
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=disable)


def newest_line(path: Path, tail_bytes: int = 4096) -> str:
    """The newest non-empty line of a console copy (a bar's redraws end in ``\\r``), or ""."""
    try:
        with open(path, "rb") as f:
            f.seek(max(f.seek(0, 2) - tail_bytes, 0))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [part.strip() for part in text.replace("\r", "\n").split("\n") if part.strip()]
    return lines[-1] if lines else ""


@contextmanager
def following(path: Path, on_line: Callable[[str], None], every_s: float = 2.0) -> Iterator[None]:
    """While the block runs, pass the newest line of ``path`` to ``on_line`` whenever it changed
    (checked every ``every_s`` seconds, and once more at the end)."""
    stop, shown = threading.Event(), [""]

    def newest() -> None:
        line = newest_line(path)
        if line and line != shown[0]:
            shown[0] = line
            on_line(line)

    def follow() -> None:
        while not stop.wait(every_s):
            newest()

    thread = threading.Thread(target=follow, name="emotune-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        newest()
