import numpy as np
import pytest

from agefair.data.labels import ETHNICITIES, GENDERS, ParsedName, age_bin, age_bin_index, age_bin_labels, parse_name

EDGES = [0, 10, 20, 30, 40, 50, 60, 70]


def test_parse_strict():
    assert parse_name("25_1_3_20170119184110103.jpg.chip.jpg") == ParsedName(25, 1, 3, "20170119184110103", False)
    p = parse_name("116_0_4_20170112213001988.jpg.chip.jpg")
    assert (p.age, p.gender, p.race, p.irregular) == (116, 0, 4, False)


@pytest.mark.parametrize("name, fields", [
    ("24_0_1_20170116220224657 .jpg.chip.jpg", (24, 0, 1, "20170116220224657")),  # space before .jpg
    ("55_0_0_20170116232725357jpg.chip.jpg", (55, 0, 0, "20170116232725357")),  # missing dot
])
def test_parse_irregular(name, fields):
    p = parse_name(name)
    assert p is not None
    assert (p.age, p.gender, p.race, p.timestamp) == fields
    assert p.irregular is True


@pytest.mark.parametrize("name", [
    "39_1_20170116174525125.jpg.chip.jpg",  # race missing
    "61_1_20170109142408075.jpg.chip.jpg",
    "a_1_2_20170109142408075.jpg.chip.jpg",
    "25_1_3_20170119184110103.jpg",  # not the chip suffix
    "25_1_3_20170119184110103.png.chip.jpg",
    "25__3_20170119184110103.jpg.chip.jpg",
    "",
    "readme.txt",
    "25_1_3_20170119184110103.jpg.chip.jpg.bak",
])
def test_parse_malformed(name):
    assert parse_name(name) is None


def test_category_names():
    assert GENDERS == {0: "male", 1: "female"}
    assert sorted(ETHNICITIES) == [0, 1, 2, 3, 4]


def test_age_bin_labels():
    assert age_bin_labels([0, 10, 70]) == ["0-9", "10-69", "70+"]
    assert age_bin_labels(EDGES) == ["0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"]


@pytest.mark.parametrize("age, label", [
    (0, "0-9"), (9, "0-9"), (9.7, "0-9"), (9.999, "0-9"), (10, "10-19"), (19.5, "10-19"), (20, "20-29"),
    (69, "60-69"), (69.9, "60-69"), (70, "70+"), (116, "70+"), (150, "70+"),
])
def test_age_bin_edges(age, label):
    assert list(age_bin([age], EDGES)) == [label]


def test_age_bin_vectorised():
    ages = np.array([9, 10, 70, 116, 9.7])
    assert list(age_bin(ages, EDGES)) == ["0-9", "10-19", "70+", "70+", "0-9"]
    assert list(age_bin_index(ages, EDGES)) == [0, 1, 7, 7, 0]
