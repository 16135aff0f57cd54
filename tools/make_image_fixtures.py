#!/usr/bin/python3
"""Small good images for tests/test_image.c (malformed ones are made from
these by the test itself, so only a few kilobytes are committed).

Run with Debian's /usr/bin/python3 (python3-pil) from the repository root:
    /usr/bin/python3 tools/make_image_fixtures.py

PNGs are encoded here by hand (zlib + struct) because PIL cannot write 2- and
4-bit gray, 16-bit RGB(A) or Adam7 interlacing, and because every pixel must
be known exactly: sample (x, y, c) of a PNG with b bits is pattern(x, y, c, b)
below, which tests/test_image.c computes the same way. JPEGs come from PIL
(libjpeg) as flat colour blocks, so the test can check them despite the loss.
"""
import struct
import zlib

from PIL import Image

OUT = "tests/fixtures/images/"
W, H = 7, 5  # odd, so sub-byte rows end mid-byte and Adam7 passes are ragged


def pattern(x, y, c, bits):
    """Well-mixed sample values: the top bits of a 32-bit hash."""
    m = 0xFFFFFFFF
    h = ((x * 73856093) ^ (y * 19349663) ^ (c * 83492791)) & m
    h ^= h >> 13
    h = (h * 0x5BD1E995) & m
    h ^= h >> 15
    return h >> (32 - bits)


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def pack_row(samples, bits):
    """Samples of one row into bytes, big-endian, padded to a whole byte."""
    if bits == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    if bits == 8:
        return bytes(samples)
    out, acc, n = bytearray(), 0, 0
    for s in samples:
        acc = (acc << bits) | s
        n += bits
        if n == 8:
            out.append(acc)
            acc, n = 0, 0
    if n:
        out.append(acc << (8 - n))
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
         (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]  # x0, y0, dx, dy


def write_png(name, color_type, bits, samples_at, channels, extra=b"",
              interlaced=False):
    """samples_at(x, y) -> list of `channels` samples."""
    def rows(xs, ys):
        return b"".join(b"\0" + pack_row([s for x in xs for s in samples_at(x, y)], bits)
                        for y in ys)
    if interlaced:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            xs, ys = range(x0, W, dx), range(y0, H, dy)
            if len(xs) and len(ys):
                raw += rows(xs, ys)
    else:
        raw = rows(range(W), range(H))
    ihdr = struct.pack(">IIBBBBB", W, H, bits, color_type, 0, 0, int(interlaced))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    with open(OUT + name, "wb") as f:
        f.write(data)


def pngs():
    for bits in (1, 2, 4, 8, 16):
        write_png(f"gray{bits}.png", 0, bits,
                  lambda x, y, b=bits: [pattern(x, y, 0, b)], 1)
    for bits in (8, 16):
        for name, ctype, ch in (("graya", 4, 2), ("rgb", 2, 3), ("rgba", 6, 4)):
            write_png(f"{name}{bits}.png", ctype, bits,
                      lambda x, y, b=bits, n=ch: [pattern(x, y, c, b) for c in range(n)], ch)
    write_png("rgb8_adam7.png", 2, 8,
              lambda x, y: [pattern(x, y, c, 8) for c in range(3)], 3,
              interlaced=True)
    # Palette: entry i is pattern(i, 0, c, 8); the first 5 entries have alpha
    # pattern(i, 0, 3, 8) in tRNS, the rest are opaque.
    plte = bytes(pattern(i, 0, c, 8) for i in range(16) for c in range(3))
    trns = bytes(pattern(i, 0, 3, 8) for i in range(5))
    write_png("palette4_trns.png", 3, 4, lambda x, y: [pattern(x, y, 0, 4)], 1,
              extra=chunk(b"PLTE", plte) + chunk(b"tRNS", trns))
    plte = bytes(pattern(i, 0, c, 8) for i in range(256) for c in range(3))
    write_png("palette8.png", 3, 8, lambda x, y: [pattern(x, y, 0, 8)], 1,
              extra=chunk(b"PLTE", plte))
    # Gray with a tRNS key: pixels equal to pattern(0, 0, 0, 8) are transparent.
    write_png("gray8_trns.png", 0, 8, lambda x, y: [pattern(x, y, 0, 8)], 1,
              extra=chunk(b"tRNS", struct.pack(">H", pattern(0, 0, 0, 8))))


# JPEG blocks: a 4 x 2 grid of 16x16 blocks, colour BLOCKS[row][col]; the
# test holds the same table.
BLOCKS = [[(200, 30, 30), (30, 200, 30), (30, 30, 200), (128, 128, 128)],
          [(240, 220, 40), (40, 220, 240), (220, 40, 240), (20, 20, 20)]]
GRAYS = [[30, 90, 160, 230], [60, 120, 190, 250]]
BLOCK = 16


def blocks(mode, table):
    im = Image.new(mode, (4 * BLOCK, 2 * BLOCK))
    for r in range(2):
        for c in range(4):
            im.paste(table[r][c], (c * BLOCK, r * BLOCK, (c + 1) * BLOCK, (r + 1) * BLOCK))
    return im


def jpegs():
    color = blocks("RGB", BLOCKS)
    color.save(OUT + "color.jpg", quality=90)  # 4:2:0, as cameras write
    color.save(OUT + "progressive.jpg", quality=90, progressive=True)
    blocks("L", GRAYS).save(OUT + "gray.jpg", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned left: rotate 90 clockwise to view
    color.save(OUT + "exif6.jpg", quality=90, exif=exif.tobytes())
    # CMYK inks; PIL writes them inverted with an Adobe marker, as Photoshop.
    inks = [[(0, 0, 0, 0), (255, 0, 0, 0), (0, 255, 255, 0), (0, 0, 0, 255)],
            [(0, 0, 255, 0), (0, 0, 0, 128), (255, 255, 0, 0), (0, 255, 0, 0)]]
    blocks("CMYK", inks).save(OUT + "cmyk.jpg", quality=95)


if __name__ == "__main__":
    pngs()
    jpegs()
