import numpy as np
import pandas as pd
import pytest
from conftest import write_tsv

from emotune import ChecksumError, DataError
from emotune.core.datasets import catalogue_spec
from emotune.core.taxonomy import get_taxonomy
from emotune.stages import data, sampling

GOEMOTIONS = get_taxonomy("goemotions")

GOOD = {
    "train": ["I love it\t18\ta1", "meh\t27\ta2", "wow, thanks!\t15,26\ta3"],
    "validation": ["so sad\t25\tb1"],
    "test": ["why?\t7\tc1", "   \t27\tc2"],
}


def test_local_fixture_loads_as_datasetdict(tmp_path):
    loaded = data.load_local(write_tsv(tmp_path / "d", GOOD), verify=False)
    dd = loaded.dataset
    assert set(dd) == {"train", "validation", "test"}
    assert dd["train"].column_names == ["text", "labels", "id"]
    assert dd["train"][2] == {"text": "wow, thanks!", "labels": [15, 26], "id": "a3"}
    assert dd["train"].features["labels"].feature.names[18] == "love"
    assert loaded.split_sizes() == {"train": 3, "validation": 1, "test": 2}
    assert loaded.checksums["train.tsv"] == data.sha256_file(tmp_path / "d" / "train.tsv")


def test_env_var_chooses_the_local_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOTUNE_DATA_DIR", str(write_tsv(tmp_path / "d", GOOD)))
    assert data.load(verify=False).source == "local:d"


def test_checksum_mismatch_names_the_file(tmp_path):
    folder = write_tsv(tmp_path / "d", GOOD)
    with pytest.raises(ChecksumError, match=r"train\.tsv.*does not match the published"):
        data.load_local(folder, verify=True)


def test_quotes_and_na_survive(tmp_path):
    rows = dict(GOOD, train=['He said "NA" and left\t27\tq1', "NA\t27\tq2", 'a "quote\t27\tq3'])
    dd = data.load_local(write_tsv(tmp_path / "d", rows), verify=False).dataset
    assert dd["train"]["text"] == ['He said "NA" and left', "NA", 'a "quote']


@pytest.mark.parametrize(
    "line, rule",
    [
        ("only text", "columns"),
        ("text\t27\tid\textra", "columns"),
        ("text\t\tid", "labels-missing"),
        ("text\tjoy\tid", "label-not-integer"),
        ("text\t1.5\tid", "label-not-integer"),
        ("text\t28\tid", "label-out-of-range"),
        ("text\t-1\tid", "label-out-of-range"),
        ("text\t3\t ", "id-missing"),
    ],
)
def test_bad_rows_name_file_line_and_rule(tmp_path, line, rule):
    rows = dict(GOOD, validation=["fine\t1\tv1", line])
    with pytest.raises(DataError) as info:
        data.load_local(write_tsv(tmp_path / "d", rows), verify=False)
    err = info.value
    assert err.rule == rule and err.line == 2 and err.path.endswith("dev.tsv")
    assert "dev.tsv:2:" in str(err)


def test_missing_split_file(tmp_path):
    folder = write_tsv(tmp_path / "d", {"train": GOOD["train"], "validation": GOOD["validation"]})
    with pytest.raises(DataError, match="missing test.tsv"):
        data.load_local(folder, verify=False)


