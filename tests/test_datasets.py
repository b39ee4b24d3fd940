"""Your own data: every file format and label shape, the splits, the drops, and each error case (offline)."""

import json

import pandas as pd
import pytest

from emotune import ConfigError, DataError, Run, label_set, record_dataset
from emotune.core.datasets import DatasetParams, catalogue_spec, resolve_spec
from emotune.stages import data
from emotune.stages.sampling import make_samples


def params(dataset: str, **strings: str) -> DatasetParams:
    """The dataset parameters as a notebook gets them from papermill: strings, parsed once."""
    return DatasetParams.from_parameters({"dataset": dataset, **strings})


CATS = ["billing", "bug", "login"]


def tickets(n=60):
    """n support tickets, one category each, the category named in the text."""
    return pd.DataFrame(
        {
            "body": [f"ticket {i} about {CATS[i % 3]}" for i in range(n)],
            "category": [CATS[i % 3] for i in range(n)],
        }
    )


def write(frame, path):
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_single_label_strings_in_every_format(tmp_path, suffix):
    path = write(tickets(), tmp_path / f"tickets{suffix}")
    loaded = data.load(params(str(path), text_column="body", label_column="category"))
    assert loaded.taxonomy.name == "tickets" and loaded.taxonomy.labels == tuple(CATS)
    assert loaded.taxonomy.multi_label is False
    sizes = loaded.split_sizes()
    assert sum(sizes.values()) == 60 and sizes["validation"] == sizes["test"] == 6
    assert set(loaded.made_splits) == {"validation", "test"}
    assert data.to_frame(loaded.dataset["train"])["labels"].map(len).eq(1).all()


def test_integer_ids_with_names_param_file_and_error(tmp_path):
    frame = tickets().assign(category=[i % 3 for i in range(60)])
    path = write(frame, tmp_path / "ids.csv")
    loaded = data.load(
        params(
            str(path), text_column="body", label_column="category", label_names="billing,bug,login"
        )
    )
    assert loaded.taxonomy.labels == tuple(CATS)
    names = tmp_path / "names.txt"
    names.write_text("billing\nbug\nlogin\n")
    assert data.load(
        params(str(path), text_column="body", label_column="category", label_names=str(names))
    ).taxonomy.labels == tuple(CATS)
    with pytest.raises(DataError, match="label_names") as info:
        data.load(params(str(path), text_column="body", label_column="category"))
    assert info.value.rule == "label-names-missing"
    with pytest.raises(DataError) as info:
        data.load(
            params(
                str(path), text_column="body", label_column="category", label_names="billing,bug"
            )
        )
    assert info.value.rule == "label-out-of-range" and "ids.csv:4" in str(info.value)


def test_label_outside_label_names_names_file_and_row(tmp_path):
    path = write(tickets(), tmp_path / "t.csv")
    with pytest.raises(DataError) as info:
        data.load(
            params(
                str(path), text_column="body", label_column="category", label_names="billing,bug"
            )
        )
    assert (
        info.value.rule == "label-unknown"
        and "t.csv:4:" in str(info.value)
        and "'login'" in str(info.value)
    )


def test_multi_label_lists_delimited_and_one_hot(tmp_path):
    frame = tickets()
    lists = [[c] + (["urgent"] if i % 4 == 0 else []) for i, c in enumerate(frame["category"])]
    jl = write(frame.assign(tags=lists).drop(columns="category"), tmp_path / "lists.jsonl")
    a = data.load(params(str(jl), text_column="body", label_column="tags"))
    assert a.taxonomy.multi_label and a.taxonomy.labels == ("billing", "bug", "login", "urgent")
    pq = write(frame.assign(tags=lists).drop(columns="category"), tmp_path / "lists.parquet")
    assert (
        data.load(params(str(pq), text_column="body", label_column="tags")).taxonomy.labels
        == a.taxonomy.labels
    )
    csv_json = write(frame.assign(tags=[json.dumps(x) for x in lists]), tmp_path / "jsonlist.csv")
    assert data.load(
        params(str(csv_json), text_column="body", label_column="tags")
    ).taxonomy.multi_label
    delim = write(frame.assign(tags=["|".join(x) for x in lists]), tmp_path / "delim.csv")
    b = data.load(params(str(delim), text_column="body", label_column="tags", label_separator="|"))
    assert b.taxonomy.labels == a.taxonomy.labels and b.taxonomy.multi_label
    hot = frame[["body"]].assign(
        **{c: [int(c in x) for x in lists] for c in ["billing", "bug", "login", "urgent"]}
    )
    c = data.load(
        params(
            str(write(hot, tmp_path / "hot.csv")),
            text_column="body",
            label_columns="billing,bug,login,urgent",
        )
    )
    assert c.taxonomy.labels == ("billing", "bug", "login", "urgent") and c.taxonomy.multi_label
    rows = data.to_frame(c.dataset["train"])["labels"].map(len)
    assert rows.max() == 2 and rows.min() == 1


