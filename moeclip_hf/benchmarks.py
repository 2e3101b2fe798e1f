"""The benchmarks table: every fact about a zero-shot anomaly detection benchmark, in one place.

One :class:`Benchmark` record per benchmark: its registry name, display name, domain (which picks the map
blur and the score fusion, METHOD.md "Outputs"), classes with their prompt descriptions (METHOD.md, "Class
descriptions"), the spellings other code writes for those classes (aliases), the test-split counts a
complete copy has, the paper's figures where it reports them, the sub-folders a download wraps the data in,
and where each folder layout it can be read from is documented (``sources``).

Prompts (``modeling.prompts``), the folder layouts (``data.layouts``), ``moeclip data check`` and the
evaluation tables all read this table; nothing else states these facts. The module imports nothing of the
package, so it can sit at the bottom of every import chain (and be copied into exported remote code).

It is 600 lines because it is a table: one record per benchmark takes about 400 of them.

Class names are matched case-insensitively, and through the aliases: the released code's metadata writes
``Brain``, ``headct``, ``Colon_clinicDB``, ``CVC-300``; AdaCLIP and AnomalyCLIP write ``ClinicDB``, ``skin``,
``thyroid``. An alias never resolves to two different (description, domain) pairs (a test holds this).

Facts that could not be confirmed against a copy of the data are marked so in ``sources``. The module is
long because it is data: one record per benchmark, each fact written once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

Domain = Literal["industrial", "medical"]
DOMAINS: tuple[str, ...] = ("industrial", "medical")

#: The per-class metrics of `moeclip evaluate`, image-level first: the keys of every results row, the column
#: order of every table (evaluation, model card, demo) and the keys of `Benchmark.paper`.
METRIC_NAMES: tuple[str, ...] = (
    "image_auroc",
    "image_ap",
    "image_f1_max",
    "pixel_auroc",
    "pixel_ap",
    "pixel_aupro",
    "pixel_f1_max",
)

#: The description sets a prompt can use (`MoECLIPConfig.class_descriptions`): the table's, or the released code's
#: strings verbatim where they differ (`Benchmark.released_descriptions`).
CLASS_DESCRIPTION_SETS: tuple[str, ...] = ("paper", "released")

#: The description used when no class name is given (METHOD.md: "object" is the class-agnostic fallback).
CLASS_AGNOSTIC_DESCRIPTION = "object"

#: The released repository whose metadata files (``dataset/metadata/<name>/full-shot.jsonl``) the counts,
#: class spellings and file layouts of the paper's 14 benchmarks were read from.
RELEASED = "CoCoRessa/MoECLIP@8783e5c"


@dataclass(frozen=True)
class Benchmark:
    """One benchmark's facts.

    Attributes:
        name: the registry key (``load_benchmark(name, ...)``, ``--dataset name``).
        display_name: how papers and tables name it.
        domain: ``"industrial"`` or ``"medical"``.
        descriptions: class -> prompt description, in the benchmark's class order. Single-class benchmarks
            have one entry.
        aliases: other spellings of a class (released metadata, peers' scripts, download folder names) ->
            the class. Matching is case-insensitive, so case variants need no entry.
        released_descriptions: the released code's description where it differs from ours (METHOD.md,
            "What the released code actually runs"); the released-code compatibility mode uses them verbatim.
        expected_counts: class -> (normal, anomalous) images of a complete test split, where known.
        pixel_labels: whether anomalous images come with masks (False: image labels only).
        download_folders: sub-folders that a download or a peer's copy wraps the data in; the layouts look
            into them when the root itself holds no known layout.
        sources: each folder layout the benchmark is read from, and where it is documented.
        paper: the paper's figures in percent (Tab. 1), keyed by metric name.
        in_paper: one of the paper's 14 benchmarks.
    """

    name: str
    display_name: str
    domain: Domain
    descriptions: Mapping[str, str]
    aliases: Mapping[str, str] = field(default_factory=dict)
    released_descriptions: Mapping[str, str] = field(default_factory=dict)
    expected_counts: Mapping[str, tuple[int, int]] | None = None
    pixel_labels: bool = True
    download_folders: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    paper: Mapping[str, float] | None = None
    in_paper: bool = True

    def __post_init__(self) -> None:
        unknown = {alias: target for alias, target in self.aliases.items() if target not in self.descriptions}
        if unknown:
            raise ValueError(f"{self.name}: aliases point at unknown classes: {unknown}")
        unknown_metrics = sorted(set(self.paper or ()) - set(METRIC_NAMES))
        if unknown_metrics:
            raise ValueError(f"{self.name}: paper figures for unknown metrics {unknown_metrics}")

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names, in the benchmark's order."""
        return tuple(self.descriptions)

    @property
    def single_class(self) -> str:
        """The class of a one-class benchmark (ValueError for a multi-class one)."""
        if len(self.descriptions) != 1:
            raise ValueError(f"{self.name} has {len(self.descriptions)} classes, not one")
        return next(iter(self.descriptions))

    def canonical(self, class_name: str) -> str | None:
        """The class `class_name` names here (itself, a case variant or an alias), or None."""
        return self._lookup.get(class_name.strip().casefold())

    def describe(self, class_name: str, released: bool = False) -> str:
        """The prompt description of one of this benchmark's classes (KeyError if it is not one).

        `released` gives the released code's string where it differs (MVTec ``capsule``, BTAD ``01``).
        """
        canonical = self.canonical(class_name)
        if canonical is None:
            raise KeyError(f"{class_name!r} is not a {self.name} class; classes: {list(self.classes)}")
        if released and canonical in self.released_descriptions:
            return self.released_descriptions[canonical]
        return self.descriptions[canonical]

    @cached_property
    def _lookup(self) -> dict[str, str]:
        """Case-folded class name or alias -> class (a frozen dataclass may cache: it never changes)."""
        table = {name.casefold(): name for name in self.descriptions}
        table.update({alias.casefold(): target for alias, target in self.aliases.items()})
        return table


