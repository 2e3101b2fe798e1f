"""The benchmarks table: one home for each benchmark's facts, and the prompt wording read from it."""

from __future__ import annotations

import pytest

from moeclip_hf.benchmarks import BENCHMARKS, PAPER_BENCHMARKS, find_class, get_benchmark, matching_benchmark
from moeclip_hf.data import ROUTES
from moeclip_hf.modeling.prompts import dataset_domain, describe, is_known_class


def test_the_table_holds_the_paper_fourteen_then_the_peers_seven_and_every_one_has_routes_and_sources():
    assert PAPER_BENCHMARKS == (
        "mvtec", "visa", "btad", "rsdd", "dtd", "brain_mri", "liver_ct", "retina_oct", "head_ct",
        "colondb", "clinicdb", "cvc300", "kvasir", "endo",
    )  # fmt: skip
    assert list(BENCHMARKS)[14:] == ["mpdd", "sdd", "dagm", "isic", "tn3k", "br35h", "brainmri_kaggle"]
    assert set(ROUTES) == set(BENCHMARKS)
    for name, entry in BENCHMARKS.items():
        assert entry.sources, name
        assert entry.expected_counts is None or set(entry.expected_counts) == set(entry.classes), name


def test_expected_counts_are_the_paper_totals():
    """METHOD.md, "The 14 benchmarks": (normal, anomalous) over all classes of the test split."""
    totals = {
        "mvtec": (467, 1258), "visa": (962, 1200), "btad": (451, 290), "rsdd": (387, 387), "dtd": (357, 947),
        "brain_mri": (640, 3075), "head_ct": (100, 100), "liver_ct": (833, 660), "retina_oct": (1041, 764),
        "colondb": (0, 380), "clinicdb": (0, 612), "cvc300": (0, 60), "endo": (0, 200), "kvasir": (0, 1000),
    }  # fmt: skip
    for name, total in totals.items():
        counts = BENCHMARKS[name].expected_counts.values()
        assert (sum(n for n, _ in counts), sum(a for _, a in counts)) == total, name
    assert len(BENCHMARKS["mvtec"].classes) == 15 and len(BENCHMARKS["visa"].classes) == 12
    assert len(BENCHMARKS["dtd"].classes) == 8  # the released protocol: the five Woven folders are one class


def test_domains_follow_method_md():
    industrial = {name for name, entry in BENCHMARKS.items() if entry.domain == "industrial"}
    assert industrial == {"mvtec", "visa", "btad", "rsdd", "dtd", "mpdd", "sdd", "dagm"}
    assert dataset_domain("Brain_MRI") == "medical" and dataset_domain("mvtec") == "industrial"
    with pytest.raises(ValueError, match="unknown benchmark 'space'"):
        dataset_domain("space")


@pytest.mark.parametrize(
    ("released", "description", "domain"),
    [
        ("Brain", "scan", "medical"),
        ("Liver", "scan", "medical"),
        ("Retina", "scan", "medical"),
        ("headct", "scan", "medical"),
        ("Colon_colonDB", "colon endoscopy image", "medical"),
        ("Colon_clinicDB", "colon endoscopy image", "medical"),
        ("CVC-300", "colon endoscopy image", "medical"),
        ("Kvasir", "colon endoscopy image", "medical"),
        ("Endo", "polyp", "medical"),
        ("RSDD", "metal", "industrial"),
        ("Woven", "Woven", "industrial"),
        ("Woven_125", "Woven", "industrial"),
        ("01", "bright concentric rings in neon yellow and blue tones against a dark blue background", "industrial"),
        ("metal_nut", "metal nut which has four notched edges", "industrial"),
        ("pipe_fryum", "pipe-shaped fryum", "industrial"),
    ],
)
def test_the_released_class_names_resolve_to_their_benchmark_description_and_domain(released, description, domain):
    entry, _ = find_class(released)
    assert (describe(released), entry.domain) == (description, domain)
    assert is_known_class(released)


def test_no_name_resolves_to_two_different_prompts():
    """Class names and aliases shared by benchmarks must agree, so the lookup order never changes a prompt."""
    seen: dict[str, tuple[str, str, str]] = {}
    for entry in BENCHMARKS.values():
        for name in (*entry.classes, *entry.aliases):
            wording = (entry.describe(name), entry.domain)
            previous = seen.setdefault(name.casefold(), (*wording, entry.name))
            assert previous[:2] == wording, f"{name!r}: {entry.name} says {wording}, {previous[2]} says {previous[:2]}"


def test_peers_class_names_and_descriptions():
    assert describe("skin") == "skin" and find_class("skin")[0].name == "isic"
    assert describe("thyroid") == "thyroid" and find_class("ISIC2016")[0].name == "isic"
    assert describe("br35h") == "brain" and describe("brainmri_kaggle") == "brain"
    assert describe("SDD") == "electrical commutators" and describe("electrical commutators", "sdd") == "electrical commutators"
    assert describe("Class7") == "Class7" and find_class("class7")[0].name == "dagm"
    assert describe("connector") == "metal clamps with black adjustment knobs"
    assert get_benchmark("mpdd").domain == "industrial" and get_benchmark("tn3k").domain == "medical"


def test_free_text_and_empty_names():
    assert describe("my_part") == "my part" and not is_known_class("my part")
    assert describe("  ") == "object" and not is_known_class("")


def test_the_released_wording_differs_only_where_method_md_says():
    differing = {
        (name, class_name): entry.describe(class_name, released=True)
        for name, entry in BENCHMARKS.items()
        for class_name in entry.classes
        if entry.describe(class_name, released=True) != entry.describe(class_name)
    }
    assert differing == {
        ("mvtec", "capsule"): "black asd orange capsule",
        ("btad", "01"): "Bright concentric rings in neon yellow and blue tones against a dark blue background, "
        "resembling a stylized wave or energy field radiating outward.",
    }
    assert describe("capsule", "mvtec", released=True) == "black asd orange capsule"


def test_matching_benchmark_needs_the_complete_class_set():
    assert matching_benchmark(BENCHMARKS["mvtec"].classes).name == "mvtec"
    assert matching_benchmark(["Brain"]).name == "brain_mri"
    released_dtd = ["Blotchy", "Fibrous", "Marbled", "Matted", "Mesh", "Perforated", "Stratified", "Woven"]
    assert matching_benchmark(released_dtd).name == "dtd"
    assert matching_benchmark([*released_dtd[:-1], "Woven_001", "Woven_068"]) is None  # 9 folders, not 8 classes
    assert matching_benchmark(["bottle", "cable"]) is None
    assert matching_benchmark([*BENCHMARKS["mvtec"].classes, "stripes"]) is None
