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