_DTD_FOLDERS = (
    "Blotchy_099", "Fibrous_183", "Marbled_078", "Matted_069", "Mesh_114", "Perforated_037",
    "Stratified_154", "Woven_001", "Woven_068", "Woven_104", "Woven_125", "Woven_127",
)  # fmt: skip


def _family(folder: str) -> str:
    return folder.split("_", 1)[0]


_MVTEC_LAYOUT = "<class>/test/{good,<defect>}/<id>.png, masks <class>/ground_truth/<defect>/<id>_mask.png"
_BMAD_LAYOUT = "test/good/img/*.png, test/Ungood/img/*.png, masks test/Ungood/label/<same name>.png"
_POLYP_LAYOUT = "images/<name>, masks masks/<same name>"

#: Every benchmark, the paper's 14 first (METHOD.md, "The 14 benchmarks"), then peers' further ones.
BENCHMARKS: dict[str, Benchmark] = {
    entry.name: entry
    for entry in (
        Benchmark(
            name="mvtec",
            display_name="MVTec-AD",
            domain="industrial",
            descriptions={
                "bottle": "dark bottle",
                "cable": "top view of three cables",
                "capsule": "black and orange capsule",
                "carpet": "gray carpet",
                "grid": "metal or plastic mesh",
                "hazelnut": "single brown hazelnut",
                "leather": "brown leather",
                "metal_nut": "metal nut which has four notched edges",
                "pill": "oval white pill with small red speckles and the letters 'FF' engraved",
                "screw": "screw",
                "tile": "speckled tile surface",
                "transistor": "a three-legged transistor placed vertically",
                "toothbrush": "toothbrush head",
                "wood": "wood surface",
                "zipper": "a black zipper",
            },
            released_descriptions={"capsule": "black asd orange capsule"},
            expected_counts={
                "bottle": (20, 63), "cable": (58, 92), "capsule": (23, 109), "carpet": (28, 89),
                "grid": (21, 57), "hazelnut": (40, 70), "leather": (32, 92), "metal_nut": (22, 93),
                "pill": (26, 141), "screw": (41, 119), "tile": (33, 84), "toothbrush": (12, 30),
                "transistor": (60, 40), "wood": (19, 60), "zipper": (32, 119),
            },  # fmt: skip
            download_folders=("mvtec_anomaly_detection", "MVTec", "mvtec"),
            sources=(
                f"{_MVTEC_LAYOUT}: the MVTec-AD download (mvtec.com), anomalib data/datasets/image/mvtecad.py, "
                f"released metadata MVTec/full-shot.jsonl ({RELEASED})",
            ),
            paper={"image_auroc": 93.9, "image_ap": 96.8, "pixel_auroc": 92.5, "pixel_ap": 45.7},
        ),
        Benchmark(
            name="visa",
            display_name="VisA",
            domain="industrial",
            descriptions={
                "candle": "candle",
                "capsules": "capsules",
                "cashew": "cashew nut",
                "chewinggum": "chewing gum",
                "fryum": "wheel-shaped fryum snack",
                "macaroni1": "orange macaroni",
                "macaroni2": "scattered yellow macaroni",
                "pcb1": "dual ultrasonic distance sensor pcb module",
                "pcb2": "integrated circuits board",
                "pcb3": "infrared sensor pcb module",
                "pcb4": "battery charging pcb module",
                "pipe_fryum": "pipe-shaped fryum",
            },
            expected_counts={
                "candle": (100, 100), "capsules": (60, 100), "cashew": (50, 100), "chewinggum": (50, 100),
                "fryum": (50, 100), "macaroni1": (100, 100), "macaroni2": (100, 100), "pcb1": (100, 100),
                "pcb2": (100, 100), "pcb3": (101, 100), "pcb4": (101, 100), "pipe_fryum": (50, 100),
            },  # fmt: skip
            download_folders=("VisA_20220922", "VisA", "1cls", "visa_pytorch", "VisA_pytorch"),
            sources=(
                "split_csv/1cls.csv (object, split, label, image, mask) over <class>/Data/Images/{Normal,Anomaly}"
                "/*.JPG and <class>/Data/Masks/Anomaly/<id>.png: the VisA download (amazon-science/spot-diff "
                "README), AnomalyCLIP generate_dataset_json/visa.py",
                "<class>/test/{good,bad}/*.JPG, masks <class>/ground_truth/bad/<id>.png: the 1cls tree written "
                "by spot-diff utils/prepare_data.py (VisA_pytorch/1cls) and anomalib's visa_pytorch",
                "<class>/Data/Images/{Normal,Anomaly}, <class>/Data/Masks/Anomaly without split_csv (the tree the "
                f"released metadata VisA/full-shot.jsonl indexes, {RELEASED}): the 1cls split of the normal "
                "images cannot be recovered without the table, so every normal image is read as test",
            ),
            paper={"image_auroc": 83.6, "image_ap": 86.2, "pixel_auroc": 95.6, "pixel_ap": 26.1},
        ),
        Benchmark(
            name="btad",
            display_name="BTAD",
            domain="industrial",
            descriptions={
                "01": "bright concentric rings in neon yellow and blue tones against a dark blue background",
                "02": "vertical fabric lines in warm, dusty pink and beige tones",
                "03": "oval concentric circular rings in gradient shades of blue and white",
            },
            released_descriptions={
                "01": "Bright concentric rings in neon yellow and blue tones against a dark blue background, "
                "resembling a stylized wave or energy field radiating outward."
            },
            expected_counts={"01": (21, 49), "02": (30, 200), "03": (400, 41)},
            download_folders=("BTech_Dataset_transformed", "BTAD"),
            sources=(
                "<class>/test/{ok,ko}/*, masks <class>/ground_truth/ko/<same stem>.png|.bmp (01: BMP images, PNG "
                "masks; 02: PNG, PNG; 03: BMP, BMP): btad.zip (BTech_Dataset_transformed), AnomalyCLIP "
                f"generate_dataset_json/btad.py, released metadata BTAD/full-shot.jsonl ({RELEASED})",
            ),
        ),
        Benchmark(
            name="rsdd",
            display_name="RSDD",
            domain="industrial",
            descriptions={"rsdd": "metal"},
            aliases={"Metal15": "rsdd"},
            expected_counts={"rsdd": (387, 387)},
            download_folders=("Metal15", "rsdd"),
            sources=(
                "Metal15/test/{good,anomaly}/*.bmp, masks Metal15/ground_truth/anomaly/<same stem>.png: the "
                "cropped RSDD of Bayes-PFL (xiaozhen228/Bayes-PFL README, DATA_three.zip; its meta_RSDD.json) "
                f"that the released metadata RSDD/full-shot.jsonl indexes ({RELEASED}); the root may also be the "
                "Metal15 folder itself",
            ),
        ),
        Benchmark(
            name="dtd",
            display_name="DTD-Synthetic",
            domain="industrial",
            descriptions={family: family for family in dict.fromkeys(map(_family, _DTD_FOLDERS))},
            aliases={folder: _family(folder) for folder in _DTD_FOLDERS},
            expected_counts={
                "Blotchy": (20, 80), "Fibrous": (20, 80), "Marbled": (20, 80), "Matted": (20, 79),
                "Mesh": (36, 80), "Perforated": (20, 80), "Stratified": (20, 80), "Woven": (201, 388),
            },  # fmt: skip
            download_folders=("DTD-Synthetic",),
            sources=(
                f"{_MVTEC_LAYOUT} with 12 texture folders (Woven_001, ...): the DTD-Synthetic download "
                "(AnomalyCLIP README), AnomalyCLIP generate_dataset_json/DTD.py; the released metadata "
                f"DTD-Synthetic/full-shot.jsonl ({RELEASED}) pools the five Woven folders into one class, which "
                "is the default here (keep_folders=True reads the 12 folders as classes)",
            ),
        ),
        Benchmark(
            name="brain_mri",
            display_name="Brain MRI",
            domain="medical",
            descriptions={"brain": "scan"},
            expected_counts={"brain": (640, 3075)},
            download_folders=("Brain", "Brain_AD", "BraTS2021_slice"),
            sources=(
                f"{_BMAD_LAYOUT}: BMAD (anomalib data/datasets/image/bmad.py, category Brain), released "
                f"metadata Brain/full-shot.jsonl ({RELEASED})",
            ),
        ),
        Benchmark(
            name="liver_ct",
            display_name="Liver CT",
            domain="medical",
            descriptions={"liver": "scan"},
            expected_counts={"liver": (833, 660)},
            download_folders=("Liver", "Liver_AD"),
            sources=(
                f"{_BMAD_LAYOUT}: BMAD (anomalib bmad.py, category Liver), released metadata "
                f"Liver/full-shot.jsonl ({RELEASED})",
            ),
        ),
        Benchmark(
            name="retina_oct",
            display_name="Retina OCT",
            domain="medical",
            descriptions={"retina": "scan"},
            expected_counts={"retina": (1041, 764)},
            download_folders=("Retina", "Retina_RESC", "Retina_RESC_AD", "RESC"),
            sources=(
                f"{_BMAD_LAYOUT}: BMAD (anomalib bmad.py, category Retina_RESC), released metadata "
                f"Retina/full-shot.jsonl ({RELEASED})",
            ),
        ),
        Benchmark(
            name="head_ct",
            display_name="Head CT",
            domain="medical",
            descriptions={"head_ct": "scan"},
            aliases={"headct": "head_ct", "head ct": "head_ct"},
            expected_counts={"head_ct": (100, 100)},
            pixel_labels=False,
            download_folders=("headct", "head_ct", "HeadCT", "head ct"),
            sources=(
                "test/{good,defect}/<id>.png, image labels only: the released tree (released metadata "
                f"headct/full-shot.jsonl, {RELEASED}) and AdaCLIP's copy (HeadCT_anomaly_detection/headct, "
                "written by AdaCLIP data_preprocess/headct-pre.py)",
                "labels.csv (id, hemorrhage) beside head_ct/<id:03d>.png: the Kaggle download (head-ct-"
                "hemorrhage), as AdaCLIP data_preprocess/headct-pre.py reads it; the CSV's header names are "
                "not confirmed against a copy, so its first two columns are read as id and label",
                f"{_BMAD_LAYOUT} without masks: BMAD-style copies",
            ),
        ),
        Benchmark(
            name="colondb",
            display_name="CVC-ColonDB",
            domain="medical",
            descriptions={"colondb": "colon endoscopy image"},
            aliases={"Colon_colonDB": "colondb", "CVC-ColonDB": "colondb"},
            expected_counts={"colondb": (0, 380)},
            download_folders=("CVC-ColonDB", "Colon_colonDB", "ColonDB"),
            sources=(
                f"{_POLYP_LAYOUT} (PNG): the PraNet/AnomalyCLIP polyp test sets (AnomalyCLIP "
                f"generate_dataset_json/colonDB.py), released metadata Colon_colonDB/full-shot.jsonl ({RELEASED})",
                f"{_BMAD_LAYOUT}: BMAD-style copies",
            ),
        ),
        Benchmark(
            name="clinicdb",
            display_name="CVC-ClinicDB",
            domain="medical",
            descriptions={"clinicdb": "colon endoscopy image"},
            aliases={"Colon_clinicDB": "clinicdb", "CVC-ClinicDB": "clinicdb"},
            expected_counts={"clinicdb": (0, 612)},
            download_folders=("CVC-ClinicDB", "Colon_clinicDB", "ClinicDB", "PNG", "TIF"),
            sources=(
                f"{_POLYP_LAYOUT} (PNG): AnomalyCLIP generate_dataset_json/clinicDB.py, released metadata "
                f"Colon_clinicDB/full-shot.jsonl ({RELEASED})",
                "Original/<n>.tif with 'Ground Truth'/<n>.tif: CVC-ClinicDB as published, and its PNG copy "
                "(PNG/Original, PNG/Ground Truth) as Kaggle ships both",
                f"{_BMAD_LAYOUT}: BMAD-style copies",
            ),
        ),
        Benchmark(
            name="cvc300",
            display_name="CVC-300",
            domain="medical",
            descriptions={"cvc300": "colon endoscopy image"},
            aliases={"CVC-300": "cvc300", "Colon_cvc300": "cvc300"},
            expected_counts={"cvc300": (0, 60)},
            download_folders=("CVC-300", "Colon_cvc300"),
            sources=(
                f"{_POLYP_LAYOUT} (PNG): the PraNet test set CVC-300, released metadata "
                f"Colon_cvc300/full-shot.jsonl ({RELEASED})",
                f"{_BMAD_LAYOUT}: BMAD-style copies",
            ),
        ),
        Benchmark(
            name="kvasir",
            display_name="Kvasir-SEG",
            domain="medical",
            descriptions={"kvasir": "colon endoscopy image"},
            aliases={"Colon_Kvasir": "kvasir", "Kvasir-SEG": "kvasir"},
            expected_counts={"kvasir": (0, 1000)},
            download_folders=("Kvasir-SEG", "Kvasir", "Colon_Kvasir"),
            sources=(
                f"{_POLYP_LAYOUT}: released metadata Colon_Kvasir/full-shot.jsonl ({RELEASED}, PNG) and the "
                "Kvasir-SEG download (kvasir-seg.zip: Kvasir-SEG/images/*.jpg, Kvasir-SEG/masks/*.jpg), "
                "AnomalyCLIP generate_dataset_json/kvasir.py",
                f"{_BMAD_LAYOUT}: BMAD-style copies",
            ),
        ),
        Benchmark(
            name="endo",
            display_name="Endo",
            domain="medical",
            descriptions={"endo": "polyp"},
            aliases={"EndoTect": "endo"},
            expected_counts={"endo": (0, 200)},
            download_folders=("test dataset", "EndoTect_2020_Segmentation_Test_Dataset", "EndoTect", "Endo"),
            sources=(
                f"'test dataset'/{_POLYP_LAYOUT} (JPEG images and JPEG masks): the EndoTect 2020 segmentation "
                f"test set as the released metadata Endo/full-shot.jsonl indexes it ({RELEASED}), AnomalyCLIP "
                "generate_dataset_json/endoTect.py",
                f"{_BMAD_LAYOUT}: BMAD-style copies",
            ),
        ),
        # Benchmarks the paper does not report and peers (AnomalyCLIP, AdaCLIP, AA-CLIP, Bayes-PFL) do.
        Benchmark(
            name="mpdd",
            display_name="MPDD",
            domain="industrial",
            descriptions={
                "bracket_black": "black ornamental metal bracket with spiral design attached to a rectangular frame",
                "bracket_brown": "brown L-shaped metal bracket with smooth, glossy finish and multiple mounting "
                "holes along its arms",
                "bracket_white": "white, elongated triangular metal bracket with a smooth, matte finish",
                "connector": "metal clamps with black adjustment knobs",
                "metal_plate": "blue rectangular metal plate with a notch on one side",
                "tubes": "scattered metal objects",
            },
            expected_counts={
                "bracket_black": (32, 47), "bracket_brown": (26, 51), "bracket_white": (30, 30),
                "connector": (30, 14), "metal_plate": (26, 71), "tubes": (32, 69),
            },  # fmt: skip
            download_folders=("MPDD",),
            sources=(
                f"{_MVTEC_LAYOUT}: the MPDD download (stepanje/MPDD), anomalib data/datasets/image/mpdd.py, "
                "AdaCLIP data_preprocess/mpdd.py; descriptions and counts from AA-CLIP (Mwxinnn/AA-CLIP@53db195 "
                "dataset/constants.py and dataset/metadata/MPDD/full-shot.jsonl)",
            ),
            in_paper=False,
        ),
        Benchmark(
            name="sdd",
            display_name="KolektorSDD",
            domain="industrial",
            descriptions={"sdd": "electrical commutators"},
            aliases={"SDD": "sdd", "KolektorSDD": "sdd", "electrical commutators": "sdd"},
            download_folders=("KolektorSDD", "SDD", "electrical commutators"),
            sources=(
                "kosNN/PartN.jpg with kosNN/PartN_label.bmp, the label read from the mask (any non-zero "
                "pixel: anomalous), every image a test image: the KolektorSDD download (vicos.si), anomalib "
                "data/datasets/image/kolektor.py",
                "test/{good,defect}/*.png, masks ground_truth/defect/<stem>_mask.png: AdaCLIP's copy "
                "(SDD_anomaly_detection/SDD, images cut in three by AdaCLIP data_preprocess/sdd-pre.py); "
                "description 'electrical commutators' as AnomalyCLIP generate_dataset_json/SDD.py names the "
                "class. No expected counts: the two copies differ (399 whole images vs. AdaCLIP's crops)",
            ),
            in_paper=False,
        ),
        Benchmark(
            name="dagm",
            display_name="DAGM 2007",
            domain="industrial",
            descriptions={f"Class{number}": f"Class{number}" for number in range(1, 11)},
            download_folders=("DAGM_KaggleUpload", "DAGM2007", "DAGM_anomaly_detection", "DAGM"),
            sources=(
                "ClassN/{Train,Test}/NNNN.PNG with ClassN/{Train,Test}/Label/NNNN_label.PNG for defective "
                "images: the Kaggle DAGM 2007 upload, AnomalyCLIP generate_dataset_json/DAGM.py",
                "ClassN/test/{good,defect}/*.PNG, masks ClassN/ground_truth/defect/NNNN_label.PNG: AdaCLIP's "
                "copy (data_preprocess/dagm-pre.py). Peers prompt with the folder name ('Class1'), and so do "
                "we; no expected counts (not confirmed against a copy)",
            ),
            in_paper=False,
        ),
        Benchmark(
            name="isic",
            display_name="ISIC 2016",
            domain="medical",
            descriptions={"isic": "skin"},
            aliases={"skin": "isic", "ISIC2016": "isic"},
            expected_counts={"isic": (0, 379)},
            download_folders=("ISIC", "ISIC2016", "isic", "skin"),
            sources=(
                "ISBI2016_ISIC_Part1_Test_Data/ISIC_<n>.jpg with ISBI2016_ISIC_Part1_Test_GroundTruth/"
                "ISIC_<n>_Segmentation.png: the ISIC 2016 challenge download (challenge.isic-archive.com), "
                "AnomalyCLIP generate_dataset_json/isbi.py (class 'skin')",
                "test/<defect>/*.jpg, masks ground_truth/<defect>/<stem>_Segmentation.png: AdaCLIP's copy "
                "(ISIC/isic), as Bayes-PFL dataset/datasets/ISIC.py reads it; 379 test images per Bayes-PFL's "
                "meta_ISIC.json",
            ),
            in_paper=False,
        ),
        Benchmark(
            name="tn3k",
            display_name="TN3K",
            domain="medical",
            descriptions={"tn3k": "thyroid"},
            aliases={"thyroid": "tn3k"},
            expected_counts={"tn3k": (0, 614)},
            download_folders=("tn3k", "TN3K", "thyroid"),
            sources=(
                "test-image/<n>.jpg with test-mask/<n>.jpg: the TN3K release (haifangong/TRFE-Net-for-thyroid-"
                "nodule-segmentation dataloaders/tn3k.py), AnomalyCLIP generate_dataset_json/tn3k.py (class "
                "'thyroid'); 614 test images per the TN3K paper, not counted on a copy",
                "test/<defect>/*.jpg, masks ground_truth/<defect>/<same name>: AdaCLIP's copy (TN3K/tn3k)",
            ),
            in_paper=False,
        ),
        Benchmark(
            name="br35h",
            display_name="Br35H",
            domain="medical",
            descriptions={"br35h": "brain"},
            expected_counts={"br35h": (1500, 1500)},
            pixel_labels=False,
            download_folders=("Br35H", "br35h", "Br35h_anomaly_detection", "brain"),
            sources=(
                "yes/*.jpg (tumour) and no/*.jpg (normal); the unlabelled pred/ folder is not read: the Kaggle "
                "Br35H download, AnomalyCLIP generate_dataset_json/br35.py (class 'brain'); 1500 / 1500 per "
                "Bayes-PFL's meta_Br35H.json",
                "test/{good,<defect>}/*.jpg: AdaCLIP's copy (Br35h_anomaly_detection/br35h)",
            ),
            in_paper=False,
        ),
        Benchmark(
            name="brainmri_kaggle",
            display_name="Brain MRI (Kaggle)",
            domain="medical",
            descriptions={"brainmri_kaggle": "brain"},
            expected_counts={"brainmri_kaggle": (98, 155)},
            pixel_labels=False,
            download_folders=("brain_tumor_dataset", "BrainMRI", "brain_mri"),
            sources=(
                "brain_tumor_dataset/{yes,no}/* (JPEG and PNG of mixed case): the Kaggle 'Brain MRI Images for "
                "Brain Tumor Detection' download, AnomalyCLIP generate_dataset_json/brainmri.py (class 'brain'); "
                "155 / 98 as the Kaggle page states, not counted on a copy",
                "test/{good,<defect>}/*: AdaCLIP's copy (BrainMRI/brain_mri)",
            ),
            in_paper=False,
        ),
    )
}

