"""The one image reader (`moeclip_hf.image_io`): every source users and libraries hand over, one RGB conversion.

Its contract is transformers' `load_image` (paths, URLs, base64 with or without a data URL, PIL images; EXIF
orientation applied) plus bytes, numpy arrays and `datasets` mappings, with our RGB conversion where PIL's
differs (transparency onto white, 16-bit grey stretched).
"""

import base64
import io

import numpy as np
import pytest
from PIL import Image
from transformers.image_utils import load_image as transformers_load_image

from moeclip_hf.image_io import decode_base64, load_image, read_image, source_name, to_rgb


def png_bytes(image: Image.Image, format: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **kwargs)
    return buffer.getvalue()


def photo(mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "CMYK"])
def test_where_the_conversions_agree_the_pixels_are_transformers_own(tmp_path, mode):
    path = tmp_path / ("part.jpg" if mode == "CMYK" else "part.png")
    photo(mode).save(path)
    ours, theirs = read_image(path), transformers_load_image(str(path))
    assert ours.mode == "RGB" and np.array_equal(np.asarray(ours), np.asarray(theirs))
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    assert np.array_equal(np.asarray(read_image(encoded)), np.asarray(transformers_load_image(encoded)))


def test_every_source_gives_the_same_image(tmp_path):
    image = photo()
    data = png_bytes(image)
    path = tmp_path / "part.png"
    path.write_bytes(data)
    encoded = base64.b64encode(data).decode("ascii")
    sources = [
        path,
        str(path),
        data,
        bytearray(data),
        encoded,
        f"data:image/png;base64,{encoded}",
        image,
        np.asarray(image),
        {"bytes": data, "path": None},
        {"bytes": None, "path": str(path)},
    ]
    for source in sources:
        assert np.array_equal(np.asarray(read_image(source)), np.asarray(image)), type(source)


def test_transparency_goes_onto_white_and_16_bit_grey_is_stretched():
    rgba = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    assert np.asarray(to_rgb(rgba)).tolist() == [[[255, 255, 255]] * 2]
    grey = Image.fromarray(np.array([[1000, 2000]], dtype=np.uint16))
    assert np.asarray(to_rgb(grey))[0, :, 0].tolist() == [0, 255]


def test_the_exif_orientation_is_applied_as_transformers_does():
    upright = Image.new("RGB", (4, 2), (255, 0, 0))
    upright.putpixel((0, 0), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = png_bytes(upright, exif=exif.tobytes())
    ours, theirs = read_image(data), transformers_load_image(Image.open(io.BytesIO(data)))
    assert ours.size == (2, 4) and np.array_equal(np.asarray(ours), np.asarray(theirs))


def test_limits_are_checked_before_decoding_and_errors_name_the_source(tmp_path):
    data = png_bytes(Image.new("L", (100, 50)))
    with pytest.raises(ValueError, match=r"cannot read image scan.png: it holds \d+ bytes, more than the limit of 10 bytes"):
        load_image(data, name="scan.png", max_bytes=10)
    with pytest.raises(ValueError, match=r"100x50 pixels .* more than the limit of 0.001 megapixels"):
        load_image(data, max_pixels=1000)
    with pytest.raises(ValueError, match="not a JPEG image"):
        load_image(data, formats=("JPEG",))
    with pytest.raises(FileNotFoundError, match="image not found: .*missing.png"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="not an existing file, a URL or valid base64"):
        load_image("no-such-image")
    with pytest.raises(ValueError, match="empty"):
        load_image(b"")
    assert source_name(data) == "<image bytes>" and source_name("aGVsbG8=") == "<base64 image>"


def test_base64_only_callers_never_read_a_file(tmp_path):
    path = tmp_path / "secret.png"
    path.write_bytes(png_bytes(photo()))
    with pytest.raises(ValueError, match="not valid base64"):
        decode_base64(str(path))
