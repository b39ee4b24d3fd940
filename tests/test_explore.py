import numpy as np
import pandas as pd

from emotune import plots
from emotune.core.taxonomy import get_taxonomy
from emotune.stages import explore

GOEMOTIONS = get_taxonomy("goemotions")

FRAME = pd.DataFrame(
    {"text": ["a b", "c", "d e f"], "labels": [[0, 15], [27], [0]], "id": ["1", "2", "3"]}
)


def test_frequency_and_per_comment():
    freq = explore.label_frequency(FRAME, GOEMOTIONS)
    assert freq.iloc[0].to_dict() == {"label": "admiration", "comments": 2, "share %": 66.67}
    assert freq["comments"].sum() == 4
    per = explore.labels_per_comment(FRAME)
    assert per["labels per comment"].tolist() == [1, 2] and per["comments"].tolist() == [2, 1]


def test_cooccurrence_is_symmetric_with_counts_on_diagonal():
    co = explore.cooccurrence(FRAME, GOEMOTIONS)
    assert co.loc["admiration", "gratitude"] == 1 == co.loc["gratitude", "admiration"]
    assert co.loc["admiration", "admiration"] == 2
    assert explore.top_pairs(co, 1).iloc[0].tolist() == ["admiration", "gratitude", 1]


def test_length_summary_names_the_percentiles_it_computes():
    s = explore.length_summary(np.arange(1, 101))
    assert s.loc[0, "p10"] == 10 and s.loc[0, "p90"] == 90 and s.loc[0, "max"] == 100


def test_level_breakdown():
    ek = explore.level_breakdown(FRAME, "ekman")
    assert dict(zip(ek["label"], ek["comments"], strict=True))["joy"] == 2


def test_token_lengths():
    assert explore.token_lengths(["hello world", "hi"], "gpt-4o-mini").tolist()[1] == 1


def test_plots_return_titled_labelled_figures():
    co = explore.cooccurrence(FRAME, GOEMOTIONS)
    figs = [
        plots.plot_label_frequency(explore.label_frequency(FRAME, GOEMOTIONS), title="T"),
        plots.plot_labels_per_comment(explore.labels_per_comment(FRAME)),
        plots.plot_cooccurrence(co),
        plots.plot_token_lengths(np.array([1, 2, 3]), "m"),
        plots.plot_support_comparison(
            pd.DataFrame({"label": ["a"], "population %": [1.0], "sample %": [1.1]})
        ),
    ]
    for fig in figs:
        ax = fig.axes[0]
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    fig = plots.plot_level_breakdowns({"ekman": explore.level_breakdown(FRAME, "ekman")})
    assert fig._suptitle.get_text() and fig.axes[0].get_xlabel()


def test_label_counts_stay_readable_and_shapes_are_recognised():
    freq = pd.DataFrame(
        {"label": [f"l{i}" for i in range(200)], "comments": range(200, 0, -1), "share %": 0.0}
    )
    view = explore.readable_frequency(freq)
    assert len(view) == 40 and view["label"].iloc[0] == "l0" and view["label"].iloc[-1] == "l199"
    assert len(explore.readable_frequency(freq.head(2))) == 2
    assert explore.is_multi_label(FRAME) and not explore.is_multi_label(
        FRAME.assign(labels=[[0], [1], [2]])
    )
    assert (
        explore.coarser_levels("goemotions") == ["ekman", "sentiment"]
        and explore.coarser_levels("ekman") == []
    )


def test_token_histograms_bin_whole_numbers_and_draw_each_file_as_an_outline():
    lengths = np.array([5, 6, 6, 7, 11, 16, 16, 21, 40] * 20)
    fig = plots.plot_token_lengths(lengths, "m")
    edges = sorted({round(p.get_x(), 6) for p in fig.axes[0].patches})
    assert edges and all(
        abs(e - round(e) - 0.5) < 1e-6 or abs(e - round(e) + 0.5) < 1e-6 for e in edges
    )
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert sum(h > 0 for h in heights) == len(set(lengths[lengths <= np.quantile(lengths, 0.99)]))
    fig = plots.plot_token_distribution({"train": lengths, "val": lengths[:30]}, "m")
    ax = fig.axes[0]
    assert all(not p.get_fill() for p in ax.patches)  # outlines: overlapping files mix no colour
    assert [t.get_text().split(" ")[0] for t in ax.get_legend().get_texts()] == ["train", "val"]