PAPER_BENCHMARKS: tuple[str, ...] = tuple(name for name, entry in BENCHMARKS.items() if entry.in_paper)
INDUSTRIAL_BENCHMARKS: tuple[str, ...] = tuple(n for n, entry in BENCHMARKS.items() if entry.domain == "industrial")
MEDICAL_BENCHMARKS: tuple[str, ...] = tuple(n for n, entry in BENCHMARKS.items() if entry.domain == "medical")


def get_benchmark(name: str) -> Benchmark:
    """The entry of benchmark `name` (case-insensitive); ValueError listing the known names otherwise."""
    entry = BENCHMARKS.get(name.strip().lower())
    if entry is None:
        raise ValueError(f"unknown benchmark {name!r}; expected one of {sorted(BENCHMARKS)}")
    return entry


def display_name(name: str) -> str:
    """How tables name a dataset: the benchmark's display name, or `name` as written for any other dataset."""
    entry = BENCHMARKS.get(name.strip().lower())
    return name if entry is None else entry.display_name


def find_class(class_name: str, benchmark: str | None = None) -> tuple[Benchmark, str] | None:
    """The benchmark and class that `class_name` names (an alias or case variant resolves), or None.

    With `benchmark`, only that benchmark's classes are searched. Without it, the first benchmark of the
    table holding the name wins; names shared by several benchmarks resolve to the same description and
    domain, so which one is reported does not change a prompt.
    """
    entries = [get_benchmark(benchmark)] if benchmark is not None else BENCHMARKS.values()
    for entry in entries:
        canonical = entry.canonical(class_name)
        if canonical is not None:
            return entry, canonical
    return None


def matching_benchmark(class_names: Iterable[str]) -> Benchmark | None:
    """The benchmark whose complete class set `class_names` names, one name per class (aliases resolved),
    or None.

    A table's mean is comparable with a paper's figure only over the same classes: MVTec-AD's mean over
    two of its classes, over classes of another dataset read with its layout, or over DTD-Synthetic's 12
    folders rather than its 8 classes, is not the paper's.
    """
    names = set(class_names)
    for entry in BENCHMARKS.values():
        found = {entry.canonical(name) for name in names}
        if found == set(entry.classes) and len(names) == len(found):
            return entry
    return None


__all__ = [
    "BENCHMARKS",
    "CLASS_AGNOSTIC_DESCRIPTION",
    "CLASS_DESCRIPTION_SETS",
    "DOMAINS",
    "INDUSTRIAL_BENCHMARKS",
    "METRIC_NAMES",
    "MEDICAL_BENCHMARKS",
    "PAPER_BENCHMARKS",
    "Benchmark",
    "Domain",
    "display_name",
    "find_class",
    "get_benchmark",
    "matching_benchmark",
]
