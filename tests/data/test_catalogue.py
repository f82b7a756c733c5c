"""The dataset catalogue: every required dataset is registered, with official sources."""

from __future__ import annotations

import pytest

from recscale.data import catalogue
from recscale.data.specs import Published
from recscale.errors import RecscaleError

REQUIRED = {
    "ml-1m",
    "ml-1m-sasrec",
    "ml-100k",
    "ml-20m",
    "amazon-books",
    "amazon-beauty",
    "amazon-toys",
    "lastfm",
    "amazon-videogames",
    "amazon-beauty-bert4rec",
}


def test_registry_has_the_datasets():
    listed = {d["name"]: d for d in catalogue.list_datasets()}
    assert set(listed) >= REQUIRED
    assert listed["ml-1m-sasrec"]["interactions"] == 999_611 and listed["ml-1m"]["users"] == 6_040
    assert listed["amazon-books"]["users"] is None  # not published
    assert catalogue.get_spec("ml-20m").published == Published(138_493, 26_744, 20_000_263)
    assert catalogue.get_spec("amazon-books").recipe["kcore_mode"] == "single_pass"
    with pytest.raises(RecscaleError, match=r"unknown dataset 'nope'; known: .*ml-1m-sasrec"):
        catalogue.get_spec("nope")


def test_every_file_has_an_official_url():
    for name in catalogue.DATASETS:
        for f in catalogue.get_spec(name).files:
            assert f.url and f.url.startswith("http"), name


def test_dataset_names_come_from_the_registry():
    assert catalogue.dataset_names() == catalogue.DATASETS.names()
    assert set(catalogue.dataset_names()) >= REQUIRED


def test_side_files_are_pinned_in_the_mirror():
    side = [
        catalogue.ML1M_MOVIES,
        catalogue.ML1M_SASREC_ITEMS,
        catalogue.ML100K_ITEMS,
        catalogue.ML100K_GENRES,
        *catalogue.S3REC_ATTRIBUTES.values(),
    ]
    for f in side:
        assert f.role == "side" and all(copy.sha256 for copy in f.mirror), f
