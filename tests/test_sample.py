"""The sample project's picture and tiles."""

import io
import os

from django.core.management import call_command
from PIL import Image

from cherrytest.app.tiles import MEDIA_DIR, PICTURE, PICTURE_SIZE, grid


def test_the_grid_is_6_by_6_with_short_last_column_and_row():
    rows = grid()
    assert len(rows) == 6 and all(len(row) == 6 for row in rows)
    assert [tile.width for tile in rows[0]] == [100] * 5 + [70]
    assert [row[0].height for row in rows] == [100] * 5 + [62]
    assert sum(tile.width for tile in rows[0]) == PICTURE_SIZE[0]
    assert sum(row[0].height for row in rows) == PICTURE_SIZE[1]


def test_the_committed_tiles_reassemble_the_picture():
    with Image.open(MEDIA_DIR / PICTURE) as picture:
        picture = picture.convert("RGB")
    assert picture.size == PICTURE_SIZE
    canvas = Image.new("RGB", PICTURE_SIZE)
    for row in grid():
        for tile in row:
            with Image.open(MEDIA_DIR / tile.name) as image:
                assert image.size == (tile.width, tile.height)
                canvas.paste(image.convert("RGB"), (tile.left, tile.top))
    assert canvas.tobytes() == picture.tobytes()


def test_the_media_folder_links_the_app_media_relatively():
    link = os.path.join(os.path.dirname(MEDIA_DIR.parent.parent), "media", "app")
    assert os.path.islink(link)
    assert not os.path.isabs(os.readlink(link))
    assert os.path.samefile(link, MEDIA_DIR)


def test_cut_tiles_cuts_the_same_tiles(tmp_path, monkeypatch):
    monkeypatch.setattr("cherrytest.app.management.commands.cut_tiles.MEDIA_DIR", tmp_path)
    (tmp_path / PICTURE).write_bytes((MEDIA_DIR / PICTURE).read_bytes())
    from cherrytest.app.management.commands.cut_tiles import Command  # the sample's app is not installed here

    call_command(Command(), stdout=io.StringIO())
    for row in grid():
        for tile in row:
            with Image.open(tmp_path / tile.name) as cut, Image.open(MEDIA_DIR / tile.name) as committed:
                assert cut.convert("RGB").tobytes() == committed.convert("RGB").tobytes()
