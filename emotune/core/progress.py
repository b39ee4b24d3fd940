"""Progress bars for long work, one rule for every stage.

An interactive notebook gets tqdm's live widget. A notebook executed headless (``emotune run`` sets
``EMOTUNE_HEADLESS``) gets a text bar that redraws every few seconds: a widget there would be saved as its
first frame, a bar stuck at 0%, while the text bar's last redraw is what the saved output shows. A console
gets the text bar too. ``TQDM_DISABLE=1`` (CI, the committed notebooks) turns bars off everywhere.
"""

from __future__ import annotations

import sys

from .config import headless, progress_disabled


def progress_bar(total: int, desc: str, unit: str, *, enabled: bool = True, initial: int = 0):
    """A tqdm bar suited to where the code runs (see the module docstring)."""
    disable = not enabled or progress_disabled()
    if headless():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=disable, file=sys.stderr, mininterval=5.0)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=disable)
