"""Progress bars: text that ends at its final count when headless, off under TQDM_DISABLE."""

from __future__ import annotations

from emotune.core import config
from emotune.core.progress import progress_bar


def test_a_headless_bar_is_text_and_its_last_frame_is_the_final_count(monkeypatch, capsys):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    with config.headless_kernels():
        assert config.headless()
        bar = progress_bar(40, "requests", "req")
        for _ in range(40):
            bar.update(1)
        bar.close()
    assert not config.headless()
    last = capsys.readouterr().err.split("\r")[-1]
    assert "40/40" in last and "100%" in last


def test_tqdm_disable_turns_bars_off(monkeypatch, capsys):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    with config.headless_kernels():
        bar = progress_bar(5, "requests", "req")
        bar.update(5)
        bar.close()
    assert capsys.readouterr().err == ""
