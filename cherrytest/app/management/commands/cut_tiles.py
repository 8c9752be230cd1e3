"""``manage.py cut_tiles``: cut the sample picture into the tiles the page shows (needs Pillow)."""

from django.core.management.base import BaseCommand, CommandError

from cherrytest.app.tiles import MEDIA_DIR, PICTURE, PICTURE_SIZE, TILES_DIR, grid


class Command(BaseCommand):
    help = f"Cut media/{PICTURE} into the {TILES_DIR}/ the sample page shows. Needs Pillow (pip install Pillow)."

    def handle(self, *args, **options):
        try:
            from PIL import Image
        except ImportError:
            raise CommandError("cut_tiles needs Pillow: pip install Pillow") from None
        source = MEDIA_DIR / PICTURE
        with Image.open(source) as picture:
            if picture.size != PICTURE_SIZE:
                raise CommandError(f"{PICTURE} is {picture.size[0]}×{picture.size[1]}, expected {PICTURE_SIZE}.")
            picture.load()
            rows = grid(picture.size)
            (MEDIA_DIR / TILES_DIR).mkdir(exist_ok=True)
            for row in rows:
                for tile in row:
                    picture.crop(tile.box).save(MEDIA_DIR / tile.name, optimize=True)
        count = sum(len(row) for row in rows)
        self.stdout.write(f"Cut {PICTURE} into {count} tiles in {MEDIA_DIR / TILES_DIR}.")
