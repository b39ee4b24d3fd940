import pytest

from emotune import ConfigError, get_taxonomy
from emotune.core.taxonomy import Taxonomy, map_labels, register_taxonomy

GOEMOTIONS, EKMAN, SENTIMENT = (get_taxonomy(n) for n in ("goemotions", "ekman", "sentiment"))


def test_goemotions_labels_match_release_order(mirror):
    assert GOEMOTIONS.labels == tuple((mirror / "emotions.txt").read_text().split("\n"))
    assert (
        len(GOEMOTIONS) == 28
        and "embarrassment" in GOEMOTIONS.labels
        and "embarassment" not in GOEMOTIONS.labels
    )


def test_coarse_levels():
    assert EKMAN.labels == ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")
    assert SENTIMENT.labels == ("positive", "negative", "ambiguous", "neutral")
    # every base label belongs to exactly one group at each level
    for level in (EKMAN, SENTIMENT):
        members = [m for lab in level.labels for m in level.base_members(lab)]
        assert sorted(members) == sorted(GOEMOTIONS.labels)


def test_map_labels_down_and_across():
    assert map_labels(["annoyance", "grief", "neutral"], "goemotions", "ekman") == [
        "anger",
        "sadness",
        "neutral",
    ]
    assert map_labels(["curiosity", "admiration"], "goemotions", "sentiment") == [
        "positive",
        "ambiguous",
    ]
    assert map_labels(["joy", "surprise", "anger"], "ekman", "sentiment") == [
        "positive",
        "negative",
        "ambiguous",
    ]
    assert map_labels(["joy", "joy"], "goemotions", "goemotions") == ["joy"]


def test_round_trip_every_label_to_each_level_is_consistent():
    for label in GOEMOTIONS.labels:
        ekman = map_labels([label], GOEMOTIONS, EKMAN)
        assert map_labels(ekman, EKMAN, SENTIMENT) == map_labels([label], GOEMOTIONS, SENTIMENT)


def test_mapping_towards_a_finer_level_is_an_error():
    with pytest.raises(ConfigError, match="maps to"):
        map_labels(["negative"], "sentiment", "ekman")
    with pytest.raises(ConfigError, match="not a goemotions label"):
        map_labels(["happy"], "goemotions", "ekman")


def test_normalise_forgives_case_spacing_and_misspellings():
    assert GOEMOTIONS.normalise("  Embarassment ") == "embarrassment"
    assert GOEMOTIONS.normalise("JOY") == "joy"
    assert GOEMOTIONS.normalise("happy") is None


def test_another_dataset_plugs_in():
    spam = register_taxonomy(Taxonomy("spam", ("spam", "ham")))
    assert get_taxonomy("spam") is spam and spam.index("ham") == 1
    with pytest.raises(ConfigError, match="unknown taxonomy"):
        get_taxonomy("nope")
    with pytest.raises(ConfigError, match="do not share"):
        map_labels(["spam"], "spam", "ekman")


def test_label_sets_from_data_record_and_levels():
    from emotune.core.errors import ConfigError
    from emotune.core.taxonomy import Taxonomy, from_labels, get_taxonomy, levels_of, resolve_level

    GOEMOTIONS = get_taxonomy("goemotions")

    tickets = from_labels("tickets_t", ["billing", "bug"], multi_label=False, item="support ticket")
    assert tickets.multi_label is False and GOEMOTIONS.multi_label is True
    assert Taxonomy.from_record(tickets.to_record()) == tickets
    with pytest.raises(ConfigError, match="at least two"):
        from_labels("one", ["bug"], multi_label=False)
    assert levels_of("goemotions") == ["goemotions", "ekman", "sentiment"]
    assert resolve_level("goemotions", "ekman").name == "ekman"
    assert (
        resolve_level(tickets, "goemotions") is tickets
    )  # the series default means "the dataset's own labels"
    assert resolve_level(tickets, "") is tickets
    with pytest.raises(ConfigError, match="not a level"):
        resolve_level(tickets, "sentiment")
    assert tickets.normalise("BUG") == "bug"
