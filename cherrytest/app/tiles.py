"""The sample picture and how it is cut: one grid, shared by the page and the command that cuts the tiles."""

from dataclasses import dataclass
from pathlib import Path

MEDIA_DIR = Path(__file__).resolve().parent / "media"
PICTURE = "picture.png"
PICTURE_SIZE = (570, 562)  # width, height in pixels
TILE_SIZE = 100  # pixels; the last column and row are what is left over
TILES_DIR = "tiles"


@dataclass(frozen=True)
class Tile:
    """One tile: its place in the grid and its box in the picture (pixels)."""

    row: int
    column: int
    left: int
    top: int
    width: int
    height: int

    @property
    def name(self):
        """The tile's path below the app's media folder, e.g. ``tiles/r0-c5.png``."""
        return f"{TILES_DIR}/r{self.row}-c{self.column}.png"

    @property
    def box(self):
        """``(left, upper, right, lower)``, as Pillow's ``Image.crop`` takes it."""
        return (self.left, self.top, self.left + self.width, self.top + self.height)


def grid(size=PICTURE_SIZE, tile_size=TILE_SIZE):
    """Return the tiles covering a picture of ``size`` (width, height), row by row.

    570×562 in 100-pixel tiles gives 6 rows of 6: the last column 70 pixels wide, the last row 62 high.
    """
    width, height = size
    return [
        [
            Tile(row, column, left, top, min(tile_size, width - left), min(tile_size, height - top))
            for column, left in enumerate(range(0, width, tile_size))
        ]
        for row, top in enumerate(range(0, height, tile_size))
    ]
