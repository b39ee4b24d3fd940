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


def test_emotune_run_echoes_a_headless_kernels_progress_on_the_console(
    monkeypatch, tmp_path, capsys
):
    """The kernel copies each redraw to a progress file; the runner shows its newest line while the notebook
    runs."""
    from emotune.series import _echo

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    progress, shown = tmp_path / ".04_finetune.progress", []
    with config.headless_kernels(progress), _echo(progress, shown.append, every_s=0.05):
        assert config.progress_file() == progress
        bar = progress_bar(30, "training steps", "step")
        for _ in range(30):
            bar.update(1)
            bar.set_postfix(train_loss="0.512", refresh=False)
        bar.close()  # the runner shows the final frame when the notebook ends, whatever its polling found
    assert (
        config.progress_file() is None and not progress.exists()
    )  # the setting and the file end with the run
    assert shown and "30/30" in shown[-1] and "train_loss=0.512" in shown[-1]
    assert (
        "30/30" in capsys.readouterr().err.split("\r")[-1]
    )  # the notebook's own output is unchanged