def test_own_splits_dev_guessed_columns_drops_counted_and_recorded(tmp_path):
    folder = tmp_path / "tickets"
    folder.mkdir()
    train = pd.concat(
        [tickets(), pd.DataFrame({"body": ["", "no label here"], "category": ["bug", None]})]
    )
    write(train, folder / "train.csv")
    dev = pd.concat([tickets(12), pd.DataFrame({"body": ["a new kind"], "category": ["refund"]})])
    write(dev, folder / "dev.csv")
    write(tickets(12), folder / "test.csv")
    loaded = data.load(str(folder))  # "body" and "category" are obvious guesses
    assert (
        loaded.split_sizes() == {"train": 60, "validation": 12, "test": 12}
        and not loaded.made_splits
    )
    _, cleaning = data.clean(loaded)
    assert cleaning.dropped["train"] == {"empty text": 1, "missing labels": 1, "unknown label": 0}
    assert cleaning.dropped["validation"]["unknown label"] == 1  # "refund" never occurs in training
    run = Run(tmp_path / "run")
    record = record_dataset(run, loaded, cleaning)
    assert (
        record["name"] == "tickets"
        and record["multi_label"] is False
        and record["split_sizes"]["test"] == 12
    )
    assert run.manifest()["data"]["label_set"]["labels"] == CATS
    assert (
        label_set(run, "goemotions").name == "tickets"
    )  # the default level means the dataset's own labels
    with pytest.raises(ConfigError, match="not a level of dataset 'tickets'"):
        label_set(run, "ekman")
    samples = make_samples(
        data.clean(loaded)[0], n_train=30, n_validation=0, n_eval=0, seed=1, n_labels=3
    )
    assert [len(samples[k]) for k in ("train", "validation", "eval")] == [30, 12, 12]


def test_guess_fails_with_the_columns_listed(tmp_path):
    path = write(pd.DataFrame({"msg": ["a"] * 12, "kind": ["x", "y"] * 6}), tmp_path / "odd.csv")
    with pytest.raises(DataError, match="msg, kind") as info:
        data.load(str(path))
    assert info.value.rule == "column-missing" and "odd.csv" in str(info.value)
    with pytest.raises(DataError, match="no label column 'nope'.*msg, kind"):
        data.load(params(str(path), text_column="msg", label_column="nope"))


def test_bom_is_stripped_and_invalid_utf8_names_the_file(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(
        b"\xef\xbb\xbftext,label\n" + b"".join(f"t{i},{CATS[i % 3]}\n".encode() for i in range(30))
    )
    assert data.load(str(path)).taxonomy.labels == tuple(CATS)
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("text,label\ncaf\u00e9,bug\n".encode("latin-1"))
    with pytest.raises(DataError) as info:
        data.load(str(bad))
    assert info.value.rule == "encoding" and "latin1.csv:2" in str(info.value)


def test_unreadable_file(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError) as info:
        data.load(str(path))
    assert info.value.rule == "unreadable" and "broken.parquet" in str(info.value)


def test_mixed_single_and_multi_label_rows(tmp_path):
    path = tmp_path / "mixed.jsonl"
    rows = [{"text": f"t{i}", "labels": "bug" if i != 5 else ["bug", "login"]} for i in range(20)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError) as info:
        data.load(str(path))
    assert info.value.rule == "mixed-label-shapes" and "mixed.jsonl:6" in str(info.value)


def test_one_label_and_too_few_examples(tmp_path):
    one = write(
        pd.DataFrame({"text": [f"t{i}" for i in range(30)], "label": ["bug"] * 30}),
        tmp_path / "one.csv",
    )
    with pytest.raises(ConfigError, match="1 label"):
        data.load(str(one))
    few = write(tickets(30), tmp_path / "few.csv")
    dd, _ = data.clean(data.load(params(str(few), text_column="body", label_column="category")))
    with pytest.raises(DataError) as info:
        make_samples(dd, n_train=0, n_validation=0, n_eval=0, seed=0, n_labels=3)
    assert info.value.rule == "too-few-examples" and "at least 10" in str(info.value)


def test_hub_id_offline_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="could not load 'someone/tickets'.*network"):
        data.load("someone/tickets")


def test_spec_resolution_and_catalogue():
    spec = catalogue_spec("goemotions")
    assert spec.label_set == "goemotions" and spec.levels == ("ekman", "sentiment")
    assert spec.release["files"]["validation"] == "dev.tsv" and spec.hub["config"] == "simplified"
    with pytest.raises(ConfigError, match="neither a known dataset"):
        resolve_spec("no_such_thing.csv")
    with pytest.raises(ConfigError, match="not both"):
        params("someone/x", label_column="a", label_columns="b,c")


def test_a_file_named_like_a_builtin_level_does_not_replace_it(tmp_path):
    from emotune.core.taxonomy import get_taxonomy

    path = write(tickets(), tmp_path / "sentiment.csv")
    loaded = data.load(params(str(path), text_column="body", label_column="category"))
    assert (
        loaded.taxonomy.name == "sentiment-data" and "positive" in get_taxonomy("sentiment").labels
    )


def test_dataset_parameters_are_parsed_once_from_papermill_strings(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("billing\nbug\n\nlogin\n")
    parsed = DatasetParams.from_parameters(
        {
            "dataset": " tickets.csv ",
            "data_source": "",
            "text_column": "body",
            "label_columns": "a, b,c",
        }
        | {"label_column": "", "label_separator": "", "label_names": str(names), "seed": 7}
    )
    assert parsed == DatasetParams(
        "tickets.csv", text_column="body", label_columns=("a", "b", "c"), label_names=tuple(CATS)
    )
    assert DatasetParams.from_parameters({}) == DatasetParams()
    assert (
        DatasetParams.from_parameters(
            {"label_names": "x,y", "label_separator": " "}
        ).label_separator
        == " "
    )
    with pytest.raises(ConfigError, match="repeats a name"):
        DatasetParams.from_parameters({"label_names": "x,y,x"})