def test_no_local_data_and_no_network_gives_one_clear_message(monkeypatch):
    monkeypatch.delenv("EMOTUNE_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError) as info:
        data.load("goemotions")
    msg = str(info.value)
    assert "EMOTUNE_DATA_DIR" in msg and "network" in msg
    with pytest.raises(DataError) as info:
        data.load("no-such-org/no-such-dataset")
    assert "no-such-org/no-such-dataset" in str(info.value) and "network" in str(info.value)


def test_release_tsv_is_csv_quoted(tmp_path):
    rows = dict(
        GOOD,
        train=[
            '"Three words, no subtlety. ""Dude. Stop. Seriously."" "\t27\teetq9g0',
            "NA\t27\tq2",
        ],
    )
    dd = data.load_local(write_tsv(tmp_path / "d", rows), verify=False).dataset
    assert dd["train"]["text"] == ['Three words, no subtlety. "Dude. Stop. Seriously." ', "NA"]


def test_real_mirror_reads_quoted_comment_like_the_hub(train_frame):
    text = train_frame.loc[train_frame["id"] == "eetq9g0", "text"].tolist()
    assert text == ['Three words, no subtlety. "Dude. Stop. Seriously." ']


def test_clean_drops_empty_and_reports_cross_split_ids(tmp_path):
    rows = dict(GOOD, test=["why?\t7\ta1", "   \t27\tc2"])
    dd = data.load_local(write_tsv(tmp_path / "d", rows), verify=False).dataset
    cleaned, report = data.clean(dd)
    assert report.dropped_empty == {"train": 0, "validation": 0, "test": 1}
    assert report.duplicate_ids_across_splits == ["a1"]
    assert len(cleaned["test"]) == 1


def test_real_mirror_checksums_and_sizes(loaded_mirror):
    assert loaded_mirror.split_sizes() == {"train": 43410, "validation": 5426, "test": 5427}
    for name, digest in catalogue_spec("goemotions").release["sha256"].items():
        if name in loaded_mirror.checksums:
            assert loaded_mirror.checksums[name] == digest


@pytest.fixture(scope="module")
def train_frame(loaded_mirror):
    return data.to_frame(loaded_mirror.dataset["train"])


def test_sampling_is_deterministic_and_seed_dependent(train_frame):
    a = sampling.stratified_sample(train_frame, 1000, seed=1, n_labels=28)
    b = sampling.stratified_sample(train_frame, 1000, seed=1, n_labels=28)
    c = sampling.stratified_sample(train_frame, 1000, seed=2, n_labels=28)
    assert len(a) == 1000 and a["id"].tolist() == b["id"].tolist()
    assert set(a["id"]) != set(c["id"])
    assert a["id"].is_unique


def test_balanced_sampling_evens_out_the_labels_and_is_seeded(train_frame):
    a = sampling.balanced_sample(train_frame, 300, seed=3, n_labels=28)
    b = sampling.balanced_sample(train_frame, 300, seed=3, n_labels=28)
    assert len(a) == 300 and a["id"].is_unique and a["id"].tolist() == b["id"].tolist()
    rows = sampling.multi_hot(a["labels"].tolist(), 28).sum(axis=0)
    quota = -(-300 // 28)  # 11: every label of GoEmotions has more rows than that
    assert rows.min() >= quota and rows[27] <= 3 * quota  # neutral (27): 33 of 300, not a third
    stratified = sampling.stratified_sample(train_frame, 300, seed=3, n_labels=28)
    assert sampling.multi_hot(stratified["labels"].tolist(), 28).sum(axis=0)[27] > 80
    # only the training sample is balanced; an unknown way is refused by name
    with pytest.raises(DataError, match="train_sampling='even'"):
        sampling._train_sample(train_frame, 30, seed=0, n_labels=28, how="even")


def test_balanced_sampling_takes_all_of_a_rare_label_and_fills_up_at_random():
    frame = pd.DataFrame(
        {"text": [f"t{i}" for i in range(40)], "labels": [[0]] * 2 + [[1]] * 38, "id": range(40)}
    )
    sample = sampling.balanced_sample(frame, 20, seed=0, n_labels=2)
    labels = sampling.multi_hot(sample["labels"].tolist(), 2).sum(axis=0)
    assert len(sample) == 20 and labels[0] == 2 and labels[1] == 18


def test_sampling_keeps_label_shares_within_tolerance(train_frame):
    sample = sampling.stratified_sample(train_frame, 1000, seed=7, n_labels=28)
    table = sampling.support_table(train_frame, sample, GOEMOTIONS)
    # Stated tolerance: every label's share within 0.75 percentage points of the population's.
    assert table["difference (pp)"].abs().max() <= 0.75
    # every label present in the population is present in the sample
    assert (table.loc[table["population %"] > 0, "sample %"] > 0).all()


def test_sampling_keeps_rare_labels_present():
    # 200 rows; label 2 appears on 3 rows only; a 20-row sample must still hold it.
    labels = [[0]] * 120 + [[1]] * 77 + [[2]] * 3
    frame = pd.DataFrame(
        {
            "text": [f"t{i}" for i in range(200)],
            "labels": labels,
            "id": [f"i{i}" for i in range(200)],
        }
    )
    for seed in range(5):
        sample = sampling.stratified_sample(frame, 20, seed=seed, n_labels=3)
        assert any(2 in ids for ids in sample["labels"])


def test_sample_size_errors():
    frame = pd.DataFrame({"text": ["a"], "labels": [[0]], "id": ["1"]})
    with pytest.raises(DataError, match="cannot sample 2 rows from 1"):
        sampling.stratified_sample(frame, 2, seed=0, n_labels=1)


def test_multi_hot():
    assert np.array_equal(sampling.multi_hot([[0, 2], [1]], 3), np.array([[1, 0, 1], [0, 1, 0]]))


def test_seed_tutorial_texts_match_the_mirror(seed_tutorial, loaded_mirror):
    import json

    texts = {t for split in loaded_mirror.dataset.values() for t in split["text"]}
    users = [
        next(
            m["content"] for m in json.loads(line)["messages"] if m["role"] == "user"
        ).removeprefix("Label the emotion of this comment: ")
        for name in ("training_data.jsonl", "validation_data.jsonl")
        for line in (seed_tutorial / name).read_text("utf-8").splitlines()
        if line.strip()
    ]
    assert len(users) == 900 and all(u in texts for u in users)


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_a_data_file_that_is_not_a_regular_file_is_refused_before_any_read(tmp_path, kind):
    import os

    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "dev.csv").write_text("text,label\\nhello,a\\n")
    target = folder / "train.csv"
    if kind == "fifo":
        os.mkfifo(target)  # reading it would block forever
    elif kind == "device":
        target.symlink_to("/dev/zero")  # reading it would never end
    else:
        target.mkdir()
    with pytest.raises(DataError, match="not a regular file"):
        data.load(str(folder))
